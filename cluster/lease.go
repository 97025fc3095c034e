package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lostLocked forgets held lease p, which this member no longer owns, and
// reports it unless a Change was already sent (releasing). Call with mu held.
func (l *loop) lostLocked(p int, reason string) {
	m := l.m
	h := m.held[p]
	m.held[p] = nil
	l.lostRev[p] = h.rev
	if h.releasing {
		return
	}
	metric := "expired"
	if reason == ReasonLostTaken {
		metric = "taken"
	}
	m.met.losses.WithLabelValues(metric).Inc()
	m.log.Warn("lease lost", "partition", p, "epoch", h.epoch, "reason", reason)
	m.changes.push(Change{Partition: p, Owned: false, Epoch: h.epoch, Reason: reason})
}

// expire drops the leases whose safety deadline passed.
func (l *loop) expire() {
	m := l.m
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, h := range m.held {
		if h != nil && !now.Before(h.validUntil) {
			l.lostLocked(p, ReasonLostExpired)
		}
	}
}

// renew renews every held lease; false when JetStream could not be reached
// (the rest wait for the next tick).
func (l *loop) renew(ctx context.Context) bool {
	m := l.m
	for p, h := range m.held {
		if h == nil {
			continue
		}
		b, _ := json.Marshal(leaseRecord{Holder: m.opts.Member, Epoch: h.epoch, Previous: h.previous, At: rfc3339(m.opts.Clock())})
		send := m.opts.Clock()
		octx, cancel := l.opCtx(ctx)
		rev, err := m.kv.Update(octx, m.keys.lease(p), b, h.rev)
		cancel()
		switch {
		case err == nil:
			m.mu.Lock()
			if m.held[p] == h {
				h.rev, h.unconfirmed = rev, time.Time{}
				h.validUntil = send.Add(m.opts.LeaseTTL - m.opts.Guard)
			}
			m.mu.Unlock()
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			l.refresh(ctx, p)
			m.mu.Lock()
			if m.held[p] == h {
				o := m.leases[p]
				if o.present && o.lease.Holder == m.opts.Member && o.lease.Epoch == h.epoch && !h.unconfirmed.IsZero() && o.rev > h.rev {
					// One of our unconfirmed renewals landed: adopt it, valid
					// from the first of them on.
					h.rev = o.rev
					h.validUntil = h.unconfirmed.Add(m.opts.LeaseTTL - m.opts.Guard)
				} else {
					l.lostLocked(p, ReasonLostTaken)
				}
			}
			m.mu.Unlock()
		default:
			m.mu.Lock()
			if h.unconfirmed.IsZero() {
				h.unconfirmed = send
			}
			m.mu.Unlock()
			l.failed(fmt.Errorf("cluster: renew lease %d: %w", p, err))
			return false
		}
	}
	return true
}

// take tries to take lease c.p; false when JetStream could not be reached.
func (l *loop) take(ctx context.Context, c candidate) bool {
	m := l.m
	me := m.opts.Member
	val := leaseRecord{Holder: me, Epoch: 1, At: rfc3339(m.opts.Clock())}
	ch := Change{Partition: c.p, Owned: true, Reason: c.reason}
	if c.obs.present {
		old := c.obs.lease
		val.Epoch = old.Epoch + 1
		val.Previous = old.Holder
		if old.Holder == "" {
			val.Previous = old.ReleasedBy
		}
		ch.PrevEpoch, ch.Previous = old.Epoch, val.Previous
		ch.Resume = old.Holder == me || old.Holder == "" && old.ReleasedBy == me
	}
	ch.Epoch = val.Epoch
	b, _ := json.Marshal(val)
	key := m.keys.lease(c.p)
	send := m.opts.Clock()
	octx, cancel := l.opCtx(ctx)
	var rev uint64
	var err error
	if c.obs.present {
		rev, err = m.kv.Update(octx, key, b, c.obs.rev)
	} else {
		rev, err = m.kv.Create(octx, key, b)
	}
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
		l.refresh(ctx, c.p) // somebody was faster; the watch will tell
		return true
	default:
		l.failed(fmt.Errorf("cluster: take lease %d: %w", c.p, err))
		return false
	}
	m.mu.Lock()
	m.held[c.p] = &holding{epoch: val.Epoch, previous: val.Previous, rev: rev, validUntil: send.Add(m.opts.LeaseTTL - m.opts.Guard)}
	m.changes.push(ch)
	m.mu.Unlock()
	if c.reason == ReasonExpired || c.reason == ReasonReleased && c.obs.lease.ReleasedBy != me {
		m.met.takeovers.Inc()
	}
	m.log.Info("lease taken", "partition", c.p, "epoch", val.Epoch, "reason", c.reason, "previous", val.Previous, "resume", ch.Resume)
	return true
}

// startReleaseLocked stops owning p and reports it; the lease is released by
// finishReleases once the user handed p off or HandoffWait passed. Call with
// mu held.
func (l *loop) startReleaseLocked(p int, reason string, now time.Time) {
	m := l.m
	h := m.held[p]
	h.releasing = true
	h.releaseBy = now.Add(m.opts.HandoffWait)
	m.changes.push(Change{Partition: p, Owned: false, Epoch: h.epoch, Reason: reason})
	m.log.Info("giving lease up", "partition", p, "epoch", h.epoch, "reason", reason)
}

// finishReleases writes the released record of every lease handed off or whose
// HandoffWait passed.
func (l *loop) finishReleases(ctx context.Context) {
	m := l.m
	now := m.opts.Clock()
	for p, h := range m.held {
		if h == nil || !h.releasing {
			continue
		}
		m.mu.Lock()
		ready := h.handedOff || !now.Before(h.releaseBy)
		m.mu.Unlock()
		if !ready {
			continue
		}
		b, _ := json.Marshal(leaseRecord{Epoch: h.epoch, Previous: m.opts.Member, ReleasedBy: m.opts.Member, At: rfc3339(now)})
		octx, cancel := l.opCtx(ctx)
		_, err := m.kv.Update(octx, m.keys.lease(p), b, h.rev)
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			l.failed(fmt.Errorf("cluster: release lease %d: %w", p, err))
			return
		}
		m.mu.Lock()
		m.held[p] = nil
		m.mu.Unlock()
	}
}
