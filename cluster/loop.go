package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// loop is Run's state that only its goroutine touches.
type loop struct {
	m           *Membership
	watcher     jetstream.KeyWatcher
	watchCancel context.CancelFunc
	synced      bool   // the first watch delivered all initial values
	reconnects  uint64 // of the connection, when the watch started
	unreachable bool   // the last tick could not reach JetStream
	errs        int    // failed requests since the last time we logged them
	statsBad    bool   // Options.Stats returned invalid JSON once (logged)
	// lostRev is, per partition, the revision of our own record of a lease
	// this process stopped owning without releasing it: a record still at that
	// revision may be taken back at once, any other naming us (another process
	// with our id, or us before a restart) only once it expired.
	lostRev   map[int]uint64
	memberRev uint64 // of our last member record put
	dupWarned bool   // another process with our member id was logged
}

func (l *loop) run(ctx context.Context) {
	m := l.m
	ticker := time.NewTicker(m.opts.Renew)
	defer ticker.Stop()
	l.startWatch()
	for {
		var updates <-chan jetstream.KeyValueEntry
		if l.watcher != nil {
			updates = l.watcher.Updates()
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-updates:
			if !ok {
				l.stopWatch()
				continue
			}
			if e == nil {
				if !l.synced {
					l.synced = true
					l.tick(ctx)
				}
				continue
			}
			l.observe(e)
		case <-m.wake:
			l.expire()
			l.finishReleases(ctx)
		case <-ticker.C:
			l.tick(ctx)
		}
	}
}

// connected reports whether the NATS connection is up, so that a tick does not
// wait for requests that cannot be answered.
func (l *loop) connected() bool {
	nc := l.m.opts.JetStream.Conn()
	return nc == nil || nc.Status() == nats.CONNECTED
}

// startWatch watches every key of the bucket; the loop reads the updates.
func (l *loop) startWatch() {
	m := l.m
	if nc := m.opts.JetStream.Conn(); nc != nil {
		l.reconnects = nc.Stats().Reconnects
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := m.kv.WatchAll(ctx)
	if err != nil {
		cancel()
		l.failed(fmt.Errorf("cluster: watch bucket: %w", err))
		return
	}
	l.watcher, l.watchCancel = w, cancel
	m.mu.Lock()
	if m.watchSince.IsZero() {
		m.watchSince = m.opts.Clock()
	}
	m.mu.Unlock()
}

// stopWatch stops the watch and drains what it still delivers, so that its
// delivery goroutine (blocked on a full channel) can end; at most a second.
func (l *loop) stopWatch() {
	if l.watcher == nil {
		return
	}
	_ = l.watcher.Stop()
	l.watchCancel()
	updates := l.watcher.Updates()
	l.watcher, l.watchCancel = nil, nil
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				return
			}
		case <-timeout.C:
			return
		}
	}
}

// tick is the periodic work: expire, renew, advertise, balance, clean up.
func (l *loop) tick(ctx context.Context) {
	m := l.m
	l.expire()
	if !l.connected() {
		l.failed(errors.New("cluster: not connected to NATS"))
		l.updateMetrics()
		return
	}
	// A reconnected watch may have missed updates: start it over (it delivers
	// the current value of every key again).
	if nc := m.opts.JetStream.Conn(); l.watcher == nil || (nc != nil && nc.Stats().Reconnects != l.reconnects) {
		l.stopWatch()
		l.startWatch()
	}
	ok := l.renew(ctx) && l.putMember(ctx)
	l.finishReleases(ctx)
	if ok && l.synced {
		l.balance(ctx)
		l.deleteDeadMembers(ctx)
	}
	if ok && l.unreachable {
		l.unreachable = false
		m.log.Info("JetStream reachable again", "failed_requests", l.errs)
		l.errs = 0
	}
	l.updateMetrics()
}

// failed notes a request that failed for a reason other than a revision
// mismatch; it logs when JetStream becomes unreachable, not per request.
func (l *loop) failed(err error) {
	if errors.Is(err, context.Canceled) {
		return // Run is stopping
	}
	l.errs++
	if !l.unreachable {
		l.unreachable = true
		l.l().Warn("cannot reach JetStream; leases run out locally unless renewed", "err", err)
	}
}

func (l *loop) l() *slog.Logger { return l.m.log }

func (l *loop) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, max(l.m.opts.Renew, 500*time.Millisecond))
}

// observe records a watched (or read) entry of the bucket.
func (l *loop) observe(e jetstream.KeyValueEntry) {
	m := l.m
	now := m.opts.Clock()
	key := e.Key()
	present := e.Operation() == jetstream.KeyValuePut
	if p, ok := m.keys.parseLease(key, m.opts.Partitions); ok {
		m.mu.Lock()
		defer m.mu.Unlock()
		o := &m.leases[p]
		if e.Revision() <= o.rev {
			return
		}
		*o = observed{rev: e.Revision(), seen: now, present: present}
		if present {
			if err := json.Unmarshal(e.Value(), &o.lease); err != nil {
				// Not ours to fix: it expires like a dead holder's and is then taken.
				m.log.Warn("lease record unreadable, taking it once it expires", "key", key, "err", err)
				o.lease = leaseRecord{Holder: "?unreadable"}
			}
		}
		h := m.held[p]
		if h == nil || e.Revision() <= h.rev {
			return
		}
		if present && o.lease.Holder == m.opts.Member && o.lease.Epoch == h.epoch {
			return // our own write whose reply we did not get
		}
		l.lostLocked(p, ReasonLostTaken)
		return
	}
	member, ok := strings.CutPrefix(key, memberPrefix)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.members[member]
	if o != nil && e.Revision() <= o.rev {
		return
	}
	if !present {
		delete(m.members, member)
		return
	}
	o = &observed{rev: e.Revision(), seen: now, present: true}
	if err := json.Unmarshal(e.Value(), &o.member); err != nil {
		m.log.Warn("member record unreadable, ignoring it", "key", key, "err", err)
		o.member = memberRecord{Member: member}
	}
	m.members[member] = o
	if member == m.opts.Member && e.Revision() > l.memberRev && o.member.Started != rfc3339(m.started) && !l.dupWarned {
		l.dupWarned = true
		m.log.Error("another process writes this member's record: give every instance its own member id, or they take each other's leases",
			"other_started", o.member.Started, "other_api", o.member.API)
	}
}

// refresh reads key p's lease after a revision mismatch, as the watch may lag.
func (l *loop) refresh(ctx context.Context, p int) {
	ctx, cancel := l.opCtx(ctx)
	defer cancel()
	e, err := l.m.kv.Get(ctx, l.m.keys.lease(p))
	switch {
	case err == nil:
		l.observe(e)
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		l.failed(fmt.Errorf("cluster: read lease %d: %w", p, err))
	}
}

// shutdown gives every lease up and deletes the member record, within
// HandoffWait+LeaseTTL.
func (l *loop) shutdown() {
	m := l.m
	defer l.stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.HandoffWait+m.opts.LeaseTTL)
	defer cancel()
	now := m.opts.Clock()
	m.mu.Lock()
	for p, h := range m.held {
		if h != nil && !h.releasing {
			l.startReleaseLocked(p, ReasonShutdown, now)
		}
	}
	m.mu.Unlock()
	ticker := time.NewTicker(m.opts.Renew)
	defer ticker.Stop()
	for {
		l.expire()
		l.finishReleases(ctx)
		if !slices.ContainsFunc(m.held, func(h *holding) bool { return h != nil }) {
			break
		}
		select {
		case <-ctx.Done():
			m.log.Warn("gave up releasing leases at shutdown; they expire on their own", "err", ctx.Err())
			l.updateMetrics()
			return
		case <-m.wake:
		case <-ticker.C:
			if l.connected() {
				l.renew(ctx)
			}
		}
	}
	octx, ocancel := l.opCtx(ctx)
	defer ocancel()
	if err := m.kv.Delete(octx, memberKey(m.opts.Member)); err != nil {
		m.log.Warn("could not delete the member record at shutdown; others drop it once it expires", "err", err)
	}
	l.updateMetrics()
}
