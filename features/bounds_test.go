package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestDecodeBounds: every value from producers is bounded where it enters. Each
// case is an event encoding/json accepts that the fold must not see.
func TestDecodeBounds(t *testing.T) {
	order := func(typ, data string) string {
		return `{"id":"e-1","type":"` + typ + `","order_id":"SO-1","occurred_at":"2026-05-21T14:03:11Z","source":"erp","actor":"a","schema":1,"data":` + data + `}`
	}
	created := func(extra string) string {
		return order(TypeOrderCreated, `{"warehouse":"DAL","ship_cutoff":"2026-05-21T20:00:00Z"`+extra+`}`)
	}
	context := func(typ, data string) string {
		return `{"id":"c-1","type":"` + typ + `","occurred_at":"2026-05-21T14:03:11Z","schema":1,"data":` + data + `}`
	}
	long := strings.Repeat("w", 40<<10)
	cases := []struct {
		name, in, reason string // reason empty: valid
	}{
		// Finding 1: the 160-byte event that stopped the pipeline.
		{"on_time_share 1e308", context(TypeCarrierPerformance, `{"carrier":"UPS","on_time_share":1e308}`), ReasonOutOfRange},
		{"on_time_share above 1", context(TypeCarrierPerformance, `{"carrier":"UPS","on_time_share":1.01}`), ReasonOutOfRange},
		{"on_time_share negative", context(TypeCarrierPerformance, `{"carrier":"UPS","on_time_share":-0.1}`), ReasonOutOfRange},
		{"on_time_share 0 and 1", context(TypeCarrierPerformance, `{"carrier":"UPS","on_time_share":1,"delay_minutes":-30}`), ""},
		{"delay a year", context(TypeCarrierPerformance, `{"carrier":"UPS","delay_minutes":525600}`), ReasonOutOfRange},
		{"queue negative", context(TypeWarehouseLoad, `{"warehouse":"DAL","queue":-1,"capacity":10}`), ReasonOutOfRange},
		{"capacity huge", context(TypeWarehouseLoad, `{"warehouse":"DAL","queue":1,"capacity":9223372036854775807}`), ReasonOutOfRange},
		{"lines negative", created(`,"lines":-3`), ReasonOutOfRange},
		{"units huge", created(`,"units":100000000000`), ReasonOutOfRange},
		{"value 1e308", created(`,"value":1e308`), ReasonOutOfRange},
		{"value negative", created(`,"value":-5`), ReasonOutOfRange},
		{"short units on an unrelated type", order(TypeNoteAdded, `{"short_units":-1}`), ReasonOutOfRange},
		// Finding 4: every time in data has occurred_at's window.
		{"order.changed cutoff 9999", order(TypeOrderChanged, `{"ship_cutoff":"9999-12-31T23:59:59Z"}`), ReasonAbsurdTime},
		{"order.changed cutoff 1815", order(TypeOrderChanged, `{"ship_cutoff":"1815-01-01T00:00:00Z"}`), ReasonAbsurdTime},
		{"promised_at 2100", created(`,"promised_at":"2100-01-01T00:00:00Z"`), ReasonAbsurdTime},
		{"promised_at 2099", created(`,"promised_at":"2099-12-31T23:59:59Z"`), ""},
		{"order.changed cutoff in range", order(TypeOrderChanged, `{"ship_cutoff":"2026-05-22T20:00:00Z"}`), ""},
		// Finding 5: ids and labels.
		{"40 KB warehouse", context(TypeWarehouseLoad, `{"warehouse":"`+long+`"}`), ReasonBadID},
		{"65-byte carrier", created(`,"carrier":"` + strings.Repeat("c", 65) + `"`), ReasonBadID},
		{"64-byte carrier", created(`,"carrier":"` + strings.Repeat("c", 64) + `"`), ""},
		{"customer id with a newline", created(`,"customer_id":"C\n1"`), ReasonBadID},
		{"tier with DEL", created(`,"customer_tier":"gold\u007f"`), ReasonBadID},
		{"channel with a C1 control", created(`,"channel":"edi\u0085"`), ReasonBadID},
		{"service level with NUL", created(`,"service_level":"\u0000"`), ReasonBadID},
		{"region too long", created(`,"region":"` + strings.Repeat("r", 65) + `"`), ReasonBadID},
		{"source too long", strings.Replace(created(""), `"erp"`, `"`+strings.Repeat("s", 65)+`"`, 1), ReasonBadID},
		{"actor too long", strings.Replace(created(""), `"actor":"a"`, `"actor":"`+strings.Repeat("a", 129)+`"`, 1), ReasonBadID},
		{"system with a tab", order(TypeIntegrationError, `{"system":"e\tdi","text":"x"}`), ReasonBadID},
		{"code too long", order(TypeIntegrationError, `{"code":"`+strings.Repeat("9", 129)+`"}`), ReasonBadID},
		{"reason too long", order(TypeCreditHold, `{"reason":"`+strings.Repeat("x", 129)+`"}`), ReasonBadID},
		{"change too long", order(TypeOrderChanged, `{"change":"`+strings.Repeat("x", 129)+`"}`), ReasonBadID},
		{"timezone too long", context(TypeWarehouseLoad, `{"warehouse":"DAL","timezone":"`+strings.Repeat("z", 65)+`"}`), ReasonBadID},
		{"non-ASCII labels", created(`,"warehouse":"Köln-Süd","carrier":"Nippon Express 日本通運"`), ""},
		// Free text stays free: long, with new lines.
		{"long text", order(TypeNoteAdded, `{"text":"`+strings.Repeat("line\\n", 8000)+`"}`), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ev, ref Event
			err, errRef := Decode([]byte(c.in), &ev), decodeReference([]byte(c.in), &ref)
			if fmt.Sprint(err) != fmt.Sprint(errRef) {
				t.Fatalf("Decode: %v; encoding/json: %v", err, errRef)
			}
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v, want valid", err)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason != c.reason {
				t.Fatalf("Decode error = %v, want reason %s", err, c.reason)
			}
			if !strings.Contains(de.Detail, "data.") && !strings.Contains(de.Detail, "source") && !strings.Contains(de.Detail, "actor") {
				t.Errorf("detail %q does not name the field", de.Detail)
			}
			if len(de.Detail) > 200 {
				t.Errorf("detail is %d bytes: it must not echo the value", len(de.Detail))
			}
		})
	}
}

func TestTextCutAtRuneBoundary(t *testing.T) {
	var s OrderState
	text := strings.Repeat("é", MaxTextBytes) // 2 bytes each
	e := ev("n", TypeNoteAdded, 0, EventData{Text: "x" + text})
	s.Apply(&e)
	got := s.Texts[0].Text
	if len(got) > MaxTextBytes || len(got) < MaxTextBytes-1 || !utf8.ValidString(got) || !strings.HasPrefix(got, "xé") {
		t.Errorf("kept text of %d bytes (valid UTF-8 %v), want the first %d bytes at a rune boundary", len(got), utf8.ValidString(got), MaxTextBytes)
	}
}

// TestStoredContextSanitizedOnLoad: aggregates stored by releases before the
// bounds (1e308 on-time share, negative queue) are put back in range when read.
func TestStoredContextSanitizedOnLoad(t *testing.T) {
	var r Carrier
	if err := json.Unmarshal([]byte(`{"on_time":1e308,"delay_minutes":-1e300,"perf":{"at":"2026-05-21T14:00:00Z","id":"c"}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.OnTime != 1 || r.Delay != rangeDelayMinutes.lo || r.Perf.ID != "c" {
		t.Errorf("carrier = %+v, want on_time 1, delay %v, the stamp kept", r, rangeDelayMinutes.lo)
	}
	var w Warehouse
	if err := json.Unmarshal([]byte(`{"queue":-5,"capacity":1e300,"timezone":"`+strings.Repeat("z", 100)+`","picks":{"newest":1,"buckets":[-3,1e38]}}`), &w); err != nil {
		t.Fatal(err)
	}
	if w.Queue != 0 || w.Capacity != rangeCapacity.hi || w.Timezone != "" || w.Picks.Buckets[0] != 0 || w.Picks.Buckets[1] != 1e38 {
		t.Errorf("warehouse = %+v", w)
	}
	var u Customer
	if err := json.Unmarshal([]byte(`{"closed":3,"missed":9,"holds":-1}`), &u); err != nil {
		t.Fatal(err)
	}
	if u != (Customer{Closed: 3, Missed: 3}) {
		t.Errorf("customer = %+v", u)
	}
	// What the fold writes reads back as it was.
	ctx := NewContext()
	share := 0.87
	e := Event{ID: "c", Type: TypeCarrierPerformance, OccurredAt: t0, Data: EventData{Carrier: "UPS", OnTimeShare: &share, DelayMinutes: 12.5}}
	ctx.Apply(&e)
	b, err := json.Marshal(ctx.Carriers["UPS"])
	if err != nil {
		t.Fatal(err)
	}
	var back Carrier
	if err := json.Unmarshal(b, &back); err != nil || back != *ctx.Carriers["UPS"] {
		t.Errorf("round trip = %+v (%v), want %+v", back, err, *ctx.Carriers["UPS"])
	}
}

// extremeFloats are values a producer or an old stored record may hold.
var extremeFloats = []float64{0, -0.0, 1, -1, 0.5, 1e-300, -1e-300, 1e308, -1e308, math.MaxFloat64, -math.MaxFloat64,
	math.Inf(1), math.Inf(-1), math.NaN(), math.MaxFloat32 * 2, 1e7, 1e10 + 1, 4.9e-324}

var extremeInts = []int{0, 1, -1, math.MaxInt, math.MinInt, math.MaxInt32, 1 << 53, 100_000, 10_000_001}

var extremeTimes = []time.Time{{}, t0, t0.Add(-time.Hour), t0.Add(1e6 * time.Hour), time.Unix(0, 0),
	time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1815, 1, 1, 0, 0, 0, 0, time.UTC)}

// TestBuildFiniteForAnyStateAndContext folds random events with extreme values
// (not decoded, so past the bounds of Validate) into an order and its context,
// then sets the state's and the context's fields to extreme values directly, as an
// old stored record may hold them: every vector Build makes is finite and within
// Bounds.
func TestBuildFiniteForAnyStateAndContext(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	pickF := func() float64 { return extremeFloats[r.IntN(len(extremeFloats))] }
	pickI := func() int { return extremeInts[r.IntN(len(extremeInts))] }
	pickT := func() time.Time { return extremeTimes[r.IntN(len(extremeTimes))] }
	check := func(i int, what string, v *Vector) {
		t.Helper()
		for f, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || x < Bounds[f].Lo || x > Bounds[f].Hi {
				t.Fatalf("round %d (%s): %s = %v, want finite within %v", i, what, Names[f], x, Bounds[f])
			}
		}
	}
	for i := range 2000 {
		var s OrderState
		ctx := NewContext()
		for j := range 1 + r.IntN(12) {
			cutoff, promised := pickT(), pickT()
			share := pickF()
			e := Event{
				ID: fmt.Sprint(j), Type: Types[r.IntN(len(Types))], OrderID: "SO-1", OccurredAt: pickT(), Schema: 1,
				Data: EventData{
					Warehouse: "DAL", ShipCutoff: &cutoff, PromisedAt: &promised, CustomerID: "C", CustomerTier: "gold",
					Lines: pickI(), Units: pickI(), Value: pickF(), Carrier: "UPS", ShortUnits: pickI(),
					Queue: pickI(), Capacity: pickI(), Outage: r.IntN(2) == 0, OnTimeShare: &share, DelayMinutes: pickF(),
					Timezone: []string{"", "America/Chicago", "Nowhere/Bad"}[r.IntN(3)], Text: "t",
				},
			}
			if IsContext(e.Type) {
				ctx.Apply(&e)
			} else {
				s.Apply(&e)
				ctx.Observe(&e, &s)
				ctx.CountOutcome(&s, pickT())
			}
		}
		var v Vector
		s.Build(pickT(), ctx, &v)
		check(i, "folded", &v)
		s.Build(pickT(), nil, &v)
		check(i, "no context", &v)

		// As a stored record or aggregate may hold them.
		s.Lines, s.Units, s.Value, s.CreditHolds, s.Changes = pickI(), pickI(), pickF(), pickI(), pickI()
		s.IntegrationErrors, s.CarrierIssues, s.AllocationChanges = pickI(), pickI(), pickI()
		s.CreatedAt, s.ShipCutoff, s.MilestoneAt = pickT(), pickT(), pickT()
		s.HoldAt, s.ReleaseAt = Stamp{At: pickT(), ID: "h"}, Stamp{At: pickT()}
		w := &Warehouse{Queue: pickF(), Capacity: pickF(), Timezone: "America/Chicago"}
		w.Picks.Newest = int64(pickI())
		w.Picks.Buckets[r.IntN(60)] = float32(pickF())
		ctx.Warehouses["DAL"] = w
		ctx.Carriers["UPS"] = &Carrier{OnTime: pickF(), Delay: pickF()}
		ctx.Customers["C"] = &Customer{Closed: pickI(), Missed: pickI(), Holds: pickI()}
		s.Build(pickT(), ctx, &v)
		check(i, "extreme state", &v)
	}
}
