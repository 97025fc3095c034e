package whatif

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// TestFilterSkipsBeforeStart: events that occurred before the start are not
// passed on and are counted; lines that do not decode are passed on for the
// replay to dead-letter.
func TestFilterSkipsBeforeStart(t *testing.T) {
	in := strings.Join([]string{
		`{"id":"e1","type":"order.created","order_id":"SO-1","occurred_at":"2026-05-17T23:59:59Z","schema":1,"data":{"warehouse":"DAL","ship_cutoff":"2026-05-18T16:00:00Z"}}`,
		`{"id":"e2","type":"note.added","order_id":"SO-1","occurred_at":"2026-05-18T00:00:00Z","schema":1,"data":{}}`,
		`not json`,
		``,
		`{"id":"e3","type":"note.added","order_id":"SO-1","occurred_at":"2026-05-17T12:00:00Z","schema":1,"data":{}}`,
	}, "\n")
	f := NewFilter(strings.NewReader(in), time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC))
	out, err := io.ReadAll(iotestOneByte(f))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"e2","type":"note.added","order_id":"SO-1","occurred_at":"2026-05-18T00:00:00Z","schema":1,"data":{}}` + "\nnot json\n\n"
	if string(out) != want {
		t.Errorf("filtered:\n%q\nwant\n%q", out, want)
	}
	if f.Stats != (FilterStats{Lines: 5, Skipped: 2}) {
		t.Errorf("stats %+v, want 5 lines, 2 skipped", f.Stats)
	}
	last, err := LastEventTime(strings.NewReader(in))
	if err != nil || !last.Equal(time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("last event time %v, %v", last, err)
	}
}

// iotestOneByte reads r one byte at a time, as a small reader buffer would.
func iotestOneByte(r io.Reader) io.Reader { return oneByte{r} }

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestAppendLine: a message is one line; an indented event is compacted onto
// one, bytes that are not JSON lose their newlines.
func TestAppendLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1}`, "{\"a\":1}\n"},
		{"{\n  \"a\": 1\n}", "{\"a\":1}\n"},
		{"not\njson", "not json\n"},
	} {
		if got := appendLine([]byte("x"), []byte(tc.in)); !bytes.Equal(got, []byte("x"+tc.want)) {
			t.Errorf("appendLine(%q) = %q, want %q", tc.in, got, "x"+tc.want)
		}
	}
}
