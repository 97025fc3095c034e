// Package cluster lets several orderwatch instances of one group share a fixed
// number of partitions: each partition is owned by exactly one live member at a
// time, through a lease per partition in a JetStream KV bucket checked by
// revision, and the members balance the partitions evenly between them. It
// assumes no clock sync between hosts. cmd/orderwatch builds one Membership per
// process and gates the work on each partition with Owns.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Membership is this process's member of a group. New makes it, Run runs it;
// every other method may be called from any goroutine at any time and never
// blocks on the network.
type Membership struct {
	opts    Options
	kv      jetstream.KeyValue
	keys    keys
	met     *metrics
	log     *slog.Logger
	changes *changeQueue
	wake    chan struct{} // capacity 1: a Handoff arrived
	started time.Time
	ran     atomic.Bool

	// Fields below are written by Run's goroutine only, under mu; it may read
	// them without mu. Everyone else reads them under mu.
	mu sync.Mutex
	// leases is what the watch last observed per partition.
	leases []observed
	// members is what the watch last observed per member id (without deleted ones).
	members map[string]*observed
	// held are the leases this member holds (owned or being released), by partition.
	held []*holding
	// watchSince is when this member first looked at the bucket: partitions
	// that never had a lease count as unowned since then.
	watchSince time.Time
}

// observed is a key's latest revision as this member saw it, and when (local
// clock): a revision unchanged for LeaseTTL since then has expired.
type observed struct {
	rev     uint64
	seen    time.Time
	present bool // false: never written, or deleted
	lease   leaseRecord
	member  memberRecord
	// deleteTried is the revision of a dead member's record this member tried to
	// delete, so that it tries once per revision.
	deleteTried uint64
}

// holding is a lease this member holds.
type holding struct {
	epoch    uint64
	previous string // the holder before us, kept in every renewal
	rev      uint64 // the revision we last wrote
	// validUntil is when the last successful renewal was sent + LeaseTTL - Guard.
	validUntil time.Time
	// unconfirmed is when the first renewal since the last confirmed one whose
	// outcome we do not know (timeout) was sent; zero if none.
	unconfirmed time.Time
	// releasing: Owns is false, a Change was sent, the lease is released once
	// handedOff or at releaseBy.
	releasing bool
	handedOff bool // written by Handoff
	releaseBy time.Time
}

// New validates opts, applies the defaults, and creates (or opens) the group's
// KV bucket orderwatch_<group>. It does not join the group: Run does.
func New(opts Options) (*Membership, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bucket := "orderwatch_" + o.Group
	kv, err := o.JetStream.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "orderwatch partition leases and members of group " + o.Group,
		History:     1,
		Replicas:    o.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: create or open KV bucket %s (is JetStream enabled and reachable?): %w", bucket, err)
	}
	m := &Membership{
		opts:    o,
		kv:      kv,
		keys:    newKeys(o.Partitions),
		met:     met,
		log:     o.Logger.With("component", "cluster", "group", o.Group, "member", o.Member),
		changes: newChangeQueue(4 * o.Partitions),
		wake:    make(chan struct{}, 1),
		leases:  make([]observed, o.Partitions),
		members: make(map[string]*observed),
		held:    make([]*holding, o.Partitions),
	}
	return m, nil
}

// Member returns this member's id.
func (m *Membership) Member() string { return m.opts.Member }

// Changes returns the channel on which Run reports every partition this member
// starts or stops owning. Read it without long pauses and call Handoff for every
// Change with Owned false. Nothing is dropped while Run runs: changes the
// channel (buffer 4*Partitions) cannot take wait in an unbounded queue. The
// channel is closed when Run returns.
func (m *Membership) Changes() <-chan Change { return m.changes.out }

// Handoff tells the membership that the user stopped acting on partition p
// after a Change with Owned false, so that its lease can be released now rather
// than after HandoffWait. Calls for partitions not being released do nothing.
func (m *Membership) Handoff(p int) {
	m.mu.Lock()
	if p >= 0 && p < len(m.held) && m.held[p] != nil && m.held[p].releasing {
		m.held[p].handedOff = true
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Owns reports whether this member owns partition p now: it holds the lease,
// its safety deadline (ValidUntil) has not passed and it is not giving p up.
// Check it right before acting on p (acking, deciding, executing).
func (m *Membership) Owns(p int) bool {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ownsLocked(p, now)
}

func (m *Membership) ownsLocked(p int, now time.Time) bool {
	if p < 0 || p >= len(m.held) {
		return false
	}
	h := m.held[p]
	return h != nil && !h.releasing && now.Before(h.validUntil)
}

// ValidUntil returns when this member's ownership of p ends unless renewed,
// on the local clock; the zero time when it does not own p.
func (m *Membership) ValidUntil(p int) time.Time {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ownsLocked(p, now) {
		return time.Time{}
	}
	return m.held[p].validUntil
}

// Owned returns the partitions this member owns now, in increasing order.
func (m *Membership) Owned() []int {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	var owned []int
	for p := range m.held {
		if m.ownsLocked(p, now) {
			owned = append(owned, p)
		}
	}
	return owned
}

// Run joins the group and keeps this member's share of the partitions: it
// watches the bucket, renews the leases and the member record every Renew, and
// takes or releases leases to balance. When ctx is done it gives every lease up
// gracefully (Change first, Handoff or HandoffWait, then the released record),
// deletes its member record, and returns nil once its goroutines stopped; if
// JetStream cannot be reached it gives up after HandoffWait+LeaseTTL. Run may be
// called once.
func (m *Membership) Run(ctx context.Context) error {
	if !m.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	m.started = m.opts.Clock()
	stopPump := make(chan struct{})
	pumped := make(chan struct{})
	go func() { defer close(pumped); m.changes.pump(stopPump) }()

	l := &loop{m: m, lostRev: make(map[int]uint64)}
	l.run(ctx)
	l.shutdown()

	close(stopPump)
	<-pumped
	if n := m.changes.close(); n > 0 {
		m.log.Warn("changes not read before Run returned", "dropped", n)
	}
	return nil
}

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

func (l *loop) stopWatch() {
	if l.watcher == nil {
		return
	}
	_ = l.watcher.Stop()
	l.watchCancel()
	l.watcher, l.watchCancel = nil, nil
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

// putMember advertises this member; false when JetStream could not be reached.
func (l *loop) putMember(ctx context.Context) bool {
	m := l.m
	rec := memberRecord{Member: m.opts.Member, API: m.opts.API, Started: rfc3339(m.started), Partitions: []int{}, Epochs: []uint64{}}
	now := m.opts.Clock()
	m.mu.Lock()
	for p, h := range m.held {
		if m.ownsLocked(p, now) {
			rec.Partitions = append(rec.Partitions, p)
			rec.Epochs = append(rec.Epochs, h.epoch)
		}
	}
	m.mu.Unlock()
	if m.opts.Stats != nil {
		switch s := m.opts.Stats(); {
		case json.Valid(s):
			rec.Stats = s
		case !l.statsBad:
			l.statsBad = true
			m.log.Warn("Options.Stats returned invalid JSON; member records go without stats", "stats_bytes", len(s))
		}
	}
	b, _ := json.Marshal(rec)
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	rev, err := m.kv.Put(octx, memberKey(m.opts.Member), b)
	if err != nil {
		l.failed(fmt.Errorf("cluster: put member record: %w", err))
		return false
	}
	l.memberRev = rev
	return true
}

// aliveLocked returns the alive members, sorted, this member included.
func (l *loop) aliveLocked(now time.Time) []string {
	m := l.m
	alive := []string{m.opts.Member}
	for id, o := range m.members {
		if id != m.opts.Member && now.Sub(o.seen) < m.opts.LeaseTTL {
			alive = append(alive, id)
		}
	}
	slices.Sort(alive)
	return alive
}

// share returns this member's fair share of the partitions among alive:
// floor(P/A), +1 for the first P%A members in sorted order.
func share(partitions int, alive []string, me string) int {
	i, _ := slices.BinarySearch(alive, me)
	n := partitions / len(alive)
	if i < partitions%len(alive) {
		n++
	}
	return n
}

// candidate is a lease this member may take.
type candidate struct {
	p      int
	obs    observed
	reason string
	mine   bool // this member held or released it last
}

// balance takes free, released or expired leases while this member is below its
// share, and starts releasing its highest-numbered ones while above it.
func (l *loop) balance(ctx context.Context) {
	m := l.m
	now := m.opts.Clock()
	m.mu.Lock()
	alive := l.aliveLocked(now)
	want := share(m.opts.Partitions, alive, m.opts.Member)
	var mine []int
	for p, h := range m.held {
		if h != nil && !h.releasing {
			mine = append(mine, p)
		}
	}
	if len(mine) > want {
		for _, p := range mine[want:] {
			l.startReleaseLocked(p, ReasonRebalance, now)
		}
		m.mu.Unlock()
		return
	}
	var cands []candidate
	if len(mine) < want {
		for p := range m.leases {
			if m.held[p] != nil {
				continue
			}
			o := m.leases[p]
			c := candidate{p: p, obs: o}
			switch {
			case !o.present:
				c.reason = ReasonFree
			case o.lease.Holder == "":
				c.reason = ReasonReleased
				c.mine = o.lease.ReleasedBy == m.opts.Member
			case now.Sub(o.seen) < m.opts.LeaseTTL && !(o.lease.Holder == m.opts.Member && l.lostRev[p] == o.rev):
				continue // held, by another or by our id in another process
			case o.lease.Holder == m.opts.Member:
				c.reason, c.mine = ReasonOwn, true
			default:
				c.reason = ReasonExpired
			}
			c.mine = c.mine || o.present && o.lease.Previous == m.opts.Member
			cands = append(cands, c)
		}
	}
	m.mu.Unlock()
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].mine && !cands[j].mine })
	for _, c := range cands[:min(len(cands), want-len(mine))] {
		if !l.take(ctx, c) {
			return
		}
	}
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

// deleteDeadMembers deletes the records of members whose revision did not
// change for LeaseTTL, once per revision; failures do not matter.
func (l *loop) deleteDeadMembers(ctx context.Context) {
	m := l.m
	now := m.opts.Clock()
	type dead struct {
		id  string
		rev uint64
	}
	var deads []dead
	m.mu.Lock()
	for id, o := range m.members {
		if id != m.opts.Member && now.Sub(o.seen) >= m.opts.LeaseTTL && o.deleteTried != o.rev {
			o.deleteTried = o.rev
			deads = append(deads, dead{id, o.rev})
		}
	}
	m.mu.Unlock()
	for _, d := range deads {
		octx, cancel := l.opCtx(ctx)
		err := m.kv.Delete(octx, memberKey(d.id), jetstream.LastRevision(d.rev))
		cancel()
		if err == nil {
			m.log.Info("deleted the record of a dead member", "dead_member", d.id)
		}
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

// updateMetrics sets the gauges from the current view.
func (l *loop) updateMetrics() {
	m := l.m
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	owned := 0
	for p := range m.held {
		if m.ownsLocked(p, now) {
			owned++
		}
	}
	m.met.owned.Set(float64(owned))
	m.met.members.Set(float64(len(l.aliveLocked(now))))
	unowned, longest := 0, time.Duration(0)
	for p := range m.leases {
		if d, ok := m.unownedForLocked(p, now); ok {
			unowned++
			longest = max(longest, d)
		}
	}
	m.met.unowned.Set(float64(unowned))
	m.met.unownedLongest.Set(longest.Seconds())
}
