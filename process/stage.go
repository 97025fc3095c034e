package process

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	seq, part, mode := it.msg.Seq, it.msg.Partition, it.msg.Mode
	names := p.countersOf(part)
	if it.reason != "" {
		if done, err := p.claimSeq(batch, part, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		// Only the owner of the message, live, publishes its dead letter; a
		// rebuild or a follower counts it.
		if mode == ModeLive || mode == ModeAccount {
			if err := p.opts.DeadLetter(ctx, it.msg, it.reason, it.detail); err != nil {
				p.m.failures.WithLabelValues(stageDLQPublish).Inc()
				return fmt.Errorf("%w: message %d: %w", ErrDeadLetter, seq, err)
			}
		}
		it.result = resultDeadLetter
		if mode != ModeFollow {
			batch.Add(names.deadLettered, 1)
		}
		return nil
	}
	// A valid event is marked by its id, with the sequence it came from: the same
	// sequence again is a redelivery after a lost ack, another one a duplicate. A
	// duplicate is marked by its own sequence, so its redelivery is not counted
	// twice.
	ev := &it.ev
	prev, seen, err := p.eventSeq(batch, part, ev.ID)
	switch {
	case err != nil:
		return err
	case seen && prev == seq:
		it.result = resultRedelivery
		return nil
	case seen:
		if done, err := p.claimSeq(batch, part, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		it.result = resultDuplicate
		if mode != ModeFollow {
			batch.Add(names.duplicates, 1)
		}
		return nil
	}
	if err := batch.MarkEvent(part, ev.ID, seq); err != nil {
		return err
	}
	p.ids[partID{part, ev.ID}] = seq
	it.result = resultApplied
	switch mode {
	case ModeRebuild:
		batch.Add(names.applied, 1)
		return p.rebuild(batch, it)
	case ModeFollow:
		if features.IsContext(ev.Type) {
			p.ctx.Apply(ev)
		}
		return nil
	case ModeAccount:
		batch.Add(names.applied, 1)
		return nil
	}
	batch.Add(names.applied, 1)

	if ev.OccurredAt.After(p.watermark) {
		if p.opts.EventTime {
			// Timers due before this event happened fire on the state before it.
			if err := p.fireDue(batch, ev.OccurredAt); err != nil {
				return err
			}
		}
		p.watermark = ev.OccurredAt
	}
	history, err := p.history(batch, ev.OccurredAt)
	if err != nil {
		return err
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
	if err := p.deadlineEvent(batch, rec, ev); err != nil {
		return err
	}
	if err := p.dataQualityEvent(batch, rec, ev, was); err != nil {
		return err
	}
	p.addTimeline(batch, rec, it)
	moment := p.moment()
	if history {
		moment = p.caught.at
	}
	// A closed order's outcome is known; so is an open one's seen past its
	// cutoff unshipped, which has no cutoff timer left to count it.
	p.countOutcome(rec, moment)
	if rec.State.Open() {
		p.addRow(rec, moment, TriggerEvent, ev.ID)
	}
	return nil
}

// rebuild folds an event of a partition taken over: the state, the timeline and
// the next rescoring, as the previous owner had them, without scoring or
// deciding.
func (p *Processor) rebuild(batch *store.Batch, it *item) error {
	ev := &it.ev
	if features.IsContext(ev.Type) {
		return nil
	}
	rec, err := p.order(batch, ev.OrderID)
	if err != nil {
		return err
	}
	was := rec.State.Milestone
	rec.State.Apply(ev)
	if err := p.deadlineEvent(batch, rec, ev); err != nil {
		return err
	}
	if err := p.dataQualityEvent(batch, rec, ev, was); err != nil {
		return err
	}
	p.addTimeline(batch, rec, it)
	if !rec.State.Open() {
		return nil
	}
	if next, ok := NextCheckpoint(rec.State.OrderID, rec.State.ShipCutoff, p.opts.Clock().UTC()); ok {
		rec.NextDue = next
		p.dues.set(rec.State.OrderID, next)
	} else {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
	return nil
}

// RescoreRebuilt scores every open order of a partition rebuilt from another
// member's messages, now, as a rescoring timer does: the rebuild folds without
// scoring, so that until their next event or checkpoint (hours away for an
// order whose cutoff is more than four hours off) the orders would hold no
// risk and no class, and the at-risk queue would lose them. Call it on the
// loop once the partition's governance is restored and its source reads: the
// rules' episodes and cooldowns the previous owner left then keep what it
// decided from being decided again (a rule that fired goes on in its episode;
// one firing now for the first time has the idempotency key the previous
// owner would have given it). It commits like Tick (maxTimerRows orders at a
// time; an order that cannot be rescored is dropped, counted and logged) and
// reports how many orders it scheduled. Not in event-time mode, where the
// clock is the events'.
func (p *Processor) RescoreRebuilt(part int) (int, Result, error) {
	if p.opts.EventTime {
		return 0, Result{}, nil
	}
	if p.flight != nil {
		return 0, Result{}, errors.New("process: rescore a rebuilt partition while a batch commits: Wait for it first")
	}
	now := p.opts.Clock()
	var n int
	err := p.opts.Store.Orders(func(id string, raw []byte) error {
		if p.opts.PartitionOf(id) != part {
			return nil
		}
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil || !rec.State.Open() {
			return nil // an unreadable record fails where it is read for its events
		}
		p.dues.set(id, now)
		n++
		return nil
	})
	if err != nil {
		return 0, Result{}, fmt.Errorf("process: read the open orders of rebuilt partition %d: %w", part, err)
	}
	if n == 0 {
		return 0, Result{}, nil
	}
	res, err := p.drainDue(now)
	return n, res, err
}
