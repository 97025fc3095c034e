package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// orderRecord is what the pipeline stores per order: the folded state, the policy's
// episode memory and the latest score.
type orderRecord struct {
	State     features.OrderState `json:"state"`
	Policy    actions.Memory      `json:"policy,omitempty"`
	Risk      *float64            `json:"risk,omitempty"`
	ScoredAt  time.Time           `json:"scored_at,omitzero"`
	Model     *actions.ModelRef   `json:"model,omitempty"`
	Degraded  bool                `json:"degraded,omitempty"`
	TriggerID string              `json:"-"`
	Trigger   string              `json:"-"`
	wasOpen   bool
}

// item is one message of a batch and what became of it.
type item struct {
	msg    jetstream.Msg
	seq    uint64
	ev     features.Event
	reason string // dead-letter reason; empty when the event is valid
	detail string
	result string
}

// batchProcessor holds buffers reused from batch to batch. Used by Run's goroutine only.
type batchProcessor struct {
	p      *Pipeline
	items  []item
	orders map[string]*orderRecord
	scored []*orderRecord
	flat   []float32 // the feature vectors of scored, one after the other
	risks  []float32
	decs   []actions.Decision
}

func newBatchProcessor(p *Pipeline) *batchProcessor {
	return &batchProcessor{p: p, orders: make(map[string]*orderRecord, p.opts.BatchSize)}
}

// process applies one batch: dead letters first, then one Badger commit for every
// effect, then acks. An error means nothing was committed and no message acked.
func (b *batchProcessor) process(ctx context.Context, msgs []jetstream.Msg) error {
	start := time.Now()
	b.reset(len(msgs))
	for i, m := range msgs {
		it := &b.items[i]
		it.msg = m
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("read message metadata: %w", err)
		}
		it.seq = meta.Sequence.Stream
		if err := features.Decode(m.Data(), &it.ev); err != nil {
			var de *features.DecodeError
			if !errors.As(err, &de) {
				return fmt.Errorf("decode message %d: %w", it.seq, err)
			}
			it.reason, it.detail = de.Reason, de.Detail
		}
	}

	batch := b.p.opts.Store.NewBatch()
	defer batch.Discard()
	queued, err := b.apply(ctx, batch)
	if err != nil {
		return err
	}
	if err := batch.Commit(); err != nil {
		b.p.m.failures.WithLabelValues("commit").Inc()
		return err
	}

	for i := range b.items {
		it := &b.items[i]
		if err := it.msg.Ack(); err != nil {
			b.p.m.ackFailures.Inc()
		}
		b.p.m.events.WithLabelValues(typeLabel(it.ev.Type), it.result).Inc()
		if it.result == resultDeadLetter {
			b.p.m.dlq.WithLabelValues(it.reason).Inc()
		}
	}
	for i := range b.decs {
		b.p.m.decisions.WithLabelValues(b.decs[i].Action, b.decs[i].Mode).Inc()
	}
	if queued {
		b.p.opts.OnCommit()
	}
	b.p.m.batchSize.Observe(float64(len(msgs)))
	b.p.m.batchSecs.Observe(time.Since(start).Seconds())
	return nil
}

func (b *batchProcessor) reset(n int) {
	if cap(b.items) < n {
		b.items = make([]item, n)
	}
	b.items = b.items[:n]
	for i := range b.items {
		b.items[i] = item{}
	}
	clear(b.orders)
	b.scored = b.scored[:0]
	b.decs = b.decs[:0]
}

// apply writes every effect of the batch into batch; it reports whether commands
// were queued for the executor.
func (b *batchProcessor) apply(ctx context.Context, batch *store.Batch) (bool, error) {
	for i := range b.items {
		it := &b.items[i]
		done, err := batch.SeqCommitted(it.seq)
		if err != nil {
			return false, err
		}
		if done {
			it.result = resultRedelivery
			continue
		}
		if err := batch.MarkSeq(it.seq); err != nil {
			return false, err
		}
		if it.reason != "" {
			if err := b.p.deadLetter(ctx, it); err != nil {
				b.p.m.failures.WithLabelValues("dlq_publish").Inc()
				return false, err
			}
			it.result = resultDeadLetter
			batch.Add(store.CounterDeadLettered, 1)
			continue
		}
		seen, err := batch.EventSeen(it.ev.ID)
		if err != nil {
			return false, err
		}
		if seen {
			it.result = resultDuplicate
			batch.Add(store.CounterDuplicates, 1)
			continue
		}
		if err := batch.MarkEvent(it.ev.ID, it.seq); err != nil {
			return false, err
		}
		it.result = resultApplied
		batch.Add(store.CounterEventsApplied, 1)
		if features.IsContext(it.ev.Type) {
			continue // context aggregates arrive with the features issue
		}
		rec, err := b.order(batch, it.ev.OrderID)
		if err != nil {
			return false, err
		}
		rec.State.Apply(&it.ev)
		rec.TriggerID, rec.Trigger = it.ev.ID, it.ev.Type
		if err := batch.AppendTimeline(it.ev.OrderID, it.ev.OccurredAt, it.ev.ID, it.msg.Data()); err != nil {
			return false, err
		}
	}
	return b.scoreAndDecide(batch)
}

// order returns the batch's copy of an order record, loading it on first use.
func (b *batchProcessor) order(batch *store.Batch, id string) (*orderRecord, error) {
	if rec, ok := b.orders[id]; ok {
		return rec, nil
	}
	raw, err := batch.Order(id)
	if err != nil {
		return nil, err
	}
	rec := &orderRecord{}
	if raw != nil {
		if err := json.Unmarshal(raw, rec); err != nil {
			return nil, fmt.Errorf("decode stored order %s: %w", id, err)
		}
	}
	rec.wasOpen = rec.State.Open()
	b.orders[id] = rec
	return rec, nil
}

// scoreAndDecide scores every open order the batch touched in one model call, runs
// the policy and writes orders, decisions and outbox entries.
func (b *batchProcessor) scoreAndDecide(batch *store.Batch) (bool, error) {
	now := b.p.opts.Clock().UTC()
	for _, rec := range b.orders {
		if rec.State.Open() {
			b.scored = append(b.scored, rec)
		}
	}
	// Map order is random; decide in order id order so a replay is deterministic.
	slices.SortFunc(b.scored, func(x, y *orderRecord) int { return strings.Compare(x.State.OrderID, y.State.OrderID) })
	n := len(b.scored)
	b.flat = slices.Grow(b.flat[:0], n*features.NumFeatures)[:n*features.NumFeatures]
	b.risks = slices.Grow(b.risks[:0], n)[:n]
	for i, rec := range b.scored {
		rec.State.Build(now, b.vector(i))
	}
	model, degraded := b.score()

	var queued bool
	for i, rec := range b.scored {
		risk := float64(b.risks[i])
		rec.Risk, rec.ScoredAt, rec.Model, rec.Degraded = &risk, now, &model, degraded
		if rec.Policy == nil {
			rec.Policy = actions.Memory{}
		}
		first := len(b.decs)
		b.decs = b.p.opts.Policy.Decide(&actions.Input{
			OrderID: rec.State.OrderID, At: now, TriggerEvent: rec.TriggerID, TriggerType: rec.Trigger,
			Risk: risk, Degraded: degraded, Model: model, Features: b.vector(i), State: &rec.State,
		}, rec.Policy, b.decs)
		for j := first; j < len(b.decs); j++ {
			d := &b.decs[j]
			raw, err := json.Marshal(d)
			if err != nil {
				return false, fmt.Errorf("encode decision for order %s: %w", d.OrderID, err)
			}
			if err := batch.PutDecision(d.ID, d.OrderID, raw); err != nil {
				return false, err
			}
			batch.Add(store.CounterDecisions, 1)
			if cmd, ok := d.Command(); ok {
				raw, err := json.Marshal(cmd)
				if err != nil {
					return false, fmt.Errorf("encode command for order %s: %w", d.OrderID, err)
				}
				if err := batch.Enqueue(d.ID, raw); err != nil {
					return false, err
				}
				queued = true
			}
		}
	}
	for id, rec := range b.orders {
		switch open := rec.State.Open(); {
		case open && !rec.wasOpen:
			batch.Add(store.CounterOpenOrders, 1)
		case !open && rec.wasOpen:
			batch.Add(store.CounterOpenOrders, -1)
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return false, fmt.Errorf("encode order %s: %w", id, err)
		}
		if err := batch.PutOrder(id, raw); err != nil {
			return false, err
		}
	}
	return queued, nil
}

// vector is the feature vector of the i-th scored order.
func (b *batchProcessor) vector(i int) *features.Vector {
	return (*features.Vector)(b.flat[i*features.NumFeatures : (i+1)*features.NumFeatures])
}

// score fills b.risks with the model, or with the rules fallback when there is no
// model or it fails.
func (b *batchProcessor) score() (actions.ModelRef, bool) {
	if len(b.scored) == 0 {
		return actions.ModelRef{}, false
	}
	if s := b.p.opts.Scorer; s != nil {
		start := time.Now()
		err := s.Score(b.flat, b.risks)
		if err == nil {
			b.p.m.scoringSecs.Observe(time.Since(start).Seconds())
			return actions.ModelRef{Name: s.Name(), Version: s.Version(), SHA256: s.SHA256()}, false
		}
		b.p.m.failures.WithLabelValues("score").Inc()
		b.p.log.Error("model scoring failed, using the rules fallback for this batch", "err", err)
	}
	for i := range b.scored {
		b.risks[i] = features.FallbackRisk(b.vector(i))
	}
	return actions.ModelRef{Name: "rules_fallback", Version: features.SpecVersion}, true
}
