package process

import (
	"errors"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// maxTimerRows bounds the rescoring rows of a commit of timers alone: cutoffs
// cluster, and a watermark jump or a backlog after downtime can make thousands
// of timers due at once, more than one Badger commit takes.
const maxTimerRows = 512

// timerSlice bounds the timers that fire by the wall clock between two
// batches: those a Tick fires, in one commit, and those a batch fires in its
// own commit. A batch that arrives while timers are due waits behind one
// slice, never behind all of them: a Tick that drained every due timer (in
// commits of maxTimerRows) held the messages behind it for as long as the
// drain took, and a batch staged after a cluster of cutoffs carried them
// all. What a slice leaves due fires with the next batch or Tick
// (Result.TimersLeft).
const timerSlice = 64

// Tick rescores orders whose timers are due by the wall clock: at most
// timerSlice of them, in one commit of their own, and Result.TimersLeft says
// whether more are due (the caller ticks again once no message waits). Only
// for live mode; in event-time mode (and while catching up on history,
// Options.CatchUpBefore) timers fire as the watermark passes them. It must not
// run while a batch commits.
func (p *Processor) Tick() (Result, error) {
	if !p.clockTimers() {
		return Result{}, nil
	}
	if p.flight != nil {
		return Result{}, errors.New("process: Tick called while a batch commits: Wait for it first")
	}
	return p.drainDueN(p.opts.Clock(), timerSlice, 1)
}

// dueAt reports whether a rescoring timer or a deadline watch is due at t.
func (p *Processor) dueAt(t time.Time) bool {
	e, ok := p.dues.h.peek()
	return ok && !e.at.After(t) || p.watches.due(t)
}

// drainDue rescores every order due at or before t, at most maxTimerRows in a
// commit (drainDueN without a bound on the commits).
func (p *Processor) drainDue(t time.Time) (Result, error) {
	return p.drainDueN(t, maxTimerRows, -1)
}

// drainDueN rescores the orders due at or before t, at most limit in a commit
// and at most commits commits (no bound when negative), fewer when a commit
// cannot take that many or fails on poison: a timer that fails alone is
// dropped (counted, logged once per call; its drop is a commit) so that it
// cannot hold up the others and the batches behind them. When it stops at its
// bound with timers still due, Result.TimersLeft says so.
func (p *Processor) drainDueN(t time.Time, limit, commits int) (res Result, err error) {
	start := limit
	var dropped int
	var dropErr error
	defer func() {
		if dropped > 0 {
			p.log.Warn("rescoring timers dropped: their orders could not be rescored", "timers", dropped, "err", dropErr)
		}
	}()
	for {
		if !p.dueAt(t) {
			return res, nil
		}
		if commits == 0 {
			res.TimersLeft = true
			return res, nil
		}
		res.Timers = true
		if err := p.checkSpace(); err != nil {
			return res, err
		}
		fired, queued, err := p.timerCommit(t, limit)
		switch c := Classify(err); {
		case c == None && fired == 0:
			// What is due belongs to partitions this instance does not own
			// now (a lease lapsed, its drop not yet run): it waits for the
			// partition to be owned again or dropped. Looping on it would
			// hold up the loop that runs the drop.
			return res, nil
		case c == None:
			res.Queued = res.Queued || queued
			commits--
			continue
		case c == Transient:
			return res, err
		case limit > 1:
			if c == Poison {
				p.m.failures.WithLabelValues(stagePoison).Inc()
			}
			limit /= 2
			continue
		}
		if derr := p.dropTimer(t); derr != nil {
			return res, errors.Join(err, derr)
		}
		dropped, dropErr, limit = dropped+1, err, start
		commits--
	}
}

// timerCommit fires up to limit timers due at or before t in one commit: a batch
// without messages, staged, submitted and waited for like any other. It
// returns how many timers fired.
func (p *Processor) timerCommit(t time.Time, limit int) (int, bool, error) {
	p.reset(0)
	s := &Staged{st: p.batchState, batch: p.opts.Store.NewBatch()}
	fired, err := p.fireDueN(s.batch, t, limit)
	if err == nil {
		err = p.flushWatches(s.batch)
	}
	if err != nil {
		p.Abort(s)
		return 0, false, err
	}
	if fired == 0 {
		// Nothing read or changed: no commit, nothing to reload.
		s.batch.Discard()
		return 0, false, nil
	}
	p.scoreRows()
	f, err := p.Submit(s)
	if err != nil {
		return 0, false, err
	}
	res, err := p.Wait(f)
	return fired, res.Queued, err
}

// fireDue scores every order whose rescoring time is at or before t, at that time.
func (p *Processor) fireDue(batch *store.Batch, t time.Time) error {
	_, err := p.fireDueN(batch, t, -1)
	return err
}

// fireDueN is fireDue for at most limit timers, deadline watches first (no
// limit when negative): each due order is read and written back, rescored or
// not. It returns how many fired; the timers of partitions not owned are left
// due and not counted.
func (p *Processor) fireDueN(batch *store.Batch, t time.Time, limit int) (int, error) {
	// An order of a partition this instance no longer owns is not rescored: its
	// entry is put back, and goes when the partition is dropped.
	var skipped []dueEntry
	defer func() {
		for _, e := range skipped {
			p.dues.set(e.order, e.at)
		}
	}()
	fired, err := p.fireDeadlines(batch, t, limit)
	if err != nil {
		return fired, err
	}
	n := fired
	for ; limit < 0 || n < limit; n++ {
		e, ok := p.dues.popDue(t)
		if !ok {
			return n, nil
		}
		if !p.opts.Owns(p.opts.PartitionOf(e.order)) {
			skipped = append(skipped, e)
			n--
			continue
		}
		rec, err := p.order(batch, e.order)
		if err != nil {
			return n, err
		}
		rec.NextDue = time.Time{}
		if !rec.State.Open() {
			continue
		}
		p.countOutcome(rec, e.at)
		p.addRow(rec, e.at, TriggerTimer, "")
	}
	return n, nil
}
