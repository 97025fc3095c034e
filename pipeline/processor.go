package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	Texts   []string // the order's texts at the moment, oldest first
	Risk    float32
}

// Scorer scores a batch of rows in one call per model. rows holds one feature
// vector after the other (features.NumFeatures values each, spec
// features.SpecVersion), texts[i] the texts of row i; risk[i] receives the
// probability that order i misses its cutoff and classes the exception class
// probabilities, len(features.ExceptionClasses) per row, when a class model serves.
// The returned Scored holds the models until its Release is called.
type Scorer interface {
	Score(rows []float32, texts [][]string, risk, classes []float32) (Scored, error)
}

// Scored says what scored a batch.
type Scored struct {
	Risk actions.ModelRef
	// Threshold is the risk model's act threshold, for live quality metrics.
	Threshold float64
	// ClassModel is set when classes were filled; ClassLabels name their columns.
	ClassModel  *actions.ModelRef
	ClassLabels []string
	// RowDegraded, when not nil, marks the rows (one entry per row) whose risk
	// model output was unusable (not finite, out of [0,1]): the scorer put the
	// rules fallback's risk in their place, and their decisions say degraded.
	RowDegraded []bool
	// ShadowRisk holds a shadow risk model's scores, one per row; nil without one.
	// A NaN entry is a row the shadow could not score: it is left out.
	ShadowRisk []float32
	Shadow     actions.ModelRef
	// Explain fills deltas (one per feature and row) for rows (laid out as in
	// Score) with the same risk model, in one run.
	Explain func(rows []float32, texts [][]string, deltas []float32) error
	// Release lets the models go; it must be called once.
	Release func()
}

// evalHorizon: a model is judged on its last score at least this long before the
// cutoff, when there was still time to act.
const evalHorizon = 2 * time.Hour

// Row triggers.
const (
	TriggerEvent = "event"
	TriggerTimer = "timer"
)

// ProcessorOptions configures a Processor. Zero values mean the defaults.
type ProcessorOptions struct {
	Store      *store.Store   // required
	Policy     *actions.Live  // required; read once per batch
	DeadLetter DeadLetterFunc // required
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
	// CachedOrders bounds the order records kept decoded in memory between
	// batches, so an order's next event needs no read and decode from Badger.
	// Zero means 200,000; a negative value disables the cache.
	CachedOrders int
	Logger       *slog.Logger // nil means discard
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
	// cache holds committed order records by id (see CachedOrders). A batch
	// changes its records in place; a failed batch evicts the ones it touched.
	cache map[string]*orderRecord

	// The batch being staged or decided, and the one whose commit is on its way
	// (nil when none is): two states, used in turn.
	*batchState
	states [2]batchState
	next   int
	flight *Flight
}

// batchState is the per-batch buffers of a Processor, reused.
type batchState struct {
	items    []item
	orders   map[string]*orderRecord
	touched  []*orderRecord
	rows     []Row
	rowRecs  []*orderRecord
	flat     []float32
	texts    [][]string
	risks    []float32
	classes  []float32
	deltas   []float32
	exFlat   []float32
	exTexts  [][]string
	gauges   []gaugeDelta
	stays    []milestoneStay
	decs     []actions.Decision
	decRows  []int  // the row of each decision
	explain  []int  // rows to explain
	arena    []byte // encoded order records of the batch
	dirty    []features.ContextKey
	outcomes []outcome
	// ids and seqs are the event ids (with their stream sequence) and the
	// sequences the batch marked: a batch staged while the previous one commits
	// reads a snapshot without it, and these stand in for its markers.
	ids    map[string]uint64
	seqs   map[uint64]bool
	sc     scored // the models that scored the rows, until decided
	queued bool   // commands were put in the outbox
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
	// Eval is the prediction the order's outcome will judge: the last scores at
	// least evalHorizon before the cutoff (or the first, for a late order).
	Eval *evalScore `json:"eval,omitempty"`
	// Flags are derived from State when the record is written, for readers of the
	// API; the fold never reads them.
	Flags orderFlags `json:"flags"`
	// Gauge is the warehouse and risk state the order counts under in the open and
	// at-risk gauges, so a change moves it from one count to the other.
	Gauge gaugeState `json:"gauge,omitzero"`

	id      string // the key it is stored and cached under
	wasOpen bool
	dueSet  time.Time // NextDue when loaded, to replace its index entry
}

type evalScore struct {
	Model     string  `json:"model"`   // name
	Version   string  `json:"version"` // of the risk model
	Risk      float32 `json:"risk"`
	Threshold float64 `json:"threshold"`
	Class     string  `json:"class,omitempty"` // most likely exception class
	ClassVer  string  `json:"class_version,omitempty"`
}

// atRiskDefault is the risk at or above which an order counts as at risk when its
// model gave no threshold (the rules fallback).
const atRiskDefault = 0.5

func (e *evalScore) threshold() float64 {
	if e == nil || e.Threshold == 0 {
		return atRiskDefault
	}
	return e.Threshold
}

// outcome is one order's known outcome joined to its evaluated prediction.
type outcome struct {
	eval   evalScore
	missed bool
	class  string
}

type gaugeState struct {
	Warehouse string `json:"warehouse,omitempty"`
	Open      bool   `json:"open,omitempty"`
	AtRisk    bool   `json:"at_risk,omitempty"`
}

// gaugeDelta moves one order between the per-warehouse counts.
type gaugeDelta struct{ from, to gaugeState }

// milestoneStay is how long an order sat at a milestone before it moved on.
type milestoneStay struct {
	milestone string
	d         time.Duration
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
	Queued                            bool // commands were put in the outbox
	Applied, Duplicates, DeadLettered int
	// Timers says that a Tick found rescoring timers due: it committed their
	// rescoring, or failed to.
	Timers bool
}

func (r Result) add(o Result) Result {
	return Result{Queued: r.Queued || o.Queued, Applied: r.Applied + o.Applied,
		Duplicates: r.Duplicates + o.Duplicates, DeadLettered: r.DeadLettered + o.DeadLettered, Timers: r.Timers || o.Timers}
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
	if opts.CachedOrders == 0 {
		opts.CachedOrders = 200_000
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
	p := &Processor{opts: opts, log: opts.Logger, m: m, cache: map[string]*orderRecord{}}
	for i := range p.states {
		p.states[i] = batchState{orders: map[string]*orderRecord{}, ids: map[string]uint64{}, seqs: map[uint64]bool{}}
	}
	p.batchState = &p.states[0]
	if err := p.load(); err != nil {
		return nil, err
	}
	// The per-warehouse gauges start from the stored orders; batches move them.
	err := opts.Store.Orders(func(id string, raw []byte) error {
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil {
			return fmt.Errorf("order %s: %w", id, err)
		}
		m.countOrder(rec.Gauge, 1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: count stored orders: %w", err)
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
// every effect. A batch larger than Badger takes in one commit (a burst of large
// events) is applied in halves, each in its own commit, so no batch can wedge the
// consumer. An error means the batch (or its second half) was not committed: the
// in-memory mirrors are reloaded and the caller must not ack; redelivered messages
// of a committed half are recognised by their sequence.
func (p *Processor) Process(ctx context.Context, msgs []*Message) (Result, error) {
	res, err := p.process(ctx, msgs)
	if !errors.Is(err, store.ErrBatchTooBig) {
		return res, err
	}
	if len(msgs) < 2 {
		// One message too big for a commit: the timers it lets fire go first,
		// in commits of their own, then the message alone.
		t, ok := p.firesUntil(msgs)
		if !ok {
			return res, err
		}
		drained, derr := p.drainDue(t)
		if derr != nil || !drained.Timers {
			return drained, errors.Join(err, derr)
		}
		again, err := p.process(ctx, msgs)
		return drained.add(again), err
	}
	half := len(msgs) / 2
	first, err := p.Process(ctx, msgs[:half])
	if err != nil {
		return first, err
	}
	second, err := p.Process(ctx, msgs[half:])
	return first.add(second), err
}

// firesUntil is the time up to which the timers fire when msgs is applied:
// the wall clock live; in event-time mode, the first message's event time when it
// moves the watermark.
func (p *Processor) firesUntil(msgs []*Message) (time.Time, bool) {
	if !p.opts.EventTime {
		return p.opts.Clock(), true
	}
	var ev features.Event
	if len(msgs) == 0 || features.Decode(msgs[0].Data, &ev) != nil || !ev.OccurredAt.After(p.watermark) {
		return time.Time{}, false
	}
	return ev.OccurredAt, true
}

// Staged is a batch applied in memory and scored, not yet decided or written:
// what Stage returns and Submit takes.
type Staged struct {
	st    *batchState
	batch *store.Batch
}

// Flight is a batch whose commit is on its way: what Submit returns and Wait
// takes.
type Flight struct {
	st   *batchState
	snap *store.Snapshot // for the batch staged meanwhile; nil once taken
	done chan error
}

// process is Stage, Submit and Wait in turn.
func (p *Processor) process(ctx context.Context, msgs []*Message) (Result, error) {
	if p.flight != nil {
		return Result{}, errors.New("pipeline: Process called while a batch commits: Wait for it first")
	}
	s, err := p.Stage(ctx, msgs)
	if err != nil {
		p.Abort(s)
		return Result{}, err
	}
	f, err := p.Submit(s)
	if err != nil {
		return Result{}, err
	}
	return p.Wait(f)
}

// Stage decodes a batch, applies it to the in-memory state (dead letters are
// published) and scores its rows; nothing is written to Badger yet. It may run
// while the previous batch commits (after Submit, before Wait): it then reads a
// snapshot taken before that commit, through the markers and records of that
// batch. Whatever Stage returns, the caller must then Submit or Abort it, after
// the Wait of the batch before.
func (p *Processor) Stage(ctx context.Context, msgs []*Message) (*Staged, error) {
	p.reset(len(msgs))
	s := &Staged{st: p.batchState}
	for i, m := range msgs {
		it := &p.items[i]
		it.msg = m
		if err := features.Decode(m.Data, &it.ev); err != nil {
			var de *features.DecodeError
			if !errors.As(err, &de) {
				return s, fmt.Errorf("decode message %d: %w", m.Seq, err)
			}
			it.reason, it.detail = de.Reason, de.Detail
		}
	}
	if err := p.checkSpace(); err != nil {
		return s, err
	}
	if f := p.flight; f != nil && f.snap != nil {
		s.batch = p.opts.Store.NewStagedBatch(f.snap)
		f.snap = nil
	} else {
		s.batch = p.opts.Store.NewBatch()
	}
	if !p.opts.EventTime {
		if err := p.fireDue(s.batch, p.opts.Clock()); err != nil {
			return s, err
		}
	}
	for i := range p.items {
		if err := p.apply(ctx, s.batch, &p.items[i]); err != nil {
			return s, err
		}
	}
	p.scoreRows()
	return s, nil
}

// Abort gives up a staged batch: the records it changed leave the cache and the
// in-memory mirrors are read again from the store. Call it after the Wait of
// the batch before.
func (p *Processor) Abort(s *Staged) {
	if s == nil {
		return
	}
	p.batchState = s.st
	p.release()
	if s.batch != nil {
		s.batch.Discard()
	}
	p.evictTouched(s.st)
	if err := p.load(); err != nil {
		p.log.Error("reload the pipeline state after a failed batch", "err", err)
	}
}

// Submit decides a staged batch (policy, reasons, decisions and outbox), writes
// everything into its transaction and starts the commit without waiting for it.
// The batch before must have been waited for. On an error nothing is committed
// and the batch is aborted.
func (p *Processor) Submit(s *Staged) (*Flight, error) {
	p.batchState = s.st
	fail := func(err error) (*Flight, error) {
		p.Abort(s)
		return nil, err
	}
	if err := s.batch.Bind(); err != nil {
		return fail(err)
	}
	queued, err := p.decide(s.batch)
	if err != nil {
		return fail(err)
	}
	p.queued = queued
	f := &Flight{st: s.st, done: make(chan error, 1)}
	// The next batch may be staged while this one commits: it reads what was
	// committed before this commit started.
	f.snap = p.opts.Store.Snapshot()
	p.flight = f
	s.batch.CommitAsync(func(err error) { f.done <- err })
	return f, nil
}

// Wait waits for a submitted batch's commit. On success the batch is counted in
// the metrics and its records are kept in the cache; on failure they leave it and
// the in-memory mirrors are read again, and a batch staged meanwhile must be
// aborted.
func (p *Processor) Wait(f *Flight) (res Result, err error) {
	err = <-f.done
	p.flight = nil
	f.snap.Discard()
	if err != nil {
		p.m.failures.WithLabelValues("commit").Inc()
		p.evictTouched(f.st)
		if lerr := p.load(); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return res, err
	}
	p.cacheTouched(f.st)
	p.observe(f.st)
	res.Queued = f.st.queued
	for i := range f.st.items {
		switch f.st.items[i].result {
		case resultApplied:
			res.Applied++
		case resultDuplicate:
			res.Duplicates++
		case resultDeadLetter:
			res.DeadLettered++
		}
	}
	return res, nil
}

// maxTimerRows bounds the rescoring rows of a commit of timers alone: cutoffs
// cluster, and a watermark jump or a backlog after downtime can make thousands
// of timers due at once, more than one Badger commit takes.
const maxTimerRows = 512

// Tick rescoring orders whose timers are due by the wall clock, in commits of its
// own. Only for live mode; in event-time mode timers fire as the watermark passes
// them. It must not run while a batch commits.
func (p *Processor) Tick() (Result, error) {
	if p.opts.EventTime {
		return Result{}, nil
	}
	if p.flight != nil {
		return Result{}, errors.New("pipeline: Tick called while a batch commits: Wait for it first")
	}
	return p.drainDue(p.opts.Clock())
}

// drainDue rescoring every order due at or before t, at most maxTimerRows in a
// commit, fewer when a commit cannot take that many.
func (p *Processor) drainDue(t time.Time) (res Result, err error) {
	limit := maxTimerRows
	for {
		if e, ok := p.dues.h.peek(); !ok || e.at.After(t) {
			return res, nil
		}
		res.Timers = true
		if err := p.checkSpace(); err != nil {
			return res, err
		}
		queued, err := p.timerCommit(t, limit)
		if errors.Is(err, store.ErrBatchTooBig) && limit > 1 {
			limit /= 2
			continue
		}
		if err != nil {
			return res, err
		}
		res.Queued = res.Queued || queued
	}
}

// timerCommit fires up to limit timers due at or before t in one commit: a batch
// without messages, staged, submitted and waited for like any other.
func (p *Processor) timerCommit(t time.Time, limit int) (bool, error) {
	p.reset(0)
	s := &Staged{st: p.batchState, batch: p.opts.Store.NewBatch()}
	if err := p.fireDueN(s.batch, t, limit); err != nil {
		p.Abort(s)
		return false, err
	}
	p.scoreRows()
	f, err := p.Submit(s)
	if err != nil {
		return false, err
	}
	res, err := p.Wait(f)
	return res.Queued, err
}

// checkSpace asks the store whether it takes writes (store.Options.CheckSpace)
// before a batch or a rescoring tick writes or publishes anything (dead
// letters), and counts a refusal as a failed commit: nothing is written, and the
// batch is redelivered.
func (p *Processor) checkSpace() error {
	if err := p.opts.Store.Writable(); err != nil {
		p.m.failures.WithLabelValues("commit").Inc()
		return err
	}
	return nil
}

func (h dueHeap) peek() (dueEntry, bool) {
	if len(h) == 0 {
		return dueEntry{}, false
	}
	return h[0], true
}

// reset takes the batch state the previous batch did not use and empties it.
func (p *Processor) reset(n int) {
	p.batchState = &p.states[p.next]
	p.next ^= 1
	if cap(p.items) < n {
		p.items = make([]item, n)
	}
	p.items = p.items[:n]
	for i := range p.items {
		p.items[i] = item{}
	}
	clear(p.orders)
	clear(p.ids)
	clear(p.seqs)
	p.sc = scored{}
	p.queued = false
	p.arena = p.arena[:0]
	p.touched = p.touched[:0]
	p.rows = p.rows[:0]
	p.rowRecs = p.rowRecs[:0]
	p.decs = p.decs[:0]
	p.decRows = p.decRows[:0]
	p.outcomes = p.outcomes[:0]
	p.gauges = p.gauges[:0]
	p.stays = p.stays[:0]
}

// apply handles one message within the batch.
func (p *Processor) apply(ctx context.Context, batch *store.Batch, it *item) error {
	seq := it.msg.Seq
	if it.reason != "" {
		if done, err := p.claimSeq(batch, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		if err := p.opts.DeadLetter(ctx, it.msg, it.reason, it.detail); err != nil {
			p.m.failures.WithLabelValues("dlq_publish").Inc()
			return err
		}
		it.result = resultDeadLetter
		batch.Add(store.CounterDeadLettered, 1)
		return nil
	}
	// A valid event is marked by its id, with the sequence it came from: the same
	// sequence again is a redelivery after a lost ack, another one a duplicate. A
	// duplicate is marked by its own sequence, so its redelivery is not counted
	// twice.
	ev := &it.ev
	prev, seen, err := p.eventSeq(batch, ev.ID)
	switch {
	case err != nil:
		return err
	case seen && prev == seq:
		it.result = resultRedelivery
		return nil
	case seen:
		if done, err := p.claimSeq(batch, seq); err != nil || done {
			it.result = resultRedelivery
			return err
		}
		it.result = resultDuplicate
		batch.Add(store.CounterDuplicates, 1)
		return nil
	}
	if err := batch.MarkEvent(ev.ID, seq); err != nil {
		return err
	}
	p.ids[ev.ID] = seq
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
	was, wasAt := rec.State.Milestone, rec.State.MilestoneAt
	rec.State.Apply(ev)
	if m := rec.State.Milestone; m != was && was != "" {
		if d := rec.State.MilestoneAt.Sub(wasAt); d >= 0 {
			p.stays = append(p.stays, milestoneStay{was, d})
		}
	}
	p.ctx.Observe(ev, &rec.State)
	ttl := p.opts.Retention
	if err := batch.AppendTimeline(ev.OrderID, ev.OccurredAt, ev.ID, it.msg.Data, ttl); err != nil {
		return err
	}
	moment := p.moment()
	if rec.State.Closed() {
		p.countOutcome(rec, moment)
	}
	if rec.State.Open() {
		p.addRow(rec, moment, TriggerEvent, ev.ID)
	}
	return nil
}

// eventSeq is Batch.EventSeq seen through the markers of this batch and of the
// one committing.
func (p *Processor) eventSeq(batch *store.Batch, id string) (uint64, bool, error) {
	if seq, ok := p.ids[id]; ok {
		return seq, true, nil
	}
	if p.flight != nil {
		if seq, ok := p.flight.st.ids[id]; ok {
			return seq, true, nil
		}
	}
	return batch.EventSeq(id)
}

// seqDone is Batch.SeqCommitted seen through the markers of this batch and of
// the one committing.
func (p *Processor) seqDone(batch *store.Batch, seq uint64) (bool, error) {
	if p.seqs[seq] || (p.flight != nil && p.flight.st.seqs[seq]) {
		return true, nil
	}
	return batch.SeqCommitted(seq)
}

// claimSeq reports whether the message at seq was handled by a committed (or
// committing) batch, a redelivery; if not, it marks it as handled by this one. On
// an error the batch fails, so the result it leaves does not matter.
func (p *Processor) claimSeq(batch *store.Batch, seq uint64) (bool, error) {
	done, err := p.seqDone(batch, seq)
	if err != nil || done {
		return done, err
	}
	if err := batch.MarkSeq(seq); err != nil {
		return false, err
	}
	p.seqs[seq] = true
	return false, nil
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
	return p.fireDueN(batch, t, -1)
}

// fireDueN is fireDue for at most limit orders (no limit when negative): each
// due order is read and written back, rescored or not.
func (p *Processor) fireDueN(batch *store.Batch, t time.Time, limit int) error {
	for n := 0; limit < 0 || n < limit; n++ {
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
		p.countOutcome(rec, e.at)
		p.addRow(rec, e.at, TriggerTimer, "")
	}
	return nil
}

// countOutcome records the order's cutoff outcome in its customer's history once
// it is known, and joins it to the order's evaluated prediction.
func (p *Processor) countOutcome(rec *orderRecord, moment time.Time) {
	s := &rec.State
	if s.MissCounted {
		return
	}
	p.ctx.CountOutcome(s, moment)
	if !s.MissCounted || rec.Eval == nil {
		return
	}
	missed := s.ShippedAt.IsZero() || s.ShippedAt.After(s.ShipCutoff)
	p.outcomes = append(p.outcomes, outcome{eval: *rec.Eval, missed: missed, class: s.SeenException()})
}

// addRow builds the order's vector at moment and queues it for scoring; it also
// schedules the order's next rescoring.
func (p *Processor) addRow(rec *orderRecord, moment time.Time, trigger, eventID string) {
	p.rows = append(p.rows, Row{OrderID: rec.State.OrderID, Moment: moment, Trigger: trigger, EventID: eventID,
		Texts: rec.State.TextValues(nil)})
	p.rowRecs = append(p.rowRecs, rec)
	rec.State.Build(moment, p.ctx, &p.rows[len(p.rows)-1].Vector)
	if next, ok := nextCheckpoint(rec.State.OrderID, rec.State.ShipCutoff, moment); ok {
		rec.NextDue = next
		p.dues.set(rec.State.OrderID, next)
	} else {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
}

// cacheTouched keeps the committed records of the batch's orders in the cache
// and lets finished ones (invoiced or cancelled) go: later events of theirs are
// rare.
func (p *Processor) cacheTouched(st *batchState) {
	if p.opts.CachedOrders < 0 {
		return
	}
	for _, rec := range st.touched {
		id := rec.id
		if s := &rec.State; s.Cancelled || s.Milestone == features.MilestoneInvoiced {
			delete(p.cache, id)
			continue
		}
		if _, ok := p.cache[id]; !ok && len(p.cache) >= p.opts.CachedOrders {
			for victim := range p.cache { // any one: map order is random
				delete(p.cache, victim)
				break
			}
		}
		p.cache[id] = rec
	}
}

// evictTouched drops the records a failed batch changed: the store holds their
// committed state.
func (p *Processor) evictTouched(st *batchState) {
	for _, rec := range st.touched {
		delete(p.cache, rec.id)
	}
}

// order returns the batch's record of an order: from the cache, or read from the
// store on first use.
func (p *Processor) order(batch *store.Batch, id string) (*orderRecord, error) {
	if rec, ok := p.orders[id]; ok {
		return rec, nil
	}
	rec, ok := p.cache[id]
	if !ok && p.flight != nil {
		// The batch committing may have let a finished order go from the cache.
		rec, ok = p.flight.st.orders[id]
	}
	if !ok {
		raw, err := batch.Order(id)
		if err != nil {
			return nil, err
		}
		rec = &orderRecord{}
		if raw != nil {
			if err := decodeRecord(raw, rec); err != nil {
				return nil, fmt.Errorf("decode stored order %s: %w", id, err)
			}
		}
	}
	rec.id = id
	rec.wasOpen = rec.State.Open()
	rec.dueSet = rec.NextDue
	p.orders[id] = rec
	p.touched = append(p.touched, rec)
	return rec, nil
}

// scoreRows scores the batch's rows in one call per model; the models are held
// until decide.
func (p *Processor) scoreRows() {
	n := len(p.rows)
	nf, nc := features.NumFeatures, len(features.ExceptionClasses)
	p.flat = slices.Grow(p.flat[:0], n*nf)[:n*nf]
	p.risks = slices.Grow(p.risks[:0], n)[:n]
	p.classes = slices.Grow(p.classes[:0], n*nc)[:n*nc]
	p.texts = p.texts[:0]
	for i := range p.rows {
		copy(p.flat[i*nf:], p.rows[i].Vector[:])
		p.texts = append(p.texts, p.rows[i].Texts)
	}
	p.sc = p.score()
}

// decide runs the policy over the scored rows in order and writes orders,
// decisions, outbox entries, timers, context and the watermark into the batch.
// It reports whether commands were queued.
func (p *Processor) decide(batch *store.Batch) (bool, error) {
	sc := p.sc
	defer p.release()
	// One policy for the whole batch, even when a reload lands meanwhile.
	policy := p.opts.Policy.Policy()

	var queued bool
	for i := range p.rows {
		row, rec := &p.rows[i], p.rowRecs[i]
		row.Risk = p.risks[i]
		risk := float64(row.Risk)
		degraded, model := sc.degraded, &sc.Risk
		if !degraded && sc.rowDegraded(i) {
			degraded, model = true, &actions.ModelRef{Name: fallbackModel, Version: features.SpecVersion}
		}
		rec.Risk, rec.ScoredAt, rec.Model, rec.Degraded = &risk, row.Moment, model, degraded
		if rec.Policy == nil {
			rec.Policy = actions.Memory{}
		}
		trigger := row.EventID
		if row.Trigger == TriggerTimer {
			trigger = "timer"
		}
		in := &actions.Input{
			OrderID: row.OrderID, At: row.Moment, TriggerEvent: trigger, TriggerType: row.Trigger,
			Risk: risk, Degraded: degraded, Model: *model, Features: &row.Vector, State: &rec.State,
		}
		top := ""
		if sc.ClassModel != nil {
			in.Classes, in.ClassModel = make(map[string]float64, len(sc.ClassLabels)), *sc.ClassModel
			best := float32(-1)
			for j, label := range sc.ClassLabels {
				pr := p.classes[i*len(sc.ClassLabels)+j]
				in.Classes[label] = float64(pr)
				if pr > best {
					best, top = pr, label
				}
			}
		}
		if sc.ShadowRisk != nil && !math.IsNaN(float64(sc.ShadowRisk[i])) {
			in.Shadow = map[string]float64{sc.Shadow.Name + "@" + sc.Shadow.Version: float64(sc.ShadowRisk[i])}
		}
		if !degraded && (rec.Eval == nil || !row.Moment.After(rec.State.ShipCutoff.Add(-evalHorizon))) {
			rec.Eval = &evalScore{Model: sc.Risk.Name, Version: sc.Risk.Version, Risk: row.Risk, Threshold: sc.Threshold, Class: top}
			if sc.ClassModel != nil {
				rec.Eval.ClassVer = sc.ClassModel.Version
			}
		}
		first := len(p.decs)
		in.Context = p.ctx // reroutes weigh the alternative warehouses' load
		var err error
		if p.decs, err = policy.Decide(batch, in, rec.Policy, p.decs); err != nil {
			return false, err
		}
		for range len(p.decs) - first {
			p.decRows = append(p.decRows, i)
		}
	}
	// Reasons for every row that decided something, in one model run; then the
	// decisions are recorded in order (governance read and wrote its limits and
	// cooldowns as each was decided).
	reasons := p.reasons(sc)
	for j := range p.decs {
		p.decs[j].Reasons = reasons[p.decRows[j]]
		if err := policy.Record(batch, &p.decs[j]); err != nil {
			return false, err
		}
		queued = queued || p.decs[j].Queued()
	}
	if p.opts.OnRow != nil {
		for i := range p.rows {
			p.opts.OnRow(&p.rows[i])
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
	rec.Flags = flagsOf(s)
	g := gaugeState{Warehouse: s.Warehouse, Open: open}
	if open && rec.Risk != nil {
		threshold := rec.Eval.threshold()
		g.AtRisk = *rec.Risk >= threshold
	}
	if g != rec.Gauge {
		p.gauges = append(p.gauges, gaugeDelta{rec.Gauge, g})
		rec.Gauge = g
	}
	// The batch holds the value until it commits: each record gets its own part
	// of the arena, which the next batch reuses.
	start := len(p.arena)
	p.arena = encodeRecord(p.arena, rec)
	raw := p.arena[start:len(p.arena):len(p.arena)]
	var ttl time.Duration
	if !open {
		ttl = p.opts.Retention
	}
	return batch.PutOrder(rec.State.OrderID, raw, ttl)
}

// release lets the models that scored the batch go.
func (p *Processor) release() {
	if p.sc.Release != nil {
		p.sc.Release()
	}
	p.sc = scored{}
}

// scored is Scored with whether the rules fallback stood in for the model.
type scored struct {
	Scored
	degraded bool
}

// fallbackModel names the rules fallback where a model is recorded.
const fallbackModel = "rules_fallback"

// rowDegraded reports whether row i was scored by the rules fallback alone.
func (sc *scored) rowDegraded(i int) bool {
	return sc.degraded || (i < len(sc.RowDegraded) && sc.RowDegraded[i])
}

// score fills p.risks (and p.classes when a class model serves) with the models, or
// p.risks with the rules fallback when there is no risk model or it fails.
func (p *Processor) score() scored {
	noop := func() {}
	if len(p.rows) == 0 {
		return scored{Scored: Scored{Release: noop}}
	}
	if s := p.opts.Scorer; s != nil {
		start := time.Now()
		sc, err := s.Score(p.flat, p.texts, p.risks, p.classes)
		if err == nil {
			p.m.scoringSecs.Observe(time.Since(start).Seconds())
			if sc.Release == nil {
				sc.Release = noop
			}
			return scored{Scored: sc}
		}
		p.m.failures.WithLabelValues("score").Inc()
		p.log.Error("model scoring failed, using the rules fallback for this batch", "err", err)
	}
	for i := range p.rows {
		p.risks[i] = features.FallbackRisk(&p.rows[i].Vector)
	}
	return scored{Scored: Scored{Risk: actions.ModelRef{Name: fallbackModel, Version: features.SpecVersion}, Release: noop}, degraded: true}
}

// maxReasons is how many drivers a decision names.
const maxReasons = 3

// reasons names, for every row that decided something, the top drivers of its
// risk, measured on the model itself: the features whose move to a reference
// value lowers the score most. All those rows are explained in one model run.
// A row without decisions gets nil.
func (p *Processor) reasons(sc scored) map[int][]string {
	p.explain = p.explain[:0]
	for j, i := range p.decRows {
		if j == 0 || p.decRows[j-1] != i {
			p.explain = append(p.explain, i)
		}
	}
	if len(p.explain) == 0 {
		return nil
	}
	nf := features.NumFeatures
	n := len(p.explain)
	p.deltas = slices.Grow(p.deltas[:0], n*nf)[:n*nf]
	p.exFlat = slices.Grow(p.exFlat[:0], n*nf)[:n*nf]
	p.exTexts = p.exTexts[:0]
	for k, i := range p.explain {
		copy(p.exFlat[k*nf:], p.flat[i*nf:(i+1)*nf])
		p.exTexts = append(p.exTexts, p.rows[i].Texts)
	}
	if sc.degraded || sc.Explain == nil {
		for k, i := range p.explain {
			explainFallback(&p.rows[i].Vector, p.deltas[k*nf:(k+1)*nf])
		}
	} else if err := sc.Explain(p.exFlat, p.exTexts, p.deltas); err != nil {
		p.log.Warn("reason codes not computed", "err", err)
		return nil
	} else {
		// A row the model could not score was scored by the rules: so are its reasons.
		for k, i := range p.explain {
			if sc.rowDegraded(i) {
				explainFallback(&p.rows[i].Vector, p.deltas[k*nf:(k+1)*nf])
			}
		}
	}
	out := make(map[int][]string, n)
	for k, i := range p.explain {
		out[i] = topReasons(p.deltas[k*nf:(k+1)*nf], &p.rows[i].Vector, &p.rowRecs[i].State)
	}
	return out
}

// explainFallback fills deltas with how much the rules fallback's risk drops when
// each feature of v moves to zero: the fallback is a rule, explained one feature
// at a time.
func explainFallback(v *features.Vector, deltas []float32) {
	base := features.FallbackRisk(v)
	for j := range deltas {
		w := *v
		w[j] = 0
		deltas[j] = base - features.FallbackRisk(&w)
	}
}

// topReasons names the features with the largest deltas, in words, without
// repeating a phrase.
func topReasons(deltas []float32, v *features.Vector, state *features.OrderState) []string {
	var out []string
	for len(out) < maxReasons {
		best, at := float32(0.01), -1
		for j, d := range deltas {
			if d > best {
				best, at = d, j
			}
		}
		if at < 0 {
			break
		}
		deltas[at] = 0
		if w := features.Describe(at, v, state); !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// observe counts a committed batch in the metrics.
func (p *Processor) observe(st *batchState) {
	for i := range st.items {
		it := &st.items[i]
		p.m.events.WithLabelValues(typeLabel(it.ev.Type), it.result).Inc()
		if it.result == resultDeadLetter {
			p.m.dlq.WithLabelValues(it.reason).Inc()
		}
	}
	for i := range st.decs {
		p.m.decisions.WithLabelValues(st.decs[i].Action, st.decs[i].Mode).Inc()
	}
	p.m.rescored.Add(float64(countTimers(st.rows)))
	for _, g := range st.gauges {
		p.m.countOrder(g.from, -1)
		p.m.countOrder(g.to, 1)
	}
	for _, stay := range st.stays {
		p.m.stays.WithLabelValues(stay.milestone).Observe(stay.d.Seconds())
	}
	for _, o := range st.outcomes {
		actual := "met"
		if o.missed {
			actual = "missed"
		}
		predicted := "not_flagged"
		if float64(o.eval.Risk) >= o.eval.Threshold {
			predicted = "flagged"
		}
		p.m.outcomes.WithLabelValues(o.eval.Model, o.eval.Version, predicted, actual).Inc()
		p.m.outcomeRisk.WithLabelValues(o.eval.Model, o.eval.Version, actual).Observe(float64(o.eval.Risk))
		if o.eval.Class != "" {
			p.m.classOutcomes.WithLabelValues("exception_class", o.eval.ClassVer, o.eval.Class, o.class).Inc()
		}
	}
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
