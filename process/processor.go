// Package process applies one batch of ORDERS messages: dedupe, fold into the
// order states and context aggregates, rescoring timers, score, decide and write,
// in one synced Badger commit. The live pipeline (JetStream consumption, acks,
// the DLQ stream) and replay both drive a Processor.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Options configures a Processor. Zero values mean the defaults.
type Options struct {
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
	// CatchUpBefore, when set (live mode), makes the events that happened
	// before it history this instance catches up on, as replay would: their
	// scoring moments and the rescoring timers due among them follow their
	// event time (the greatest such occurred_at applied since New), so an
	// order whose history arrives at once (the demo's backlog) has the scores
	// it would have had, among them the one its live quality is judged on. The
	// first event at or after it (or the clock 10 minutes past it) ends the
	// catch-up: from then on the wall clock. Zero: always the wall clock.
	CatchUpBefore time.Time
	// OnRow, when set, receives every row, in stream order, scored: one per
	// event and rescoring timer, whatever the batching. Only the latest row of
	// an order in a batch is decided; without OnRow the rows it supersedes
	// are not scored either (pickRows).
	OnRow func(*Row)
	// Retention is how long closed and orphan orders and timelines are kept. Zero
	// means 30 days.
	Retention time.Duration
	// CachedOrders bounds the order records kept decoded in memory between
	// batches, so an order's next event needs no read and decode from Badger.
	// Zero means 200,000; a negative value disables the cache.
	CachedOrders int
	// Partitions is the number of order partitions of ORDERS; zero means 1.
	Partitions int
	// PartitionOf returns the partition of an order; nil puts every order in
	// partition 0.
	PartitionOf func(order string) int
	// Owns reports whether this instance owns a partition now; nil owns all.
	// Rescoring timers of an order in a partition not owned do not fire.
	Owns func(part int) bool
	// Replicated marks, in each batch, the orders whose governance (rule
	// episodes, decisions, cooldowns) the batch changed, for actions.Replica to
	// write to the group's state bucket (store.MarkGovernance).
	Replicated bool
	// OpenOrders, when set, is kept as the index of the open orders this
	// instance holds, for the API's at-risk queue: loaded in New, changed after
	// each commit, a partition forgotten by DropPartition. Nil keeps none.
	OpenOrders *OpenIndex
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means the metrics are not registered
}

// Processor applies batches of messages: the fold, context aggregates, rescoring
// timers, scoring, policy and one Badger commit per batch. It is the code both the
// live pipeline and replay run. Not safe for concurrent use.
type Processor struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	// In-memory mirrors of durable state, reloaded after a failed batch.
	ctx       *features.Context
	dues      *dueIndex      // the open orders' next due times (due.go)
	watches   *watches       // the deadline watches (deadlines.go)
	book      *exceptionBook // the open exceptions as committed, for the metrics
	watermark time.Time

	// incidents are the incidents a batch may change (incidents.go),
	// incMetrics their metrics as committed.
	incidents  *incidents
	incMetrics *incidentMetrics
	// caught is the catch-up (Options.CatchUpBefore) as staged, caughtCommitted
	// as committed (what a failed batch goes back to).
	caught, caughtCommitted catchUp
	// counters are the names of each partition's counters, ctxCounters those of
	// the context subjects.
	counters    []partCounters
	ctxCounters partCounters

	// cache holds committed order records by id (see CachedOrders). A batch
	// changes its records in place; a failed batch evicts the ones it touched.
	cache map[string]*orderRecord
	// heldMemory is the rules' memory of orders restored with a partition
	// before any of their events was folded here (RestoreGovernance), taken by
	// their first record.
	heldMemory map[string]actions.Memory
	// badOrders are the orders whose stored record did not decode at the
	// last load (loadOrders).
	badOrders  map[string]bool
	lastBad    error    // why restore left an order out
	govChanged []string // the orders whose governance the batches waited for changed, until taken
	// govNonce tells one governance change of an order from the next
	// (markGovernance); it starts at the wall clock so marks of an earlier run
	// are told apart too.
	govNonce uint64

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
	opens    []openUpdate // for Options.OpenOrders, applied after the commit
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
	ids      map[partID]uint64
	seqs     map[partSeq]bool
	sc       scored // the models that scored the rows, until decided
	fallback []bool // sc.fallback's storage
	// shadowRefs and shadowNames are the shadows of the last batch and their
	// keys (shadowKeys).
	shadowRefs  []actions.ModelRef
	shadowNames []string
	queued      bool    // commands were put in the outbox
	caught      catchUp // the catch-up once the batch is applied
	// govOrders are the orders whose governance the batch marked changed.
	govOrders []string

	// exChanges are the exceptions the batch opened, reminded or closed, for
	// the exception book after the commit.
	exChanges []exChange
	// incStats is what the batch changed in the incident metrics.
	incStats incidentStats

	// pointsSkipped counts the rows decided without a score point.
	pointsSkipped int
	// superseded marks the rows (one entry per row) that a later row of the
	// same order in the batch supersedes: scored (for the export, or for the
	// order's eval), not decided (pickRows); nSuperseded counts them.
	superseded  []bool
	nSuperseded int
}

// Result summarises a processed batch.
type Result struct {
	Queued                            bool // commands were put in the outbox
	Applied, Duplicates, DeadLettered int
	// Timers says that a Tick found rescoring timers due: it committed their
	// rescoring, or failed to.
	Timers bool
	// TimersLeft says that a Tick stopped at its bound (timerSlice) with
	// timers still due: tick again once no message waits.
	TimersLeft bool
}

func (r Result) add(o Result) Result {
	return Result{Queued: r.Queued || o.Queued, Applied: r.Applied + o.Applied,
		Duplicates: r.Duplicates + o.Duplicates, DeadLettered: r.DeadLettered + o.DeadLettered, Timers: r.Timers || o.Timers,
		TimersLeft: o.TimersLeft}
}

// New loads the durable context, watermark, rescoring index and deadline
// watches, and starts the order gauges and the index of open orders from the
// stored orders.
func New(opts Options) (*Processor, error) {
	switch {
	case opts.Store == nil:
		return nil, errors.New("process: Options.Store is required")
	case opts.Policy == nil:
		return nil, errors.New("process: Options.Policy is required")
	case opts.DeadLetter == nil:
		return nil, errors.New("process: Options.DeadLetter is required")
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
	opts.Partitions = max(opts.Partitions, 1)
	if opts.PartitionOf == nil {
		opts.PartitionOf = func(string) int { return 0 }
	}
	if opts.Owns == nil {
		opts.Owns = func(int) bool { return true }
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("process: register metrics: %w", err)
	}
	p := &Processor{opts: opts, log: opts.Logger, m: m, cache: map[string]*orderRecord{}, heldMemory: map[string]actions.Memory{}, govNonce: uint64(time.Now().UnixNano())}
	if p.book, err = newExceptionBook(opts.Registerer, opts.Clock, opts.EventTime); err != nil {
		return nil, fmt.Errorf("process: register exception metrics: %w", err)
	}
	if p.incMetrics, err = newIncidentMetrics(opts.Registerer); err != nil {
		return nil, fmt.Errorf("process: register incident metrics: %w", err)
	}
	p.counters = make([]partCounters, opts.Partitions)
	for i := range p.counters {
		p.counters[i] = newPartCounters(i)
	}
	p.ctxCounters = newPartCounters(store.ContextPart)
	for i := range p.states {
		p.states[i] = batchState{orders: map[string]*orderRecord{}, ids: map[partID]uint64{}, seqs: map[partSeq]bool{}}
	}
	p.batchState = &p.states[0]
	if err := p.load(true); err != nil {
		return nil, err
	}
	p.book.apply(p.watches.openExceptions(), p.watermark)
	return p, nil
}

// load reads the in-memory mirrors from the store: at start (first, when New
// calls it) and after a failed batch. A context aggregate that does not decode
// is left out (it starts again from its next event): counted and logged at
// start. The order records are read whole, once (loadOrders).
func (p *Processor) load(first bool) error {
	ctx := features.NewContext()
	var unreadable int
	var firstErr error
	err := p.opts.Store.Contexts(func(kind, id string, v []byte) error {
		var err error
		switch kind {
		case features.KindWarehouse:
			w := &features.Warehouse{}
			if err = json.Unmarshal(v, w); err == nil {
				ctx.Warehouses[id] = w
			}
		case features.KindCarrier:
			c := &features.Carrier{}
			if err = json.Unmarshal(v, c); err == nil {
				ctx.Carriers[id] = c
			}
		case features.KindCustomer:
			c := &features.Customer{}
			if err = json.Unmarshal(v, c); err == nil {
				ctx.Customers[id] = c
			}
		default:
			err = fmt.Errorf("unknown context kind %q", kind)
		}
		if err != nil && first {
			label := kind
			if kind != features.KindWarehouse && kind != features.KindCarrier && kind != features.KindCustomer {
				label = labelOther
			}
			p.m.unreadable.WithLabelValues(label).Inc()
			if unreadable++; firstErr == nil {
				firstErr = fmt.Errorf("%s %s: %w", kind, id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("process: load context aggregates: %w", err)
	}
	if unreadable > 0 {
		p.log.Warn("stored context aggregates that do not decode, left out", "records", unreadable, "err", firstErr)
	}
	wm, err := p.opts.Store.Meta("watermark")
	if err != nil {
		return err
	}
	p.watermark = time.Time{}
	if wm != nil {
		if err := p.watermark.UnmarshalText(wm); err != nil {
			return fmt.Errorf("process: stored watermark %q: %w", wm, err)
		}
	}
	if err := p.loadOrders(first); err != nil {
		return err
	}
	if err := p.loadIncidents(); err != nil {
		return err
	}
	p.ctx = ctx
	p.caught = p.caughtCommitted
	return nil
}

// Watermark returns the greatest event time applied.
func (p *Processor) Watermark() time.Time { return p.watermark }

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

// process is Stage, Submit and Wait in turn; with a poison error, msgs (one
// message) is dead-lettered as poison instead of applied.
func (p *Processor) process(ctx context.Context, msgs []*Message, poison error) (Result, error) {
	if p.flight != nil {
		return Result{}, errors.New("process: Process called while a batch commits: Wait for it first")
	}
	s, err := p.stage(ctx, msgs, poison)
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
	return p.stage(ctx, msgs, nil)
}

// stage is Stage; with a poison error, every message is dead-lettered with
// ReasonPoison and the error as detail.
func (p *Processor) stage(ctx context.Context, msgs []*Message, poison error) (*Staged, error) {
	p.reset(len(msgs))
	s := &Staged{st: p.batchState}
	for i, m := range msgs {
		it := &p.items[i]
		it.msg = m
		err := features.Decode(m.Data, &it.ev)
		switch {
		case poison != nil:
			it.reason, it.detail = ReasonPoison, poisonDetail(poison)
		case err == nil:
			it.reason, it.detail = features.CheckSubject(m.Subject, &it.ev)
		case Classify(err) == Permanent:
			var de *features.DecodeError
			errors.As(err, &de)
			it.reason, it.detail = de.Reason, de.Detail
		default:
			return s, fmt.Errorf("decode message %d: %w", m.Seq, err)
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
	if p.clockTimers() {
		// One slice of the timers due by the clock rides with the batch;
		// the rest wait for the next batch or Tick (timerSlice).
		if _, err := p.fireDueN(s.batch, p.opts.Clock(), timerSlice); err != nil {
			return s, err
		}
	}
	for i := range p.items {
		if err := p.apply(ctx, s.batch, &p.items[i]); err != nil {
			return s, err
		}
	}
	if err := p.flushWatches(s.batch); err != nil {
		return s, err
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
	if err := p.load(false); err != nil {
		p.log.Error("reload the pipeline state after a failed batch", "err", err)
	}
}

// Submit decides a staged batch (policy, reasons, decisions and outbox), writes
// everything into its transaction and starts the commit without waiting for it.
// The batch before must have been waited for. On an error nothing is committed
// and the batch is aborted.
func (p *Processor) Submit(s *Staged) (*Flight, error) {
	p.batchState = s.st
	s.st.caught = p.caught
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
	// After decide, which sets p.queued: an incident's notification may queue too.
	if err := p.writeIncidents(s.batch); err != nil {
		return fail(err)
	}
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
		p.m.failures.WithLabelValues(stageCommit).Inc()
		p.evictTouched(f.st)
		err = fmt.Errorf("%w: %w", ErrCommit, err)
		if lerr := p.load(false); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return res, err
	}
	p.cacheTouched(f.st)
	p.caughtCommitted = f.st.caught
	p.book.apply(f.st.exChanges, p.watermark)
	p.applyIncidents(&f.st.incStats)
	p.observe(f.st)
	p.govChanged = append(p.govChanged, f.st.govOrders...)
	if p.opts.OpenOrders != nil {
		p.opts.OpenOrders.apply(f.st.opens)
	}
	if p.opts.OnRow != nil {
		// After the commit: a batch that fails is applied again (or in parts),
		// and its rows must reach replay's export once.
		for i := range f.st.rows {
			p.opts.OnRow(&f.st.rows[i])
		}
	}
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

// TakeGovernanceChanged returns the orders whose governance the batches
// waited for since the last call changed (marked for the group's state bucket),
// and forgets them; the slice is valid until the next Wait.
func (p *Processor) TakeGovernanceChanged() []string {
	out := p.govChanged
	p.govChanged = p.govChanged[:0]
	return out
}

// checkSpace asks the store whether it takes writes (store.Options.CheckSpace)
// before a batch or a rescoring tick writes or publishes anything (dead
// letters), and counts a refusal as a failed commit: nothing is written, and the
// batch is redelivered.
func (p *Processor) checkSpace() error {
	if err := p.opts.Store.Writable(); err != nil {
		p.m.failures.WithLabelValues(stageCommit).Inc()
		return err
	}
	return nil
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
	p.pointsSkipped, p.nSuperseded = 0, 0
	p.superseded = p.superseded[:0]
	p.outcomes = p.outcomes[:0]
	p.gauges = p.gauges[:0]
	p.opens = p.opens[:0]
	p.stays = p.stays[:0]
	p.exChanges = p.exChanges[:0]
	p.govOrders = p.govOrders[:0]
}
