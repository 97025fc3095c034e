package actions

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// OrderGovernance is what an order's events cannot rebuild of its governance:
// its rules' episodes, its cooldowns and its decisions in flight (waiting for a
// person, or with deliveries not yet made), with their trails and outbox
// entries. The owner of the order's partition keeps it in the group's state
// bucket; the next owner restores it when it takes the partition over, so
// approvals in flight, escalation ladders, cooldowns and deliveries survive the
// loss of a member.
type OrderGovernance struct {
	Order     string               `json:"order"`
	Memory    Memory               `json:"memory,omitempty"`
	Cooldowns map[string]time.Time `json:"cooldowns,omitempty"`
	InFlight  []InFlight           `json:"in_flight,omitempty"`
}

// InFlight is one decision in flight as the state bucket keeps it.
type InFlight struct {
	Decision json.RawMessage `json:"decision"`
	Open     json.RawMessage `json:"open,omitempty"`
	Trail    []TrailValue    `json:"trail,omitempty"`
	Outbox   []OutboxValue   `json:"outbox,omitempty"`
}

// TrailValue is one stored trail record.
type TrailValue struct {
	At    int64           `json:"at"`
	Kind  string          `json:"kind"`
	Value json.RawMessage `json:"value"`
}

// OutboxValue is one outbox entry and its job.
type OutboxValue struct {
	Entry string          `json:"entry"`
	Job   json.RawMessage `json:"job"`
}

// maxGovernanceBytes bounds one order's governance in the bucket, below the
// default max_payload of 1 MiB.
const maxGovernanceBytes = 900 << 10

// ReplicaOptions configures a Replica.
type ReplicaOptions struct {
	KV        jetstream.KeyValue     // the group's state bucket (cluster.StateBucket); required
	JetStream jetstream.JetStream    // required: puts go out asynchronously
	Store     *store.Store           // required
	Policy    *Live                  // required: the cooldowns' keep, for restored ones
	Partition func(order string) int // the order's partition; required
	// Owns reports whether this member owns a partition now; nil means every
	// partition. Governance of an order not owned is never written.
	Owns func(part int) bool
	// Memory reads an order's rule memory and whether the order is open; found
	// is false when no record is stored. Required.
	Memory func(order string) (mem Memory, open, found bool, err error)
	// Interval between flushes of changes made outside the pipeline (approvals,
	// escalations, deliveries); 0 means 250ms.
	Interval   time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Replica writes the governance of this member's orders to the group's state
// bucket after it changes (the pipeline's batches mark the orders whose
// governance they changed, in the same commit: store.MarkGovernance; the
// governor and the executor call Changed) and reads a partition's back when the
// member takes the partition over. Safe for concurrent use.
type Replica struct {
	o   ReplicaOptions
	log *slog.Logger

	// down is set while writes to the bucket fail: a batch then does not wait
	// for them (FlushOrders answers ErrReplicaDown at once) and the background
	// flush, which keeps trying, clears it.
	down atomic.Bool
	// writing is held by the one write of the bucket at a time (a later read
	// of an order is never overwritten by an earlier); taken with a ctx.
	writing chan struct{}

	mu    sync.Mutex
	dirty map[string]bool // changed outside a batch, guarded by mu
	wake  chan struct{}

	written *prometheus.CounterVec
	failed  prometheus.Counter
	loaded  prometheus.Counter
	skipped *prometheus.CounterVec
}

// NewReplica validates opts and builds a Replica.
func NewReplica(o ReplicaOptions) (*Replica, error) {
	if o.KV == nil || o.JetStream == nil || o.Store == nil || o.Policy == nil || o.Partition == nil || o.Memory == nil {
		return nil, errors.New("actions: ReplicaOptions.KV, .JetStream, .Store, .Policy, .Partition and .Memory are required")
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Replica{
		o: o, log: o.Logger.With("component", "replica"),
		dirty: map[string]bool{}, wake: make(chan struct{}, 1), writing: make(chan struct{}, 1),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_governance_replicated_total",
			Help: "Orders whose governance (episodes, cooldowns, decisions in flight) was written to the group's state bucket (put) or removed from it (delete).",
		}, []string{"op"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_governance_replica_failures_total",
			Help: "Flushes of order governance to the group's state bucket that failed (retried; the batch waits for its acks).",
		}),
		loaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_governance_restored_total",
			Help: "Orders whose governance was restored from the group's state bucket on taking their partition over.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_governance_load_skipped_total",
			Help: "Values of the group's state bucket not read back on taking a partition over, by reason: unreadable (not an order's governance) or foreign_key (naming another order than its key's).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{skipUnreadable, skipForeignKey} {
		r.skipped.WithLabelValues(reason)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.written, r.failed, r.loaded, r.skipped} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actions: register replica metrics: %w", err)
			}
		}
	}
	return r, nil
}

// GovernanceKey is an order's key in the state bucket:
// order.<partition>.<base64url of the id>.
func GovernanceKey(part int, order string) string {
	return "order." + strconv.Itoa(part) + "." + base64.RawURLEncoding.EncodeToString([]byte(order))
}

// Changed says that an order's governance changed outside a pipeline batch; it
// is written at the next flush, within Interval.
func (r *Replica) Changed(order string) {
	r.mu.Lock()
	r.dirty[order] = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run flushes the changes made outside the pipeline until ctx is done.
func (r *Replica) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	// A closed order's key is deleted, which leaves a marker: markers over an
	// hour old are purged hourly, so the bucket holds about the open orders.
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			if err := r.o.KV.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(time.Hour)); err != nil && ctx.Err() == nil {
				r.log.Warn("purge delete markers of closed orders from the group's state bucket", "err", err)
			}
			continue
		case <-t.C:
		case <-r.wake:
		}
		err := r.Flush(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			r.log.Warn("write order governance to the group's state bucket, will retry", "err", err)
			failing = true
		case err == nil && failing:
			r.log.Info("order governance written to the group's state bucket again")
			failing = false
		}
	}
}

// lock takes the right to write the bucket, or gives up when ctx is done.
func (r *Replica) lock(ctx context.Context) error {
	select {
	case r.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Replica) unlock() { <-r.writing }

// flushChunk bounds the orders one flush writes while it holds the lock, so that
// a batch's flush waits little behind the background one.
const flushChunk = 128

// Flush writes the governance of every changed order this member owns to the
// state bucket and waits for JetStream's acks. Orders not owned are left: their
// marks go when their partition is dropped.
func (r *Replica) Flush(ctx context.Context) error { return r.flush(ctx, -1) }

// FlushPartition is Flush, writing the orders of part too while this member is
// giving it up (Owns is false then, but the lease is still held).
func (r *Replica) FlushPartition(ctx context.Context, part int) error { return r.flush(ctx, part) }

// ErrReplicaDown says that writes to the group's state bucket fail: what is
// marked is written by the background flush once they work again.
var ErrReplicaDown = errors.New("actions: the group's state bucket takes no writes now; the changes stay marked and are written when it does")

// FlushOrders writes the governance of the given orders (a batch's), owned ones
// only, and waits for the acks. While writes fail it answers ErrReplicaDown at
// once, so that a batch never waits on an outage of the bucket.
func (r *Replica) FlushOrders(ctx context.Context, orders []string) error {
	if len(orders) == 0 {
		return nil
	}
	if r.down.Load() {
		return ErrReplicaDown
	}
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.unlock()
	marks, err := r.o.Store.GovernancePendingOf(orders)
	if err == nil {
		_, err = r.write(ctx, marks, -1)
	}
	if err != nil {
		r.failed.Inc()
	}
	return err
}

func (r *Replica) flush(ctx context.Context, force int) error {
	r.mu.Lock()
	mem := r.dirty
	r.dirty = map[string]bool{}
	r.mu.Unlock()
	err := r.flushMarked(ctx, force, mem)
	if err != nil {
		r.failed.Inc()
		r.mu.Lock()
		for o := range mem {
			r.dirty[o] = true
		}
		r.mu.Unlock()
	}
	return err
}

// flushMarked writes the marked orders, flushChunk at a time, and the orders of
// mem (changed without a mark).
func (r *Replica) flushMarked(ctx context.Context, force int, mem map[string]bool) error {
	for range 1 << 16 { // bounded: 8 million orders a flush
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.lock(ctx); err != nil {
			return err
		}
		marks, err := r.o.Store.GovernancePending(flushChunk)
		if err != nil {
			r.unlock()
			return err
		}
		n := len(marks)
		for o := range mem {
			if _, ok := marks[o]; !ok {
				marks[o] = nil
			}
		}
		mem = nil
		wrote, err := r.write(ctx, marks, force)
		r.unlock()
		if err != nil || n < flushChunk || wrote == 0 {
			return err
		}
	}
	return nil
}

// write puts (or deletes) the governance of the owned orders of marks and
// clears their marks; it reports how many orders it wrote.
func (r *Replica) write(ctx context.Context, marks store.GovernanceMarks, force int) (int, error) {
	n, err := r.writeMarks(ctx, marks, force)
	switch {
	case err == nil:
		r.down.Store(false)
	case ctx.Err() == nil:
		r.down.Store(true)
	}
	return n, err
}

func (r *Replica) writeMarks(ctx context.Context, marks store.GovernanceMarks, force int) (int, error) {
	var futures []jetstream.PubAckFuture
	var clear [][]byte
	wrote := 0
	owned := make([]string, 0, len(marks))
	for order := range marks {
		if part := r.o.Partition(order); part == force || r.o.Owns == nil || r.o.Owns(part) {
			owned = append(owned, order)
		}
	}
	stored, err := r.o.Store.Governances(owned)
	if err != nil {
		return 0, err
	}
	for _, order := range owned {
		if err := ctx.Err(); err != nil {
			return 0, err // what is marked stays marked
		}
		keys, part := marks[order], r.o.Partition(order)
		g, keep, err := r.read(order, stored[order])
		if err != nil {
			return 0, err
		}
		key := GovernanceKey(part, order)
		wrote++
		clear = append(clear, keys...)
		if !keep {
			if err := r.o.KV.Delete(ctx, key); err != nil {
				return 0, fmt.Errorf("actions: delete governance of order %s from the state bucket: %w", order, err)
			}
			r.written.WithLabelValues("delete").Inc()
			continue
		}
		v, err := json.Marshal(g)
		if err != nil {
			return 0, fmt.Errorf("actions: encode governance of order %s: %w", order, err)
		}
		if len(v) > maxGovernanceBytes {
			r.log.Error("order governance too large for the state bucket: not replicated, it stays with this member",
				"order", order, "bytes", len(v), "in_flight", len(g.InFlight))
			r.failed.Inc()
			continue
		}
		f, err := r.o.JetStream.PublishMsgAsync(&nats.Msg{Subject: "$KV." + r.o.KV.Bucket() + "." + key, Data: v})
		if err != nil {
			return 0, fmt.Errorf("actions: write governance of order %s to the state bucket: %w", order, err)
		}
		futures = append(futures, f)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return 0, fmt.Errorf("actions: write order governance to the state bucket: %w", err)
		case <-wait.Done():
			return 0, fmt.Errorf("actions: write order governance to the state bucket: no ack from JetStream: %w", wait.Err())
		}
	}
	r.written.WithLabelValues("put").Add(float64(len(futures)))
	if err := r.o.Store.ClearGovernance(clear); err != nil {
		return 0, err
	}
	return wrote, nil
}

// read builds an order's governance from what the store holds of it (sg); keep is false when nothing
// of it needs keeping (a closed order with nothing in flight, or no order).
func (r *Replica) read(order string, sg store.OrderGovernance) (OrderGovernance, bool, error) {
	g := OrderGovernance{Order: order}
	mem, open, found, err := r.o.Memory(order)
	if err != nil {
		return g, false, fmt.Errorf("actions: read rule memory of order %s: %w", order, err)
	}
	g.Memory, g.Cooldowns = mem, sg.Cooldowns
	for _, f := range sg.InFlight {
		in := InFlight{Decision: f.Record, Open: f.Open}
		for _, t := range f.Trail {
			in.Trail = append(in.Trail, TrailValue{At: t.At, Kind: t.Kind, Value: t.Value})
		}
		for _, q := range f.Outbox {
			in.Outbox = append(in.Outbox, OutboxValue{Entry: q.Entry, Job: q.Job})
		}
		g.InFlight = append(g.InFlight, in)
	}
	keep := len(g.InFlight) > 0 || (found && open && (len(mem) > 0 || len(g.Cooldowns) > 0))
	return g, keep, nil
}

// Reasons a value of the state bucket is not read back by Load, the label of
// orderwatch_governance_load_skipped_total.
const (
	skipUnreadable = "unreadable"  // not the JSON of an order's governance
	skipForeignKey = "foreign_key" // names another order than its key's
)

// Load reads the governance of a partition's orders from the state bucket. A
// value that is not an order's governance, or that names another order than
// the one its key is of (written by hand, or damaged: restoring it would put
// one order's cooldowns and decisions onto another, maybe of another
// partition), is skipped: counted by reason and logged once per Load.
func (r *Replica) Load(ctx context.Context, part int) ([]OrderGovernance, error) {
	// Bounded: a takeover that cannot read the bucket fails and is tried again,
	// rather than holding the partitions taken after it.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	w, err := r.o.KV.Watch(ctx, "order."+strconv.Itoa(part)+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("actions: read the governance of partition %d from the state bucket: %w", part, err)
	}
	defer func() { _ = w.Stop() }()
	var out []OrderGovernance
	var skip loadSkips
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("actions: read the governance of partition %d from the state bucket: %w", part, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("actions: read the governance of partition %d: the watch ended early", part)
			}
			if e == nil { // every current value was delivered
				r.loaded.Add(float64(len(out)))
				skip.report(r, part)
				return out, nil
			}
			var g OrderGovernance
			if err := json.Unmarshal(e.Value(), &g); err != nil || g.Order == "" {
				skip.add(skipUnreadable, e.Key(), err)
				continue
			}
			if GovernanceKey(part, g.Order) != e.Key() {
				skip.add(skipForeignKey, e.Key(), fmt.Errorf("the value names order %q", g.Order))
				continue
			}
			out = append(out, g)
		}
	}
}

// loadSkips collects what one Load skipped, to count and log it once.
type loadSkips struct {
	n     map[string]int
	key   string // the first skipped, as an example
	first error
}

func (s *loadSkips) add(reason, key string, err error) {
	if s.n == nil {
		s.n, s.key, s.first = map[string]int{}, key, err
	}
	s.n[reason]++
}

func (s *loadSkips) report(r *Replica, part int) {
	if s.n == nil {
		return
	}
	for reason, n := range s.n {
		r.skipped.WithLabelValues(reason).Add(float64(n))
	}
	r.log.Error("order governance in the state bucket not restored: skipped values (see orderwatch_governance_load_skipped_total)",
		"partition", part, "unreadable", s.n[skipUnreadable], "foreign_key", s.n[skipForeignKey], "first_key", s.key, "err", s.first)
}

// Restore writes an order's decisions in flight and cooldowns, from the state
// bucket, into b (the rule memory goes into the order's record: the caller's).
// An open item's escalation timer is set again from its due time: a tier whose
// SLA ended while no member owned the order escalates at the next pass.
func (p *Policy) Restore(b *store.Batch, g *OrderGovernance) error {
	for action, at := range g.Cooldowns {
		if keep := p.keep[action]; keep > 0 {
			if err := b.PutLastFired(g.Order, action, at, keep+time.Hour); err != nil {
				return err
			}
		}
	}
	for i := range g.InFlight {
		in := &g.InFlight[i]
		var head struct {
			ID      string `json:"id"`
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(in.Decision, &head); err != nil || head.ID == "" || head.OrderID != g.Order {
			return fmt.Errorf("actions: restore governance of order %s: a decision in flight is not one of the order's", g.Order)
		}
		f := store.InFlight{ID: head.ID, Record: in.Decision}
		if len(in.Open) > 0 {
			f.Open = in.Open
		}
		for _, t := range in.Trail {
			f.Trail = append(f.Trail, store.TrailEntry{At: t.At, Kind: t.Kind, Value: t.Value})
		}
		for _, q := range in.Outbox {
			f.Outbox = append(f.Outbox, store.Queued{Entry: q.Entry, Job: q.Job})
		}
		if err := b.PutInFlight(g.Order, &f); err != nil {
			return err
		}
		if f.Open != nil {
			var it OpenItem
			if err := json.Unmarshal(f.Open, &it); err != nil {
				return fmt.Errorf("actions: restore open item of decision %s: %w", head.ID, err)
			}
			if !it.Due.IsZero() {
				if err := b.PutTimer(it.Due, head.ID, []byte(it.Kind)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
