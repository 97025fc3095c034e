package process

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// OutcomeOf returns the outcome an order's own events show at now, the end of the
// stream's event time, in the form of a labels file (Label); false when they show
// none yet. The outcome is decided at the order's shipment, else at its
// cancellation, else at now if its ship cutoff has passed unshipped: the order
// missed its cutoff when that moment is after the cutoff, by the whole minutes
// (rounded up) from the cutoff to it. An open order whose cutoff is not past now,
// or an order whose order.created was never seen (it has no cutoff), has no
// outcome yet. cancelledAt is the time of the order's earliest order.cancelled
// event; it is read only for a cancelled order that never shipped.
//
// The class is the one the order's events show, by the precedence the live
// quality join uses (features.OrderState.SeenException); a miss that none of its
// events explains is the warehouse's: warehouse_capacity, as the simulator's
// labels name it.
func OutcomeOf(s *features.OrderState, cancelledAt, now time.Time) (Label, bool) {
	if !s.Known || s.ShipCutoff.IsZero() {
		return Label{}, false
	}
	end := s.ShippedAt
	switch {
	case !end.IsZero():
	case s.Cancelled:
		end = cancelledAt
	case now.After(s.ShipCutoff):
		end = now
	default:
		return Label{}, false
	}
	l := Label{MissedCutoff: end.After(s.ShipCutoff), ExceptionClass: s.SeenException()}
	if l.MissedCutoff {
		l.MinutesLate = float64((end.Sub(s.ShipCutoff) + time.Minute - 1) / time.Minute)
		if l.ExceptionClass == features.ExceptionNone {
			l.ExceptionClass = features.ExceptionWarehouseCapacity
		}
	}
	return l, true
}

// OutcomeStats counts what Outcomes found.
type OutcomeStats struct {
	End       time.Time // the stream's end: its greatest event time (the watermark)
	Orders    int       // orders stored
	Labelled  int       // with an outcome
	Missed    int       // of those, missed their cutoff
	NoOutcome int       // known, open and not past their cutoff at End
	Unknown   int       // no order.created seen: no cutoff, no rows, no outcome
}

// Outcomes derives every order's outcome (OutcomeOf) from what a replay left in
// its store: the folded state of each order, at the stream's end. It holds one
// Label per order with an outcome. A cancelled order whose events run past its
// cutoff has its cancellation time read from its timeline.
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
	type cancelled struct {
		id string
		s  features.OrderState
	}
	var late []cancelled // cancelled, unshipped, with events after the cutoff
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
		// A cancelled order none of whose events is after its cutoff was
		// cancelled by then, which is all its outcome needs of the time
		// (LastEventAt stands in); one with later events needs its timeline,
		// read after this scan.
		if s.Cancelled && s.ShippedAt.IsZero() && s.LastEventAt.After(s.ShipCutoff) {
			rec.State.Texts = nil
			late = append(late, cancelled{id, rec.State})
			return nil
		}
		stats.add(out, id, s, s.LastEventAt)
		return nil
	})
	if err != nil {
		return nil, stats, fmt.Errorf("process: derive outcomes: %w", err)
	}
	for i := range late {
		at, err := cancelledAt(st, late[i].id)
		if err != nil {
			return nil, stats, fmt.Errorf("process: derive outcomes: %w", err)
		}
		stats.add(out, late[i].id, &late[i].s, at)
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

// cancelledAt returns the time of the order's earliest order.cancelled event in
// its timeline.
func cancelledAt(st *store.Store, id string) (time.Time, error) {
	v, err := st.Order(id)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	for _, raw := range v.Timeline {
		var ev struct {
			Type       string    `json:"type"`
			OccurredAt time.Time `json:"occurred_at"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			return time.Time{}, fmt.Errorf("order %s: timeline event: %w", id, err)
		}
		if ev.Type == features.TypeOrderCancelled && (at.IsZero() || ev.OccurredAt.Before(at)) {
			at = ev.OccurredAt
		}
	}
	if at.IsZero() {
		return at, fmt.Errorf("order %s is cancelled but its timeline holds no %s event: was the store pruned?", id, features.TypeOrderCancelled)
	}
	return at, nil
}
