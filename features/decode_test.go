package features

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	valid := `{"id":"e-1","type":"order.created","order_id":"SO-1","occurred_at":"2026-05-21T14:03:11.250Z","source":"erp","schema":1,
		"data":{"warehouse":"DAL","ship_cutoff":"2026-05-21T20:00:00Z","lines":2,"value":99.5,"unknown_field":true}}`
	cases := []struct {
		name   string
		in     string
		reason string // empty: valid
	}{
		{"valid order.created", valid, ""},
		{"context event without order", `{"id":"w-1","type":"warehouse.load","occurred_at":"2026-05-21T14:00:00Z","schema":1,"data":{"warehouse":"DAL","queue":40,"capacity":100}}`, ""},
		{"not json", `{not json`, ReasonBadJSON},
		{"trailing data", valid + ` {}`, ReasonBadJSON},
		{"stray closing brace", valid + `}`, ReasonBadJSON},
		{"stray bracket and junk", valid + `] junk`, ReasonBadJSON},
		{"trailing white space", valid + " \n\t", ""},
		{"array", `[1,2]`, ReasonBadJSON},
		{"invalid utf8", "{\"id\":\"\xff\"}", ReasonInvalidUTF8},
		{"oversize", `{"id":"` + strings.Repeat("x", MaxEventBytes) + `"}`, ReasonOversize},
		{"schema 2", strings.Replace(valid, `"schema":1`, `"schema":2`, 1), ReasonWrongSchema},
		{"no schema", strings.Replace(valid, `"schema":1,`, ``, 1), ReasonWrongSchema},
		{"no id", strings.Replace(valid, `"id":"e-1",`, ``, 1), ReasonMissingID},
		{"control char in id", strings.Replace(valid, `"id":"e-1"`, `"id":"e\u0000"`, 1), ReasonBadID},
		{"long order id", strings.Replace(valid, `"SO-1"`, `"`+strings.Repeat("9", 200)+`"`, 1), ReasonBadID},
		{"unknown type", strings.Replace(valid, `order.created`, `order.teleported`, 1), ReasonUnknownType},
		{"no occurred_at", strings.Replace(valid, `"occurred_at":"2026-05-21T14:03:11.250Z",`, ``, 1), ReasonMissingTime},
		{"bad occurred_at", strings.Replace(valid, `2026-05-21T14:03:11.250Z`, `yesterday`, 1), ReasonBadJSON},
		{"absurd occurred_at", strings.Replace(valid, `2026-05-21T14:03:11.250Z`, `2999-01-01T00:00:00Z`, 1), ReasonAbsurdTime},
		{"no order_id", strings.Replace(valid, `"order_id":"SO-1",`, ``, 1), ReasonMissingOrderID},
		{"no warehouse", strings.Replace(valid, `"warehouse":"DAL",`, ``, 1), ReasonMissingField},
		{"no cutoff", strings.Replace(valid, `"ship_cutoff":"2026-05-21T20:00:00Z",`, ``, 1), ReasonMissingField},
		{"absurd cutoff", strings.Replace(valid, `2026-05-21T20:00:00Z`, `1901-01-01T00:00:00Z`, 1), ReasonAbsurdTime},
		{"context without warehouse", `{"id":"w-1","type":"warehouse.load","occurred_at":"2026-05-21T14:00:00Z","schema":1,"data":{}}`, ReasonMissingField},
		{"carrier perf without carrier", `{"id":"c-1","type":"carrier.performance","occurred_at":"2026-05-21T14:00:00Z","schema":1,"data":{}}`, ReasonMissingField},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			err := Decode([]byte(c.in), &ev)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v, want valid", err)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode error = %v, want a *DecodeError with reason %s", err, c.reason)
			}
			if de.Reason != c.reason || de.Detail == "" {
				t.Errorf("reason = %q (%s), want %q with a detail", de.Reason, de.Detail, c.reason)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	var ev Event
	in := `{"id":"e-1","type":"order.created","order_id":"SO-1","occurred_at":"2026-05-21T14:03:11.250Z","schema":1,
		"data":{"warehouse":"DAL","ship_cutoff":"2026-05-21T20:00:00Z","customer_tier":"gold","lines":2,"units":7,"value":99.5}}`
	if err := Decode([]byte(in), &ev); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 5, 21, 14, 3, 11, 250e6, time.UTC)
	if !ev.OccurredAt.Equal(want) || ev.Data.Warehouse != "DAL" || ev.Data.Lines != 2 || ev.Data.Units != 7 || ev.Data.Value != 99.5 || ev.Data.CustomerTier != "gold" {
		t.Errorf("decoded %+v", ev)
	}
	if Subject(ev.Type, ev.OrderID) != "orders.order.created.SO-1" {
		t.Errorf("Subject = %q", Subject(ev.Type, ev.OrderID))
	}
}

// decodeFuzzSeeds seed FuzzDecode and FuzzDecodeMatchesReference.
var decodeFuzzSeeds = []string{
	`{"id":"e-1","type":"order.created","order_id":"SO-1","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":{"warehouse":"DAL","ship_cutoff":"2026-05-21T20:00:00Z"}}`,
	`{"id":"w","type":"warehouse.load","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":{"warehouse":"DAL","queue":1}}`,
	`{not json`,
	"{\"id\":\"\xff\"}",
	`{"schema":1,"data":{"ship_cutoff":null,"on_time_share":1e999}}`,
	// Past the bounds (bounds.go).
	`{"id":"c","type":"carrier.performance","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":{"carrier":"UPS","on_time_share":1e308}}`,
	`{"id":"e","type":"order.changed","order_id":"SO-1","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":{"ship_cutoff":"9999-12-31T23:59:59Z"}}`,
	`{"id":"w","type":"warehouse.load","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":{"warehouse":"D\u0085L","queue":-1}}`,
}

// FuzzDecode: whatever the bytes, Decode returns nil or a *DecodeError, never
// panics, and an accepted event validates again.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		err := Decode(b, &ev)
		if err == nil {
			if err := Validate(&ev); err != nil {
				t.Fatalf("accepted event fails validation: %v", err)
			}
			return
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
		}
		if !strings.Contains(fmt.Sprint(Reasons), de.Reason) {
			t.Fatalf("reason %q is not in Reasons", de.Reason)
		}
	})
}

// loadEvents returns the simulated events of testdata/events.jsonl, made once with
// the sim package (which imports features, so its tests cannot): every 997th event
// of a normal run with seed 7, in the mix of a day, then one or two of every type
// of the taxonomy from normal and carrier-disruption runs.
func loadEvents(tb testing.TB) [][]byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "events.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	var evs [][]byte
	for line := range bytes.Lines(raw) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			evs = append(evs, line)
		}
	}
	if len(evs) == 0 {
		tb.Fatal("testdata/events.jsonl holds no events")
	}
	return evs
}

// TestDecodeAllocs: a valid event costs at most three allocations: its id with its
// order id, its other strings and its pointer fields.
func TestDecodeAllocs(t *testing.T) {
	for _, b := range loadEvents(t) {
		var ev Event
		allocs := testing.AllocsPerRun(10, func() {
			if err := Decode(b, &ev); err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
		})
		if allocs > 3 {
			t.Errorf("Decode(%s): %.0f allocations, want at most 3", b, allocs)
		}
	}
}

// BenchmarkDecode decodes and validates simulated events, as the pipeline does for
// every message. BenchmarkDecodeReference runs encoding/json on the same events
// under the same load, for comparison:
//
//	go test -run X -bench Decode -benchmem ./features
func BenchmarkDecode(b *testing.B) { benchmarkDecode(b, Decode) }

func benchmarkDecode(b *testing.B, decode func([]byte, *Event) error) {
	evs := loadEvents(b)
	var size int
	for _, e := range evs {
		size += len(e)
	}
	b.SetBytes(int64(size / len(evs)))
	b.ReportAllocs()
	var ev Event
	i := 0
	for b.Loop() {
		if err := decode(evs[i], &ev); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(evs) {
			i = 0
		}
	}
}
