package process

import (
	"slices"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Data-quality checks (the policy's data_quality:): the events of two systems
// disagree on the order of an order's milestones, e.g. finance invoiced what
// the WMS has not shipped. Each disagreement is an exception of kind
// KindDataQuality and class ClassDataQuality, owned by the policy's
// data_quality_owner, with no cause (it is about one order's records). It
// opens with the event that shows it, in that event's commit, and closes with
// the event that resolves it: the missing event (ClosedExpected, or
// ClosedLateDelivery when the missing event happened before the one that
// opened it: the systems agreed and the bus delivered late), the order's
// cancellation (ClosedCancelled) or an event of the policy's watch_until type
// other than the one that opened it (ClosedWatchEnded).
//
// Opened at once, not after a grace period: an exception opened by a late
// delivery closes as ClosedLateDelivery when the late event arrives, so the
// bus's disorder is told apart from the systems' and counted, and nothing waits
// on a timer. Activity after a cancellation is judged on event time, so a late
// delivery never opens it.
//
// The open exceptions are kept as deadline watches (watch) with no due time,
// their Deadline "data_quality/<check>", which no policy deadline id can be
// (ids hold no '/'): they load at start, leave with their partition and are
// stored in the commit of their event as deadline watches are, and no
// deadline timer fires them.

// ClassDataQuality is the class of a data-quality exception: an exception
// class of its own, not one of the model's classes (features.ExceptionClasses).
const ClassDataQuality = "data_quality"

// ClosedLateDelivery is how a data-quality exception closes when the event
// it missed arrives and happened before the event that opened it.
const ClosedLateDelivery = "late_delivery"

// The Deadline of a data-quality exception and the key of its watch.
const (
	dqInvoicedBeforeShipped = "data_quality/" + actions.CheckInvoicedBeforeShipped
	dqShippedWithoutPick    = "data_quality/" + actions.CheckShippedWithoutPick
	dqActivityAfterCancel   = "data_quality/" + actions.CheckActivityAfterCancel
	dqPickedBeforeReleased  = "data_quality/" + actions.CheckPickedBeforeReleased
)

// dataQualityEvent applies an order's event to its data-quality checks: it
// closes the exceptions the event resolves and opens those it shows. rec holds
// the state with the event; was is the order's milestone before it.
func (p *Processor) dataQualityEvent(batch *store.Batch, rec *orderRecord, ev *features.Event, was string) error {
	switch ev.Type {
	case features.TypePickReleased, features.TypePickConfirmed, features.TypePackConfirmed,
		features.TypeShipmentConfirmed, features.TypeInvoiceCreated, features.TypeOrderCancelled:
	default:
		return nil
	}
	pol := &p.opts.Policy.Policy().ExceptionPolicy
	// What the event resolves; exceptions stay closable when the policy stops
	// running their check.
	var closes [3]string
	how := ClosedExpected
	switch ev.Type {
	case features.TypePickReleased:
		closes[0] = dqPickedBeforeReleased
	case features.TypePickConfirmed, features.TypePackConfirmed:
		closes[0] = dqShippedWithoutPick
	case features.TypeShipmentConfirmed:
		closes[0] = dqInvoicedBeforeShipped
	case features.TypeOrderCancelled:
		closes = [3]string{dqInvoicedBeforeShipped, dqShippedWithoutPick, dqPickedBeforeReleased}
		how = ClosedCancelled
	}
	for _, d := range closes {
		if err := p.closeDataQuality(batch, ev, d, how); err != nil {
			return err
		}
	}
	closedAfterCancel := false // activity after a cancellation, closed by this event
	if ev.Type == pol.WatchUntil {
		_, had := p.watches.m[watchKey{ev.OrderID, dqActivityAfterCancel}]
		for _, d := range [...]string{dqInvoicedBeforeShipped, dqShippedWithoutPick, dqActivityAfterCancel, dqPickedBeforeReleased} {
			if err := p.closeDataQuality(batch, ev, d, ClosedWatchEnded); err != nil {
				return err
			}
		}
		_, has := p.watches.m[watchKey{ev.OrderID, dqActivityAfterCancel}]
		closedAfterCancel = had && !has
	}
	if len(pol.DataQuality) == 0 {
		return nil
	}
	// No check opens once the order's watch ended: before this event, or with
	// it for activity after a cancellation that it closed just now.
	if m, ok := milestoneOf[pol.WatchUntil]; ok && rank(was) >= rank(m) {
		return nil
	}
	s := &rec.State
	if s.Cancelled {
		if !closedAfterCancel && pol.RunsCheck(actions.CheckActivityAfterCancel) && activityAfterCancel(s, ev) {
			return p.openDataQuality(batch, rec, ev, dqActivityAfterCancel, pol)
		}
		return nil
	}
	// No check opens once the order's watch ended before this event.
	if m, ok := milestoneOf[pol.WatchUntil]; ok && rank(was) >= rank(m) {
		return nil
	}
	check, d := "", ""
	switch {
	case ev.Type == features.TypeInvoiceCreated && s.ShippedAt.IsZero():
		check, d = actions.CheckInvoicedBeforeShipped, dqInvoicedBeforeShipped
	case ev.Type == features.TypeShipmentConfirmed && rank(was) < rank(features.MilestonePicked):
		check, d = actions.CheckShippedWithoutPick, dqShippedWithoutPick
	case ev.Type == features.TypePickConfirmed && rank(was) < rank(features.MilestoneReleased):
		check, d = actions.CheckPickedBeforeReleased, dqPickedBeforeReleased
	}
	if check == "" || !pol.RunsCheck(check) {
		return nil
	}
	return p.openDataQuality(batch, rec, ev, d, pol)
}

// activityAfterCancel reports whether a cancelled order's event shows pick,
// pack, shipment or invoicing after the cancellation, by event time: an
// activity event later than every event known of the order (the cancellation
// among them), or a cancellation earlier than the order's milestone, shipment
// or invoice. An activity delivered late, before a later event of the order
// that is not its cancellation, is not judged (the state keeps no time of
// the cancellation).
func activityAfterCancel(s *features.OrderState, ev *features.Event) bool {
	switch ev.Type {
	case features.TypeOrderCancelled:
		at := ev.OccurredAt
		return (rank(s.Milestone) >= rank(features.MilestonePicked) && s.MilestoneAt.After(at)) ||
			s.ShippedAt.After(at) || s.InvoiceAt.At.After(at)
	case features.TypePickConfirmed, features.TypePackConfirmed, features.TypeShipmentConfirmed, features.TypeInvoiceCreated:
		return ev.OccurredAt.Equal(s.LastEventAt)
	}
	return false
}

// rank is a milestone's place in features.Milestones.
func rank(m string) int { return max(slices.Index(features.Milestones, m), 0) }

// openDataQuality opens the exception of a data-quality check d on the
// event's order, unless one is open.
func (p *Processor) openDataQuality(batch *store.Batch, rec *orderRecord, ev *features.Event, d string, pol *actions.ExceptionPolicy) error {
	if _, ok := p.watches.m[watchKey{ev.OrderID, d}]; ok {
		return nil
	}
	s := &rec.State
	x := &Exception{Order: ev.OrderID, Deadline: d, Class: ClassDataQuality, Category: actions.CategoryDataQuality,
		Owner: pol.DataQualityOwner, StartedAt: ev.OccurredAt, StartEvent: ev.ID, DueAt: ev.OccurredAt, OpenedAt: ev.OccurredAt,
		Open: true, Warehouse: s.Warehouse, Carrier: s.Carrier, Customer: s.CustomerID,
		Kind: KindDataQuality, OpenEvent: ev.ID, Source: ev.Source}
	x.ID = ev.OrderID + "/" + exceptionKey(x)
	w := &watch{Order: ev.OrderID, Deadline: d, Started: ev.OccurredAt, StartEvent: ev.ID, Exception: x,
		Warehouse: s.Warehouse, Carrier: s.Carrier, Customer: s.CustomerID}
	if err := p.putException(batch, x, 0); err != nil {
		return err
	}
	return p.putWatch(batch, w)
}

// closeDataQuality closes the open exception of data-quality check d on the
// event's order, if any, as how, at the event's time; an exception is not
// closed by the watch end of the event that opened it, and one closed by the
// event it missed that happened before the event that opened it closes as
// ClosedLateDelivery, at the watermark (when the late event arrived), never
// before it opened.
func (p *Processor) closeDataQuality(batch *store.Batch, ev *features.Event, d, how string) error {
	if d == "" {
		return nil
	}
	w := p.watches.m[watchKey{ev.OrderID, d}]
	if w == nil || w.Exception == nil || w.StartEvent == ev.ID {
		return nil
	}
	at := ev.OccurredAt
	if how == ClosedExpected && !at.After(w.Started) {
		// It closes when the late event arrives: at the watermark, not
		// before it opened.
		how, at = ClosedLateDelivery, p.watermark
	}
	if at.Before(w.Exception.OpenedAt) {
		at = w.Exception.OpenedAt
	}
	k := watchKey{w.Order, w.Deadline}
	p.watches.touch(k)
	p.watches.remove(k)
	x := w.Exception
	x.Open, x.ClosedAt, x.ClosedBy, x.CloseEvent = false, at, how, ev.ID
	return p.putException(batch, x, p.opts.Retention)
}
