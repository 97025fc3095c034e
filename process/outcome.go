package process

import (
	"fmt"
	"slices"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// OutcomeOf returns the outcome an order's own events show at now, the end of the
// stream's event time, in the form of a labels file (Label); false when they show
// none yet. The outcome is decided at the order's outcome moment (OutcomeAt): it
// missed its cutoff when that moment is after the cutoff, by the whole minutes
// (rounded up) from the cutoff to it.
//
// The class is the one s shows, by the precedence the live quality join uses
// (features.OrderState.SeenException); a miss that none of its events explains
// is the warehouse's: warehouse_capacity, as the simulator's labels name it. So
// that only what happened by the outcome can explain it (a carrier's pickup scan
// after the shipment is no carrier exception), s is to hold the events up to the
// outcome moment: Outcomes refolds them from the order's timeline.
func OutcomeOf(s *features.OrderState, cancelledAt, now time.Time) (Label, bool) {
	end, ok := OutcomeAt(s, cancelledAt, now)
	if !ok {
		return Label{}, false
	}
	missed := end.After(s.ShipCutoff)
	l := Label{MissedCutoff: missed, ExceptionClass: outcomeClass(s, missed)}
	if l.MissedCutoff {
		l.MinutesLate = float64((end.Sub(s.ShipCutoff) + time.Minute - 1) / time.Minute)
	}
	return l, true
}

// OutcomeAt returns the moment an order's outcome is decided, as its events show
// it at now: its shipment, else its cancellation, else now if its ship cutoff
// has passed unshipped. An open order whose cutoff is not past now, or an order
// whose order.created was never seen (it has no cutoff), has none yet.
// cancelledAt is the time of the order's earliest order.cancelled event; it is
// read only for a cancelled order that never shipped.
func OutcomeAt(s *features.OrderState, cancelledAt, now time.Time) (time.Time, bool) {
	switch {
	case !s.Known || s.ShipCutoff.IsZero():
		return time.Time{}, false
	case !s.ShippedAt.IsZero():
		return s.ShippedAt, true
	case s.Cancelled:
		return cancelledAt, true
	case now.After(s.ShipCutoff):
		return now, true
	}
	return time.Time{}, false
}

// OutcomeStats counts what Outcomes found.
type OutcomeStats struct {
	End       time.Time // the stream's end: its greatest event time (the watermark)
	Orders    int       // orders stored
	Labelled  int       // with an outcome
	Missed    int       // of those, missed their cutoff
	NoOutcome int       // known, open and not past their cutoff at End
	Unknown   int       // no order.created seen: no cutoff, no rows, no outcome
	Refolded  int       // with events after their outcome, refolded from their timeline
	// Clipped are the refolded orders whose timeline dropped references (more
	// than MaxTimeline events): refolded from the ones it kept.
	Clipped int
}

// Outcomes derives every order's outcome (OutcomeOf) from what a replay left in
// its store, at the stream's end. An order with no event after its outcome
// moment is judged on its stored state; one with later events (the carrier's
// scans and the invoice after a shipment, notes after a cancellation) is
// refolded from its timeline up to that moment. It holds one Label per order
// with an outcome, and the ids of the orders to refold.
func Outcomes(st *store.Store) (map[string]Label, OutcomeStats, error) {
	var stats OutcomeStats
	if wm, err := st.Meta("watermark"); err != nil {
		return nil, stats, fmt.Errorf("process: derive outcomes: %w", err)
	} else if wm != nil {
		if err := stats.End.UnmarshalText(wm); err != nil {
			return nil, stats, fmt.Errorf("process: derive outcomes: stored watermark %q: %w", wm, err)
		}
	}
	out := map[string]Label{}
	var refold []string
	err := st.Orders(func(id string, raw []byte) error {
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil {
			return fmt.Errorf("order %s: %w", id, err)
		}
		stats.Orders++
		s := &rec.State
		if !s.Known {
			stats.Unknown++
			return nil
		}
		// Its outcome moment is its last event or later, unless it has events
		// after its shipment, or is cancelled with events after its cutoff
		// (its cancellation may be after the cutoff, or before it). A cancelled
		// order with none after its cutoff was cancelled by then, which is all
		// its outcome needs of the time: LastEventAt stands in.
		if !s.ShippedAt.IsZero() && s.LastEventAt.After(s.ShippedAt) ||
			s.ShippedAt.IsZero() && s.Cancelled && s.LastEventAt.After(s.ShipCutoff) {
			refold = append(refold, id)
			return nil
		}
		stats.add(out, id, s, s.LastEventAt)
		return nil
	})
	if err != nil {
		return nil, stats, fmt.Errorf("process: derive outcomes: %w", err)
	}
	var evs []features.Event
	for _, id := range refold {
		var err error
		var full features.OrderState
		var dropped int
		if evs, full, dropped, err = timeline(st, id, evs[:0]); err != nil {
			return nil, stats, fmt.Errorf("process: derive outcomes: %w", err)
		}
		var cancelledAt time.Time
		for i := range evs {
			if evs[i].Type == features.TypeOrderCancelled && (cancelledAt.IsZero() || evs[i].OccurredAt.Before(cancelledAt)) {
				cancelledAt = evs[i].OccurredAt
			}
		}
		if dropped > 0 {
			stats.Clipped++
		}
		if full.ShippedAt.IsZero() && cancelledAt.IsZero() {
			if dropped == 0 {
				return nil, stats, fmt.Errorf("process: derive outcomes: order %s: its timeline shows no cancellation, its state does: was the store pruned?", id)
			}
			// Its cancellation was among the references dropped: it was
			// cancelled by its last event, which stands in.
			cancelledAt = full.LastEventAt
		}
		end, _ := OutcomeAt(&full, cancelledAt, stats.End)
		var by features.OrderState
		for i := range evs {
			if !evs[i].OccurredAt.After(end) {
				by.Apply(&evs[i])
			}
		}
		// The cutoff and shipment are the full fold's (the stored state, which
		// folds every event whatever their order): an order.changed of the
		// cutoff after the shipment still moves it.
		by.Known, by.ShipCutoff, by.ShippedAt, by.Cancelled = full.Known, full.ShipCutoff, full.ShippedAt, full.Cancelled
		stats.Refolded++
		stats.add(out, id, &by, cancelledAt)
	}
	return out, stats, nil
}

func (stats *OutcomeStats) add(out map[string]Label, id string, s *features.OrderState, cancelledAt time.Time) {
	l, ok := OutcomeOf(s, cancelledAt, stats.End)
	if !ok {
		stats.NoOutcome++
		return
	}
	out[id] = l
	stats.Labelled++
	if l.MissedCutoff {
		stats.Missed++
	}
}

// timeline appends the order's events, by event time, to dst, and returns its
// stored state and how many of its timeline's references were dropped
// (MaxTimeline). The events an earlier release stored whole are read whole;
// those of the timeline's references (timeline.go) carry what outcomes need:
// their type, time and id, and data.change.
func timeline(st *store.Store, id string, dst []features.Event) ([]features.Event, features.OrderState, int, error) {
	v, err := st.Order(id)
	if err != nil {
		return dst, features.OrderState{}, 0, err
	}
	var rec orderRecord
	if err := decodeRecord(v.Record, &rec); err != nil {
		return dst, features.OrderState{}, 0, fmt.Errorf("order %s: %w", id, err)
	}
	for _, raw := range v.Timeline {
		var ev features.Event
		if err := features.Decode(raw, &ev); err != nil {
			return dst, rec.State, 0, fmt.Errorf("order %s: timeline event: %w", id, err)
		}
		dst = append(dst, ev)
	}
	for i := range rec.Timeline.Entries {
		dst = append(dst, rec.Timeline.Entries[i].event(id, &rec.State.ShipCutoff))
	}
	slices.SortStableFunc(dst, func(a, b features.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return dst, rec.State, rec.Timeline.Dropped, nil
}
