package features

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 21, 8, 0, 0, 0, time.UTC)

func ev(id, typ string, at time.Duration, d EventData) Event {
	return Event{ID: id, Type: typ, OrderID: "SO-1", OccurredAt: t0.Add(at), Schema: 1, Data: d}
}

func lifecycle() []Event {
	cutoff := t0.Add(6 * time.Hour)
	later := t0.Add(7 * time.Hour)
	return []Event{
		ev("1", TypeOrderCreated, 0, EventData{Warehouse: "DAL", ShipCutoff: &cutoff, CustomerID: "C-1", CustomerTier: "gold", Channel: "edi", Carrier: "ODFL", ServiceLevel: "next_day", Lines: 3, Units: 12, Value: 100}),
		ev("2", TypeCreditHold, time.Minute, EventData{Reason: "over_limit"}),
		ev("3", TypeCreditReleased, 90*time.Minute, EventData{}),
		ev("4", TypeAllocationShort, 2*time.Hour, EventData{ShortUnits: 2}),
		ev("5", TypeIntegrationError, 2*time.Hour+time.Minute, EventData{System: "edi", Text: "855 map fail seg PO1"}),
		ev("6", TypeOrderChanged, 2*time.Hour+2*time.Minute, EventData{Change: "address"}),
		ev("7", TypeOrderChanged, 2*time.Hour+3*time.Minute, EventData{Change: "quantity", ShipCutoff: &later, Units: 10}),
		ev("8", TypeAllocationChanged, 2*time.Hour+30*time.Minute, EventData{Warehouse: "ATL"}),
		ev("9", TypeCreditHold, 3*time.Hour, EventData{Reason: "past_due"}),
		ev("10", TypePickReleased, 3*time.Hour+10*time.Minute, EventData{}),
		ev("11", TypeNoteAdded, 3*time.Hour+11*time.Minute, EventData{Text: "cust called"}),
		ev("12", TypeCarrierStatus, 3*time.Hour+12*time.Minute, EventData{Text: "trailer late"}),
	}
}

func TestFoldLifecycle(t *testing.T) {
	var s OrderState
	evs := lifecycle()
	for i := range evs {
		s.Apply(&evs[i])
	}
	switch {
	case !s.Open() || s.Closed():
		t.Error("order should be open")
	case !s.OnCreditHold() || s.CreditHolds != 2 || s.HoldAt.ID != "9":
		t.Errorf("credit: on hold %v, holds %d, latest %v; want on the second hold", s.OnCreditHold(), s.CreditHolds, s.HoldAt)
	case s.AllocationShort():
		t.Error("a re-allocation after the shortfall should close it")
	case s.Warehouse != "ATL" || !s.ShipCutoff.Equal(t0.Add(7*time.Hour)) || s.Units != 10 || s.Lines != 3:
		t.Errorf("changes: warehouse %s cutoff %s units %d lines %d", s.Warehouse, s.ShipCutoff, s.Units, s.Lines)
	case !s.AddressChanged || s.Changes != 2 || s.IntegrationErrors != 1 || s.CarrierIssues != 1 || len(s.Texts) != 3:
		t.Errorf("counts: %+v", s)
	case s.Milestone != MilestoneReleased || !s.MilestoneAt.Equal(t0.Add(3*time.Hour+10*time.Minute)):
		t.Errorf("milestone %s at %s", s.Milestone, s.MilestoneAt)
	}

	ctx := NewContext()
	share := 0.7
	for _, c := range []Event{
		{ID: "w1", Type: TypeWarehouseLoad, OccurredAt: t0, Data: EventData{Warehouse: "ATL", Queue: 300, Capacity: 100, Timezone: "America/New_York"}},
		{ID: "c1", Type: TypeCarrierPerformance, OccurredAt: t0, Data: EventData{Carrier: "ODFL", OnTimeShare: &share, DelayMinutes: 45}},
	} {
		ctx.Apply(&c)
	}
	var v Vector
	moment := t0.Add(4 * time.Hour) // 12:00 UTC, 08:00 in New York, a Thursday
	s.Build(moment, ctx, &v)
	want := map[int]float32{
		FMinutesToCutoff: 180, FHoursSinceCreated: 4, FMilestoneRank: 3, FMinutesInMilestone: 50,
		FOnCreditHold: 1, FHoldMinutes: 60, FCreditHolds: 2, FAllocationShort: 0, FAddressChanged: 1,
		FCustomerTier: 3, FChannelEDI: 1, FExpedited: 1, FLines: 3,
		FWarehouseLoadRatio: 3, FLocalHour: 8, FLocalWeekday: 3, FCarrierOnTime: 0.7, FCarrierDelayMinutes: 45, FCustomerMissRate: 0.1,
	}
	for i, w := range want {
		if v[i] != w {
			t.Errorf("%s = %v, want %v", Names[i], v[i], w)
		}
	}
	if FallbackRisk(&v) <= 0.3 {
		t.Errorf("fallback risk %v of an order on hold 3 h before cutoff at a loaded warehouse, want > 0.3", FallbackRisk(&v))
	}
}

// TestFoldIgnoresArrivalOrder: any permutation of the same events folds to the
// same state, so late and out-of-order events are applied by event time.
func TestFoldIgnoresArrivalOrder(t *testing.T) {
	evs := lifecycle()
	var want OrderState
	for i := range evs {
		want.Apply(&evs[i])
	}
	wantJSON, _ := json.Marshal(want)
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		var got OrderState
		for i := range evs {
			got.Apply(&evs[i])
		}
		if gotJSON, _ := json.Marshal(got); string(gotJSON) != string(wantJSON) {
			t.Fatalf("permutation %d folds to\n%s\nwant\n%s", n, gotJSON, wantJSON)
		}
	}
}

func TestEventBeforeCreated(t *testing.T) {
	evs := lifecycle()
	var s OrderState
	s.Apply(&evs[1]) // credit.hold before order.created
	if s.Known || s.Open() || !s.OnCreditHold() {
		t.Fatalf("early hold: %+v", s)
	}
	s.Apply(&evs[0])
	if !s.Known || !s.Open() || !s.OnCreditHold() || s.Warehouse != "DAL" {
		t.Errorf("after created: %+v", s)
	}
}

func TestTextsBoundedNewestKept(t *testing.T) {
	var s OrderState
	r := rand.New(rand.NewPCG(3, 4))
	for _, i := range r.Perm(3 * maxTexts) {
		e := ev(fmt.Sprint(i), TypeNoteAdded, time.Duration(i)*time.Minute, EventData{Text: fmt.Sprint(i)})
		s.Apply(&e)
	}
	got := s.TextValues(nil)
	want := make([]string, maxTexts)
	for i := range want {
		want[i] = fmt.Sprint(2*maxTexts + i)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("texts = %q, want the newest %q", got, want)
	}
}

func TestCountOutcomeOnce(t *testing.T) {
	ctx := NewContext()
	evs := lifecycle()
	var s OrderState
	s.Apply(&evs[0]) // cutoff t0+6h
	ctx.CountOutcome(&s, t0.Add(5*time.Hour))
	if ctx.Customers["C-1"] != nil {
		t.Fatal("counted before the cutoff passed")
	}
	ctx.CountOutcome(&s, t0.Add(6*time.Hour))
	ship := ev("s", TypeShipmentConfirmed, 6*time.Hour+time.Minute, EventData{})
	s.Apply(&ship)
	ctx.CountOutcome(&s, ship.OccurredAt)
	if u := ctx.Customers["C-1"]; u == nil || u.Closed != 1 || u.Missed != 1 {
		t.Errorf("customer = %+v, want 1 closed, 1 missed, counted once", u)
	}
}

func TestWindow(t *testing.T) {
	var w Window
	for m := range 120 {
		w.Add(t0.Add(time.Duration(m) * time.Minute))
	}
	if got := w.Sum(t0.Add(119 * time.Minute)); got != 60 {
		t.Errorf("sum over the last hour = %v, want 60", got)
	}
	w.Add(t0) // older than the window: not counted
	if got := w.Sum(t0.Add(119 * time.Minute)); got != 60 {
		t.Errorf("after a stale add: %v, want 60", got)
	}
	if got := w.Sum(t0.Add(150 * time.Minute)); got != 29 {
		t.Errorf("30 minutes later: %v, want 29", got)
	}
}

// BenchmarkFoldAndBuild measures the per-event work of the feature engine (no
// decoding, no NATS, no Badger): fold the event, update the context, build the
// order's vector.
func BenchmarkFoldAndBuild(b *testing.B) {
	evs := lifecycle()
	ctx := NewContext()
	var v Vector
	states := make([]OrderState, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &evs[i%len(evs)]
		s := &states[(i/len(evs))%len(states)]
		if e.Type == TypeOrderCreated {
			*s = OrderState{}
		}
		s.Apply(e)
		ctx.Observe(e, s)
		s.Build(e.OccurredAt, ctx, &v)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
