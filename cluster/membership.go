// Package cluster lets several orderwatch instances of one group share a fixed
// number of partitions: each partition is owned by exactly one live member at a
// time, through a lease per partition in a JetStream KV bucket checked by
// revision, and the members balance the partitions evenly between them. It
// assumes no clock sync between hosts. cmd/orderwatch builds one Membership per
// process and gates the work on each partition with Owns.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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
// after a Change with Owned false, or for good (shutting down), so that its lease
// can be released now rather than after HandoffWait. A call for a partition not
// held does nothing.
func (m *Membership) Handoff(p int) {
	m.mu.Lock()
	// A handoff before the release is asked (the user stopped for good, as at
	// shutdown) counts too: the holding is new at each take, so it cannot
	// outlive the ownership it was said of.
	if p >= 0 && p < len(m.held) && m.held[p] != nil {
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

// OwnsEpoch is Owns for the lease taken at epoch: false once that lease has
// ended, even when p is owned again under a newer one. A reader started under
// one lease acts only while that very lease lasts.
func (m *Membership) OwnsEpoch(p int, epoch uint64) bool {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p < 0 || p >= len(m.held) || m.held[p] == nil || m.held[p].epoch != epoch {
		return false
	}
	return m.ownsLocked(p, now)
}

// LeaseEpoch returns the epoch of partition p's lease as the watch last saw it,
// whoever holds it; 0 when it has none.
func (m *Membership) LeaseEpoch(p int) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p < 0 || p >= len(m.leases) || !m.leases[p].present {
		return 0
	}
	return m.leases[p].lease.Epoch
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
