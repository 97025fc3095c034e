package mapping

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/orderwatch/orderwatch/features"
)

// FuzzMapMiddlewareMessage: whatever bytes arrive, the middleware example either
// maps them to events the decoder accepts, the same twice, or rejects them with a
// reason of the bounded set; it never panics.
func FuzzMapMiddlewareMessage(f *testing.F) {
	b, err := os.ReadFile("../examples/mapping/middleware-messages.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, MaxRecordBytes)
	for sc.Scan() {
		f.Add(append([]byte(nil), sc.Bytes()...))
	}
	f.Add([]byte(`{"kind":"SalesOrderCreated","ts":"2026-11-02T07:16:00Z","order":{"number":1e300,"plant":"1000"}}`))
	f.Add([]byte(`{"kind":"CreditBlock","blocked":"yes"}`))
	m, err := Load("../examples/mapping/middleware-json.yaml")
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		mapOnce := func() ([]Event, error) {
			rec, err := JSONRecord(b)
			if err != nil {
				return nil, err
			}
			return m.Map(rec)
		}
		evs, err := mapOnce()
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) || !known[re.Reason] {
				t.Fatalf("error %v is not a RecordError of a known reason", err)
			}
			return
		}
		again, _ := mapOnce()
		if len(again) != len(evs) {
			t.Fatalf("mapped to %d events, then %d", len(evs), len(again))
		}
		for i, e := range evs {
			var back features.Event
			if err := features.Decode(e.JSON, &back); err != nil {
				t.Fatalf("event %s: %v", e.JSON, err)
			}
			if !bytes.Equal(e.JSON, again[i].JSON) {
				t.Fatalf("mapped to %s, then %s", e.JSON, again[i].JSON)
			}
		}
	})
}
