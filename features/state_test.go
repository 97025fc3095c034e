package features

import (
	"testing"
	"time"
)

func TestFoldLifecycle(t *testing.T) {
	t0 := time.Date(2026, 5, 21, 8, 0, 0, 0, time.UTC)
	cutoff := t0.Add(6 * time.Hour)
	evs := []Event{
		{ID: "1", Type: TypeOrderCreated, OrderID: "SO-1", OccurredAt: t0, Data: EventData{Warehouse: "DAL", ShipCutoff: &cutoff, CustomerTier: "gold", Lines: 3, Value: 100}},
		{ID: "2", Type: TypeCreditHold, OrderID: "SO-1", OccurredAt: t0.Add(time.Minute)},
		{ID: "3", Type: TypeCreditHold, OrderID: "SO-1", OccurredAt: t0.Add(2 * time.Minute)},
		{ID: "4", Type: TypeAllocationShort, OrderID: "SO-1", OccurredAt: t0.Add(3 * time.Minute)},
		{ID: "5", Type: TypeIntegrationError, OrderID: "SO-1", OccurredAt: t0.Add(4 * time.Minute), Data: EventData{Text: "855 map fail"}},
	}
	var s OrderState
	for i := range evs {
		s.Apply(&evs[i])
	}
	if !s.Open() || !s.OnCreditHold || s.CreditHolds != 1 || !s.AllocationShort || s.IntegrationErrors != 1 || len(s.Texts) != 1 {
		t.Fatalf("state after holds = %+v", s)
	}
	now := t0.Add(5 * time.Hour)
	var v Vector
	s.Build(now, &v)
	if v[FMinutesToCutoff] != 60 || v[FHoursSinceCreated] != 5 || v[FOnCreditHold] != 1 || v[FCustomerTier] != 3 || v[FLines] != 3 {
		t.Errorf("vector = %v", v)
	}
	high := FallbackRisk(&v)

	for i, typ := range []string{TypeCreditReleased, TypeInventoryAllocated, TypePickConfirmed, TypePackConfirmed} {
		s.Apply(&Event{ID: string(rune('a' + i)), Type: typ, OrderID: "SO-1", OccurredAt: now})
	}
	s.Build(now, &v)
	if low := FallbackRisk(&v); low >= high {
		t.Errorf("fallback risk of a released, packed order %v >= on hold and short %v", low, high)
	}
	// Milestones never move back.
	s.Apply(&Event{ID: "x", Type: TypePickReleased, OrderID: "SO-1", OccurredAt: now})
	if s.Milestone != MilestonePacked {
		t.Errorf("milestone = %s after a late pick.released, want packed", s.Milestone)
	}
	s.Apply(&Event{ID: "y", Type: TypeShipmentConfirmed, OrderID: "SO-1", OccurredAt: now})
	if s.Open() {
		t.Error("a shipped order is still open")
	}
}

func TestTextsBounded(t *testing.T) {
	var s OrderState
	for i := range 3 * maxTexts {
		s.Apply(&Event{ID: "n", Type: TypeNoteAdded, OrderID: "SO-1", Data: EventData{Text: string(rune('a' + i))}})
	}
	if len(s.Texts) != maxTexts || s.Texts[maxTexts-1] != string(rune('a'+3*maxTexts-1)) {
		t.Errorf("texts = %q, want the newest %d", s.Texts, maxTexts)
	}
}
