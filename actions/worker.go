package actions

// The worker of each delivery target: it takes the target's queue in outbox
// order through the target's circuit breaker, one attempt at a time, and waits
// while the target fails, up to settings.max_outage.

import (
	"context"
	"fmt"
	"time"
)

// idle is what step returns when the worker has nothing to do until woken.
const idle = -1

// work is the worker of target t: it delivers the target's queue until ctx is
// done, or, once stopping is closed, until it would have to wait. Once final is
// closed (Run's ctx is done) its steps are those of the last pass.
func (e *Executor) work(ctx context.Context, t *target, final, stopping <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stopped := false
	for {
		last := false
		select {
		case <-final:
			last = true
		default:
		}
		wait := e.step(ctx, t, last)
		if ctx.Err() != nil {
			return
		}
		if wait == 0 {
			continue
		}
		if stopped {
			return
		}
		var due <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			stopped = true // one more step: the last pass
		case <-t.wake:
		case <-due:
		}
		timer.Stop()
	}
}

// result of one attempt.
type result int

const (
	resDone  result = iota // the entry is finished: delivered, or failed for good; the target answered
	resRetry               // the target failed; the entry waits
	resStore               // the store did not take the record: try again soon, the target is not to blame
	resCut                 // the attempt was cut by our shutdown: nothing recorded, the target is not to blame
)

// breaker returns the settings of t's circuit: attempts failed in a row that
// open it, and the back-off of the next attempt.
func (e *Executor) breaker(t *target) (openAfter int, base, ceiling time.Duration) {
	if t.kind == TargetWebhook {
		if h := e.hook(t.action); h != nil {
			return h.MaxAttempts, h.Backoff.D(), h.MaxBackoff.D()
		}
	}
	return natsOpenAfter, natsBackoff, natsMaxBackoff
}

// step does one thing for t: an attempt of its oldest delivery, or recording it
// failed when it has waited longer than max_outage. It returns how long to wait
// before the next step: 0 for none, idle until woken. In the last pass (last) a
// failing target is left as it is, its deliveries in the outbox.
func (e *Executor) step(ctx context.Context, t *target, last bool) time.Duration {
	if e.halted() != nil || e.opts.Store.Writable() != nil {
		return idle // scan logs it
	}
	openAfter, base, ceiling := e.breaker(t)
	maxOutage := e.maxOutage()
	t.mu.Lock()
	if len(t.queue) == 0 || last && t.failures > 0 {
		t.mu.Unlock()
		return idle
	}
	if w := time.Until(t.next); w > 0 {
		t.mu.Unlock()
		return w
	}
	q := t.queue[0]
	t.queue = t.queue[1:]
	if e.opts.Owns != nil && !e.opts.Owns(q.order) {
		// The partition moved: its next owner delivers it.
		t.mu.Unlock()
		e.disown(q.entry)
		return 0
	}
	t.inflight = q
	now := e.opts.Clock().UTC()
	if t.failures > 0 && now.Sub(t.waitStart(q)) > maxOutage {
		why := fmt.Sprintf("not delivered: %s was unreachable for longer than settings.max_outage %s (failing since %s; last error: %s)",
			t.name, maxOutage, t.down.Format(time.RFC3339), t.lastErr)
		if t.expired++; t.expired == 1 {
			e.log.Warn("target unreachable longer than max_outage: its deliveries fail", "target", t.name, "max_outage", maxOutage, "err", why)
		}
		t.mu.Unlock()
		return e.expire(t, q, now, why)
	}
	if t.failures >= openAfter {
		t.setState(StateHalfOpen)
	}
	t.mu.Unlock()
	res, why := e.attempt(ctx, t, q, now)

	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.count()
	t.inflight = nil
	switch {
	case res == resDone:
		if e.opts.Changed != nil {
			e.opts.Changed(q.order)
		}
		if t.failures >= openAfter {
			e.log.Info("target answers again: circuit closed", "target", t.name, "failed_attempts", t.failures,
				"down_for", now.Sub(t.down).String(), "failed_for_good", t.expired)
		}
		t.failures, t.down, t.next, t.probe, t.expired = 0, time.Time{}, time.Time{}, time.Time{}, 0
		t.setState(StateClosed)
		return 0
	case res == resCut:
		t.insert(q)
		if t.state == StateHalfOpen {
			t.setState(StateOpen)
		}
		return 0
	case res == resStore:
		t.insert(q)
		if t.state == StateHalfOpen {
			t.setState(StateOpen)
		}
		e.log.Error("delivery done but its record not taken: tried again", "target", t.name, "err", why)
		t.next = time.Now().Add(time.Second)
		return time.Second
	}
	t.insert(q)
	t.failures++
	if t.failures == 1 {
		// A delivery that failed before a restart says since when the target
		// fails, as far as anyone knows.
		t.down = now
		if !q.first.IsZero() && q.first.Before(now) {
			t.down = q.first
		}
	}
	t.lastErr, t.lastAt = why, now
	wait := backoff(base, ceiling, t.failures)
	t.next, t.probe = time.Now().Add(wait), now.Add(wait)
	if t.failures >= openAfter {
		if t.state == StateClosed {
			e.log.Warn("target keeps failing: circuit open, its deliveries wait", "target", t.name,
				"failed_attempts", t.failures, "max_outage", maxOutage, "err", why)
		}
		t.setState(StateOpen)
	} else {
		t.setState(StateClosed)
	}
	return wait
}

// expire records q, the in-flight delivery of t, failed for good with why: it
// waited longer than max_outage. The circuit stays as it is.
func (e *Executor) expire(t *target, q *queued, now time.Time, why string) time.Duration {
	out := Outcome{Entry: q.entry, Target: t.kind, Status: OutcomeFailed, At: now, Attempts: q.attempts + 1, Error: why}
	if t.kind == TargetNATS {
		out.Subject = t.name
	}
	err := e.finish(q.entry, Attempt{At: now, Entry: q.entry, Target: t.kind, N: q.attempts + 1, Error: why}, out, false)
	if err == nil && e.opts.Changed != nil {
		e.opts.Changed(q.order)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.count()
	t.inflight = nil
	if err == nil {
		e.failedForGood(t)
		return 0
	}
	t.insert(q)
	e.log.Error("record of a delivery failed for good not taken: tried again", "target", t.name, "err", err)
	t.next = time.Now().Add(time.Second)
	return time.Second
}

func (e *Executor) failedForGood(t *target) {
	e.gaveUp.WithLabelValues(t.name).Inc()
	if t.kind == TargetWebhook {
		e.hookFailures.WithLabelValues(t.action).Inc()
	}
}
