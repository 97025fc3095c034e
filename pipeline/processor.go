package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Message is one message of ORDERS, from JetStream or from a recorded file.
type Message struct {
	Seq     uint64 // stream sequence (the line number in a file)
	Subject string
	Data    []byte
	Header  nats.Header
}

// DeadLetterFunc stores a message that cannot be accepted, with the reason. It must
// be durable when it returns nil: the message is acked after the batch commits.
type DeadLetterFunc func(ctx context.Context, m *Message, reason, detail string) error

// Row is one scoring moment of one order: what replay exports and the live
// pipeline scores.
type Row struct {
	OrderID string
	Moment  time.Time
	Trigger string // "event" or "timer"
	EventID string // the event that caused it; empty for a timer
	Vector  features.Vector
	Risk    float32
}

// Row triggers.
const (
	TriggerEvent = "event"
	TriggerTimer = "timer"
)

// ProcessorOptions configures a Processor. Zero values mean the defaults.
type ProcessorOptions struct {
	Store      *store.Store    // required
	Policy     *actions.Policy // required
	DeadLetter DeadLetterFunc  // required
	// Scorer scores orders; nil means the rules fallback and degraded decisions.
	Scorer Scorer
	// EventTime drives scoring moments and rescoring timers by the event-time
	// watermark (the greatest occurred_at seen), for replay: the same stream then
	// gives the same rows whatever the batching. Otherwise they follow Clock.
	EventTime bool
	// Clock is the wall clock in live mode; nil means time.Now.
	Clock func() time.Time
	// OnRow, when set, receives every scored row, in stream order.
	OnRow func(*Row)
	// Retention is how long closed and orphan orders and timelines are kept. Zero
	// means 30 days.
	Retention time.Duration
	Logger    *slog.Logger // nil means discard
}

// Processor applies batches of messages: the fold, context aggregates, rescoring
// timers, scoring, policy and one Badger commit per batch. It is the code both the
// live pipeline and replay run. Not safe for concurrent use.
type Processor struct {
	opts ProcessorOptions
	log  *slog.Logger
	m    *metrics

	// In-memory mirrors of durable state, reloaded after a failed batch.
	ctx       *features.Context
	dues      *dueIndex
	watermark time.Time

	// Per-batch buffers, reused.
	items   []item
	orders  map[string]*orderRecord
	touched []*orderRecord
	rows    []Row
	rowRecs []*orderRecord
	flat    []float32
	risks   []float32
	decs    []actions.Decision
	dirty   []features.ContextKey
}

// item is one message of a batch and what became of it.
type item struct {
	msg    *Message
	ev     features.Event
	reason string // dead-letter reason; empty when the event is valid
	detail string
	result string
}

// orderRecord is what the pipeline stores per order: the folded state, the policy's
// episode memory, the latest score and the next rescoring time.
type orderRecord struct {
	State    features.OrderState `json:"state"`
	Policy   actions.Memory      `json:"policy,omitempty"`
	Risk     *float64            `json:"risk,omitempty"`
	ScoredAt time.Time           `json:"scored_at,omitzero"`
	Model    *actions.ModelRef   `json:"model,omitempty"`
	Degraded bool                `json:"degraded,omitempty"`
	NextDue  time.Time           `json:"next_due,omitzero"`
	// Flags are derived from State when the record is written, for readers of the
	// API; the fold never reads them.
	Flags orderFlags `json:"flags"`

	wasOpen bool
	dueSet  time.Time // NextDue when loaded, to replace its index entry
}

type orderFlags struct {
	Open            bool `json:"open"`
	OnCreditHold    bool `json:"on_credit_hold"`
	PricingOpen     bool `json:"pricing_open"`
	AllocationShort bool `json:"allocation_short"`
	InvoiceFailed   bool `json:"invoice_failed"`
}

// Result summarises a processed batch.
type Result struct {
	Queued bool // commands were put in the outbox
}

// NewProcessor loads the durable context, watermark and rescoring index.
func NewProcessor(opts ProcessorOptions, m *metrics) (*Processor, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("pipeline: ProcessorOptions.Store is required")
	case opts.Policy == nil:
		return nil, errors.New("pipeline: ProcessorOptions.Policy is required")
	case opts.DeadLetter == nil:
		return nil, errors.New("pipeline: ProcessorOptions.DeadLetter is required")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		var err error
		if m, err = newMetrics(nil); err != nil {
			return nil, err
		}
	}
	p := &Processor{opts: opts, log: opts.Logger, m: m, orders: map[string]*orderRecord{}}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p, nil
}

// load reads the in-memory mirrors from the store.
func (p *Processor) load() error {
	ctx := features.NewContext()
	err := p.opts.Store.Contexts(func(kind, id string, v []byte) error {
		var dst any
		switch kind {
		case features.KindWarehouse:
			w := &features.Warehouse{}
			ctx.Warehouses[id], dst = w, w
		case features.KindCarrier:
			c := &features.Carrier{}
			ctx.Carriers[id], dst = c, c
		case features.KindCustomer:
			c := &features.Customer{}
			ctx.Customers[id], dst = c, c
		default:
			return fmt.Errorf("unknown context kind %q", kind)
		}
		return json.Unmarshal(v, dst)
	})
	if err != nil {
		return fmt.Errorf("pipeline: load context aggregates: %w", err)
	}
	dues, err := p.opts.Store.Dues()
	if err != nil {
		return fmt.Errorf("pipeline: load rescoring index: %w", err)
	}
	idx := newDueIndex()
	for _, d := range dues {
		idx.set(d.Order, d.At)
	}
	wm, err := p.opts.Store.Meta("watermark")
	if err != nil {
		return err
	}
	p.watermark = time.Time{}
	if wm != nil {
		if err := p.watermark.UnmarshalText(wm); err != nil {
			return fmt.Errorf("pipeline: stored watermark %q: %w", wm, err)
		}
	}
	p.ctx, p.dues = ctx, idx
	return nil
}

// Watermark returns the greatest event time applied.
func (p *Processor) Watermark() time.Time { return p.watermark }

// Process applies one batch: dead letters first, then one synced Badger commit for
// every effect. An error means nothing was committed: the in-memory mirrors are
// reloaded and the caller must not ack.
func (p *Processor) Process(ctx context.Context, msgs []*Message) (res Result, err error) {
	p.reset(len(msgs))
	for i, m := range msgs {
		it := &p.items[i]
		it.msg = m
		if err := features.Decode(m.Data, &it.ev); err != nil {
			var de *features.DecodeError
			if !errors.As(err, &de) {
				return res, fmt.Errorf("decode message %d: %w", m.Seq, err)
			}
			it.reason, it.detail = de.Reason, de.Detail
		}
	}
	batch := p.opts.Store.NewBatch()
	defer batch.Discard()
	defer func() {
		if err != nil {
			if lerr := p.load(); lerr != nil {
				err = errors.Join(err, lerr)
			}
		}
	}()
	if !p.opts.EventTime {
		if err := p.fireDue(batch, p.opts.Clock()); err != nil {
			return res, err
		}
	}
	for i := range p.items {
		if err := p.apply(ctx, batch, &p.items[i]); err != nil {
			return res, err
		}
	}
	res.Queued, err = p.finish(batch)
	if err != nil {
		return res, err
	}
	if err := batch.Commit(); err != nil {
		p.m.failures.WithLabelValues("commit").Inc()
		return res, err
	}
	p.observe()
	return res, nil
}

// Tick rescoring orders whose timers are due by the wall clock, in its own commit.
// Only for live mode; in event-time mode timers fire as the watermark passes them.
func (p *Processor) Tick() (res Result, err error) {
	if p.opts.EventTime {
		return res, nil
	}
	now := p.opts.Clock()
	if e, ok := p.dues.h.peek(); !ok || e.at.After(now) {
		return res, nil
	}
	p.reset(0)
	batch := p.opts.Store.NewBatch()
	defer batch.Discard()
	defer func() {
		if err != nil {
			err = errors.Join(err, p.load())
		}
	}()
	if err := p.fireDue(batch, now); err != nil {
		return res, err
	}
	if res.Queued, err = p.finish(batch); err != nil {
		return res, err
	}
	if err := batch.Commit(); err != nil {
		p.m.failures.WithLabelValues("commit").Inc()
		return res, err
	}
	p.observe()
	return res, nil
}

func (h dueHeap) peek() (dueEntry, bool) {
	if len(h) == 0 {
		return dueEntry{}, false
	}
	return h[0], true
}

func (p *Processor) reset(n int) {
	if cap(p.items) < n {
		p.items = make([]item, n)
	}
	p.items = p.items[:n]
	for i := range p.items {
		p.items[i] = item{}
	}
	clear(p.orders)
	p.touched = p.touched[:0]
	p.rows = p.rows[:0]
	p.rowRecs = p.rowRecs[:0]
	p.decs = p.decs[:0]
}

// apply handles one message within the batch.
func (p *Processor) apply(ctx context.Context, batch *store.Batch, it *item) error {
	seq := it.msg.Seq
	done, err := batch.SeqCommitted(seq)
	if err != nil {
		return err
	}
	if done {
		it.result = resultRedelivery
		return nil
	}
	if err := batch.MarkSeq(seq); err != nil {
		return err
	}
	if it.reason != "" {
		if err := p.opts.DeadLetter(ctx, it.msg, it.reason, it.detail); err != nil {
			p.m.failures.WithLabelValues("dlq_publish").Inc()
			return err
		}
		it.result = resultDeadLetter
		batch.Add(store.CounterDeadLettered, 1)
		return nil
	}
	ev := &it.ev
	seen, err := batch.EventSeen(ev.ID)
	if err != nil {
		return err
	}
	if seen {
		it.result = resultDuplicate
		batch.Add(store.CounterDuplicates, 1)
		return nil
	}
	if err := batch.MarkEvent(ev.ID, seq); err != nil {
		return err
	}
	it.result = resultApplied
	batch.Add(store.CounterEventsApplied, 1)

	if ev.OccurredAt.After(p.watermark) {
		if p.opts.EventTime {
			// Timers due before this event happened fire on the state before it.
			if err := p.fireDue(batch, ev.OccurredAt); err != nil {
				return err
			}
		}
		p.watermark = ev.OccurredAt
	}
	if features.IsContext(ev.Type) {
		p.ctx.Apply(ev)
		return nil
	}
	rec, err := p.order(batch, ev.OrderID)
	if err != nil {
		return err
	}
	rec.State.Apply(ev)
	p.ctx.Observe(ev, &rec.State)
	ttl := p.opts.Retention
	if err := batch.AppendTimeline(ev.OrderID, ev.OccurredAt, ev.ID, it.msg.Data, ttl); err != nil {
		return err
	}
	moment := p.moment()
	if rec.State.Closed() {
		p.ctx.CountOutcome(&rec.State, moment)
	}
	if rec.State.Open() {
		p.addRow(rec, moment, TriggerEvent, ev.ID)
	}
	return nil
}

// moment is the scoring time of an event row: the watermark in event-time mode,
// the wall clock live.
func (p *Processor) moment() time.Time {
	if p.opts.EventTime {
		return p.watermark
	}
	return p.opts.Clock().UTC()
}

// fireDue scores every order whose rescoring time is at or before t, at that time.
func (p *Processor) fireDue(batch *store.Batch, t time.Time) error {
	for {
		e, ok := p.dues.popDue(t)
		if !ok {
			return nil
		}
		rec, err := p.order(batch, e.order)
		if err != nil {
			return err
		}
		rec.NextDue = time.Time{}
		if !rec.State.Open() {
			continue
		}
		p.ctx.CountOutcome(&rec.State, e.at)
		p.addRow(rec, e.at, TriggerTimer, "")
	}
}

// addRow builds the order's vector at moment and queues it for scoring; it also
// schedules the order's next rescoring.
func (p *Processor) addRow(rec *orderRecord, moment time.Time, trigger, eventID string) {
	p.rows = append(p.rows, Row{OrderID: rec.State.OrderID, Moment: moment, Trigger: trigger, EventID: eventID})
	p.rowRecs = append(p.rowRecs, rec)
	rec.State.Build(moment, p.ctx, &p.rows[len(p.rows)-1].Vector)
	if next, ok := nextCheckpoint(rec.State.ShipCutoff, moment); ok {
		rec.NextDue = next
		p.dues.set(rec.State.OrderID, next)
	} else {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
}

// order returns the batch's copy of an order record, loading it on first use.
func (p *Processor) order(batch *store.Batch, id string) (*orderRecord, error) {
	if rec, ok := p.orders[id]; ok {
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
	rec.dueSet = rec.NextDue
	p.orders[id] = rec
	p.touched = append(p.touched, rec)
	return rec, nil
}

// finish scores the batch's rows in one model call, runs the policy over them in
// order and writes orders, decisions, outbox entries, timers, context and the
// watermark into the batch. It reports whether commands were queued.
func (p *Processor) finish(batch *store.Batch) (bool, error) {
	n := len(p.rows)
	p.flat = slices.Grow(p.flat[:0], n*features.NumFeatures)[:n*features.NumFeatures]
	p.risks = slices.Grow(p.risks[:0], n)[:n]
	for i := range p.rows {
		copy(p.flat[i*features.NumFeatures:], p.rows[i].Vector[:])
	}
	model, degraded := p.score()

	var queued bool
	for i := range p.rows {
		row, rec := &p.rows[i], p.rowRecs[i]
		row.Risk = p.risks[i]
		risk := float64(row.Risk)
		rec.Risk, rec.ScoredAt, rec.Model, rec.Degraded = &risk, row.Moment, &model, degraded
		if rec.Policy == nil {
			rec.Policy = actions.Memory{}
		}
		trigger := row.EventID
		if row.Trigger == TriggerTimer {
			trigger = "timer"
		}
		first := len(p.decs)
		p.decs = p.opts.Policy.Decide(&actions.Input{
			OrderID: row.OrderID, At: row.Moment, TriggerEvent: trigger, TriggerType: row.Trigger,
			Risk: risk, Degraded: degraded, Model: model, Features: &row.Vector, State: &rec.State,
		}, rec.Policy, p.decs)
		for j := first; j < len(p.decs); j++ {
			q, err := writeDecision(batch, &p.decs[j])
			if err != nil {
				return false, err
			}
			queued = queued || q
		}
		if p.opts.OnRow != nil {
			p.opts.OnRow(row)
		}
	}

	for _, rec := range p.touched {
		if err := p.writeOrder(batch, rec); err != nil {
			return false, err
		}
	}
	p.dirty = p.ctx.Dirty(p.dirty[:0])
	for _, k := range p.dirty {
		v, err := json.Marshal(p.ctx.Entry(k))
		if err != nil {
			return false, fmt.Errorf("encode %s %s: %w", k.Kind, k.ID, err)
		}
		if err := batch.PutContext(k.Kind, k.ID, v); err != nil {
			return false, err
		}
	}
	if !p.watermark.IsZero() {
		wm, _ := p.watermark.MarshalText()
		if err := batch.PutMeta("watermark", wm); err != nil {
			return false, err
		}
	}
	return queued, nil
}

func writeDecision(batch *store.Batch, d *actions.Decision) (bool, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return false, fmt.Errorf("encode decision for order %s: %w", d.OrderID, err)
	}
	if err := batch.PutDecision(d.ID, d.OrderID, raw); err != nil {
		return false, err
	}
	batch.Add(store.CounterDecisions, 1)
	cmd, ok := d.Command()
	if !ok {
		return false, nil
	}
	if raw, err = json.Marshal(cmd); err != nil {
		return false, fmt.Errorf("encode command for order %s: %w", d.OrderID, err)
	}
	return true, batch.Enqueue(d.ID, raw)
}

// writeOrder stores an order record with its open-order count and timer changes.
// Open orders are kept; closed and orphan ones expire after the retention.
func (p *Processor) writeOrder(batch *store.Batch, rec *orderRecord) error {
	open := rec.State.Open()
	switch {
	case open && !rec.wasOpen:
		batch.Add(store.CounterOpenOrders, 1)
	case !open && rec.wasOpen:
		batch.Add(store.CounterOpenOrders, -1)
	}
	if !open {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
	if !rec.dueSet.Equal(rec.NextDue) {
		if !rec.dueSet.IsZero() {
			if err := batch.DeleteDue(rec.dueSet, rec.State.OrderID); err != nil {
				return err
			}
		}
		if !rec.NextDue.IsZero() {
			if err := batch.PutDue(rec.NextDue, rec.State.OrderID); err != nil {
				return err
			}
		}
	}
	s := &rec.State
	rec.Flags = orderFlags{Open: open, OnCreditHold: s.OnCreditHold(), PricingOpen: s.PricingOpen(),
		AllocationShort: s.AllocationShort(), InvoiceFailed: s.InvoiceFailed()}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode order %s: %w", rec.State.OrderID, err)
	}
	var ttl time.Duration
	if !open {
		ttl = p.opts.Retention
	}
	return batch.PutOrder(rec.State.OrderID, raw, ttl)
}

// score fills p.risks with the model, or with the rules fallback when there is no
// model or it fails.
func (p *Processor) score() (actions.ModelRef, bool) {
	if len(p.rows) == 0 {
		return actions.ModelRef{}, false
	}
	if s := p.opts.Scorer; s != nil {
		start := time.Now()
		err := s.Score(p.flat, p.risks)
		if err == nil {
			p.m.scoringSecs.Observe(time.Since(start).Seconds())
			return actions.ModelRef{Name: s.Name(), Version: s.Version(), SHA256: s.SHA256()}, false
		}
		p.m.failures.WithLabelValues("score").Inc()
		p.log.Error("model scoring failed, using the rules fallback for this batch", "err", err)
	}
	for i := range p.rows {
		p.risks[i] = features.FallbackRisk(&p.rows[i].Vector)
	}
	return actions.ModelRef{Name: "rules_fallback", Version: features.SpecVersion}, true
}

// observe counts the committed batch in the metrics.
func (p *Processor) observe() {
	for i := range p.items {
		it := &p.items[i]
		p.m.events.WithLabelValues(typeLabel(it.ev.Type), it.result).Inc()
		if it.result == resultDeadLetter {
			p.m.dlq.WithLabelValues(it.reason).Inc()
		}
	}
	for i := range p.decs {
		p.m.decisions.WithLabelValues(p.decs[i].Action, p.decs[i].Mode).Inc()
	}
	p.m.rescored.Add(float64(countTimers(p.rows)))
	p.m.timers.Set(float64(p.dues.len()))
}

func countTimers(rows []Row) int {
	n := 0
	for i := range rows {
		if rows[i].Trigger == TriggerTimer {
			n++
		}
	}
	return n
}
