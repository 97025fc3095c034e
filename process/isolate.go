package process

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/orderwatch/orderwatch/features"
)

// Process applies one batch: dead letters first, then one synced Badger commit
// for every effect. What an error does depends on its Class (Classify):
//
//   - Transient: Process returns it at once. The batch, or the part of it being
//     applied, was not committed: the caller must not ack, and retries later.
//   - TooBig: the batch is applied in halves, each in its own commit.
//   - Poison: the batch is bisected the same way, down to the message that
//     fails alone. The rescoring timers due before it go first, in commits of
//     their own, and one that fails alone is dropped; if the message still
//     fails, it is dead-lettered with ReasonPoison and the error as detail.
//
// So no message, stored record or timer holds up the others. An error means
// the batch (or its second half) was not committed: the in-memory mirrors are
// reloaded and the caller must not ack; redelivered messages of a committed half
// are recognised by their sequence.
func (p *Processor) Process(ctx context.Context, msgs []*Message) (Result, error) {
	res, err := p.process(ctx, msgs, nil)
	switch Classify(err) {
	case None, Transient:
		return res, err
	case Poison:
		p.m.failures.WithLabelValues(stagePoison).Inc()
	}
	if len(msgs) >= 2 {
		half := len(msgs) / 2
		first, err := p.Process(ctx, msgs[:half])
		if err != nil {
			return first, err
		}
		second, err := p.Process(ctx, msgs[half:])
		return first.add(second), err
	}
	// One message fails alone. The timers it lets fire go first, in commits of
	// their own (a poison timer among them is dropped), then the message again.
	var drained Result
	if t, ok := p.firesUntil(msgs); ok {
		var derr error
		if drained, derr = p.drainDue(t); derr != nil {
			return drained, errors.Join(err, derr)
		}
		if drained.Timers {
			again, aerr := p.process(ctx, msgs, nil)
			if c := Classify(aerr); c == None || c == Transient {
				return drained.add(again), aerr
			}
			err = aerr
		}
	}
	if len(msgs) == 0 {
		return drained, err
	}
	again, perr := p.process(ctx, msgs, err)
	return drained.add(again), perr
}

// firesUntil is the time up to which the timers fire when msgs is applied:
// the wall clock live; in event-time mode, the first message's event time when it
// moves the watermark; while catching up on history, when it is history that
// moves the catch-up's watermark.
func (p *Processor) firesUntil(msgs []*Message) (time.Time, bool) {
	if p.clockTimers() {
		return p.opts.Clock(), true
	}
	var ev features.Event
	if len(msgs) == 0 || features.Decode(msgs[0].Data, &ev) != nil {
		return time.Time{}, false
	}
	if p.opts.EventTime && ev.OccurredAt.After(p.watermark) ||
		!p.opts.EventTime && ev.OccurredAt.Before(p.opts.CatchUpBefore) && ev.OccurredAt.After(p.caught.at) {
		return ev.OccurredAt, true
	}
	return time.Time{}, false
}

// maxDetail bounds the detail of a poison dead letter (a header).
const maxDetail = 480

// poisonDetail is the error of a poison message as a dead letter's detail: one
// line of valid UTF-8, at most maxDetail bytes.
func poisonDetail(err error) string {
	s := err.Error()
	b := make([]byte, 0, min(len(s), maxDetail))
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			r = ' '
		}
		if len(b)+utf8.RuneLen(r) > maxDetail {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// errNoTimer: a batch of timers alone failed, but no timer was due.
var errNoTimer = errors.New("process: rescoring failed with no timer due")

// dropTimer drops the first rescoring timer due at or before t, in the store
// (its order's record, and an entry an earlier release kept) and in memory:
// its order could not be rescored (err). The order is scored again at its
// next event, which schedules its next timer.
func (p *Processor) dropTimer(t time.Time) error {
	e, ok := p.dues.first(t)
	if !ok {
		return errNoTimer
	}
	b := p.opts.Store.NewBatch()
	if err := p.dropDue(b, e.order); err != nil {
		b.Discard()
		return fmt.Errorf("process: drop the rescoring timer of order %s: %w", e.order, err)
	}
	if err := b.DeleteDue(e.at, e.order); err != nil {
		b.Discard()
		return fmt.Errorf("process: drop the rescoring timer of order %s: %w", e.order, err)
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("%w: drop the rescoring timer of order %s: %w", ErrCommit, e.order, err)
	}
	p.dues.popDue(t)
	p.m.timersDropped.Inc()
	return nil
}
