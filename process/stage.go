package process

import (
	"context"
	"fmt"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// item is one message of a batch and what became of it.
type item struct {
	msg    *Message
	ev     features.Event
	reason string // dead-letter reason; empty when the event is valid
	detail string
	result string
}

// apply handles one message within the batch.
func (p *Processor) apply(ctx context.Context, batch *store.Batch, it *item) error {
	seq := it.msg.Seq
	if it.reason != "" {
		if done, err := p.claimSeq(batch, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		if err := p.opts.DeadLetter(ctx, it.msg, it.reason, it.detail); err != nil {
			p.m.failures.WithLabelValues(stageDLQPublish).Inc()
			return fmt.Errorf("%w: message %d: %w", ErrDeadLetter, seq, err)
		}
		it.result = resultDeadLetter
		batch.Add(store.CounterDeadLettered, 1)
		return nil
	}
	// A valid event is marked by its id, with the sequence it came from: the same
	// sequence again is a redelivery after a lost ack, another one a duplicate. A
	// duplicate is marked by its own sequence, so its redelivery is not counted
	// twice.
	ev := &it.ev
	prev, seen, err := p.eventSeq(batch, ev.ID)
	switch {
	case err != nil:
		return err
	case seen && prev == seq:
		it.result = resultRedelivery
		return nil
	case seen:
		if done, err := p.claimSeq(batch, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		it.result = resultDuplicate
		batch.Add(store.CounterDuplicates, 1)
		return nil
	}
	if err := batch.MarkEvent(ev.ID, seq); err != nil {
		return err
	}
	p.ids[ev.ID] = seq
	it.result = resultApplied
	batch.Add(store.CounterEventsApplied, 1)

	if ev.OccurredAt.After(p.watermark) {
		if p.opts.EventTime {
			// Timers due before this event happened fire on the state before it.
			if err := p.fireDue(batch, ev.OccurredAt); err != nil {
				return err
			}
		}
		p.watermark = ev.OccurredAt
	}
	if features.IsContext(ev.Type) {
		p.ctx.Apply(ev)
		return nil
	}
	rec, err := p.order(batch, ev.OrderID)
	if err != nil {
		return err
	}
	was, wasAt := rec.State.Milestone, rec.State.MilestoneAt
	rec.State.Apply(ev)
	if m := rec.State.Milestone; m != was && was != "" {
		if d := rec.State.MilestoneAt.Sub(wasAt); d >= 0 {
			p.stays = append(p.stays, milestoneStay{was, d})
		}
	}
	p.ctx.Observe(ev, &rec.State)
	ttl := p.opts.Retention
	if err := batch.AppendTimeline(ev.OrderID, ev.OccurredAt, ev.ID, it.msg.Data, ttl); err != nil {
		return err
	}
	moment := p.moment()
	if rec.State.Closed() {
		p.countOutcome(rec, moment)
	}
	if rec.State.Open() {
		p.addRow(rec, moment, TriggerEvent, ev.ID)
	}
	return nil
}
