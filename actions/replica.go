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

	flushMu sync.Mutex // one flush at a time

	mu    sync.Mutex
	dirty map[string]bool // changed outside a batch, guarded by mu
	wake  chan struct{}

	written *prometheus.CounterVec
	failed  prometheus.Counter
	loaded  prometheus.Counter
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
		dirty: map[string]bool{}, wake: make(chan struct{}, 1),
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
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.written, r.failed, r.loaded} {
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

// Flush writes the governance of every changed order this member owns to the
// state bucket and waits for JetStream's acks. Orders not owned are left: their
// marks go when their partition is dropped.
func (r *Replica) Flush(ctx context.Context) error { return r.flush(ctx, -1) }

// FlushPartition is Flush, writing the orders of part too while this member is
// giving it up (Owns is false then, but the lease is still held).
func (r *Replica) FlushPartition(ctx context.Context, part int) error { return r.flush(ctx, part) }

func (r *Replica) flush(ctx context.Context, force int) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	mem := r.dirty
	r.dirty = map[string]bool{}
	r.mu.Unlock()
	all := mem
	var err error
	for {
		var marked map[string]uint64
		if marked, err = r.o.Store.GovernancePending(1024); err != nil {
			break
		}
		for o := range mem {
			if _, ok := marked[o]; !ok {
				marked[o] = 0
			}
		}
		mem = nil
		var n, wrote int
		if n, wrote, err = r.write(ctx, marked, force); err != nil || n < 1024 || wrote == 0 {
			break
		}
	}
	if err != nil {
		r.failed.Inc()
		r.mu.Lock()
		for o := range all {
			r.dirty[o] = true
		}
		r.mu.Unlock()
	}
	return err
}

// write puts (or deletes) the governance of the owned orders of marked and
// clears their marks; it reports how many marks it read and how many it cleared.
func (r *Replica) write(ctx context.Context, marked map[string]uint64, force int) (n, wrote int, err error) {
	n = len(marked)
	var futures []jetstream.PubAckFuture
	done := make(map[string]uint64, len(marked))
	for order, nonce := range marked {
		part := r.o.Partition(order)
		if part != force && r.o.Owns != nil && !r.o.Owns(part) {
			continue
		}
		g, keep, rerr := r.read(order)
		if err = rerr; err != nil {
			return n, 0, err
		}
		key := GovernanceKey(part, order)
		if !keep {
			if err := r.o.KV.Delete(ctx, key); err != nil {
				return n, 0, fmt.Errorf("actions: delete governance of order %s from the state bucket: %w", order, err)
			}
			r.written.WithLabelValues("delete").Inc()
			done[order] = nonce
			continue
		}
		v, merr := json.Marshal(g)
		if merr != nil {
			err = merr
			return n, 0, fmt.Errorf("actions: encode governance of order %s: %w", order, err)
		}
		if len(v) > maxGovernanceBytes {
			r.log.Error("order governance too large for the state bucket: not replicated, it stays with this member",
				"order", order, "bytes", len(v), "in_flight", len(g.InFlight))
			r.failed.Inc()
			done[order] = nonce
			continue
		}
		f, perr := r.o.JetStream.PublishMsgAsync(&nats.Msg{Subject: "$KV." + r.o.KV.Bucket() + "." + key, Data: v})
		if perr != nil {
			return n, 0, fmt.Errorf("actions: write governance of order %s to the state bucket: %w", order, perr)
		}
		futures = append(futures, f)
		done[order] = nonce
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return n, 0, fmt.Errorf("actions: write order governance to the state bucket: %w", err)
		case <-wait.Done():
			return n, 0, fmt.Errorf("actions: write order governance to the state bucket: no ack from JetStream: %w", wait.Err())
		}
	}
	r.written.WithLabelValues("put").Add(float64(len(futures)))
	if err := r.o.Store.ClearGovernance(done); err != nil {
		return n, 0, err
	}
	return n, len(done), nil
}

// read builds an order's governance from the store; keep is false when nothing
// of it needs keeping (a closed order with nothing in flight, or no order).
func (r *Replica) read(order string) (OrderGovernance, bool, error) {
	g := OrderGovernance{Order: order}
	mem, open, found, err := r.o.Memory(order)
	if err != nil {
		return g, false, fmt.Errorf("actions: read rule memory of order %s: %w", order, err)
	}
	sg, err := r.o.Store.Governance(order)
	if err != nil {
		return g, false, err
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

// Load reads the governance of a partition's orders from the state bucket.
func (r *Replica) Load(ctx context.Context, part int) ([]OrderGovernance, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	w, err := r.o.KV.Watch(ctx, "order."+strconv.Itoa(part)+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("actions: read the governance of partition %d from the state bucket: %w", part, err)
	}
	defer func() { _ = w.Stop() }()
	var out []OrderGovernance
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
				return out, nil
			}
			var g OrderGovernance
			if err := json.Unmarshal(e.Value(), &g); err != nil || g.Order == "" {
				r.log.Error("unreadable order governance in the state bucket, skipped", "key", e.Key(), "err", err)
				continue
			}
			out = append(out, g)
		}
	}
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
