package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// Options configures a Pipeline. Zero values mean the defaults.
type Options struct {
	JetStream jetstream.JetStream // required
	Store     *store.Store        // required
	Policy    *actions.Live       // required; read once per batch
	// Scorer scores orders; nil means the rules fallback, and every decision is
	// marked degraded.
	Scorer Scorer
	// OnCommit is called after each committed batch that queued commands (the
	// executor's Wake).
	OnCommit func()
	// BatchSize is the most messages handled in one commit. Zero means 1024.
	BatchSize int
	// AckWait is the consumer's redelivery timeout. Zero means 30s.
	AckWait time.Duration
	// EventTime runs scoring moments and rescoring timers on the event-time
	// watermark instead of the wall clock, as replay does, and reads ORDERS
	// whole in stream order with one consumer ("<group>-ordered"), so that the
	// same stream gives the same rows; Ownership must be nil.
	EventTime bool
	// CatchUpBefore, when set, scores the events that happened before it on
	// their own time, and the rescoring timers among them, until the first
	// event at or after it (see process.Options.CatchUpBefore): `run --demo`
	// sets it to the demo's start, so its backlog is scored as it happened.
	CatchUpBefore time.Time
	// OnRow receives every scored row (see process.Options.OnRow).
	OnRow func(*Row)
	// OnCommitted, when set, receives the messages of each batch after its commit
	// and acks (the benchmark measures event-to-decision latency with it).
	OnCommitted func(msgs []*Message)
	// Retention of closed orders and timelines; zero means 30 days.
	Retention time.Duration
	// Partitions is the number of order partitions of ORDERS; zero reads it
	// from the stream's subject transform.
	Partitions int
	// Group names the consumers ("<group>-p<NN>-e<epoch>"); "" means
	// ConsumerName. Member names this instance's follower of the context
	// subjects ("<group>-follow-<member>"); "" means "local".
	Group, Member string
	// Ownership says which partitions are this instance's; nil owns them all.
	Ownership Ownership
	// Replica keeps the governance of this member's orders in the group's state
	// bucket: each batch marks the orders whose governance it changed, and
	// they are written before the batch is acked; a partition taken over has
	// its orders' governance restored from it. Nil keeps governance local (a
	// lone member, replay, bench).
	Replica *actions.Replica
	// OpenOrders, when set, is kept as the index of the open orders this
	// instance holds (see process.Options.OpenOrders), for the API.
	OpenOrders *process.OpenIndex
	// Clock gives the wall clock; nil means time.Now.
	Clock      func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Pipeline consumes ORDERS and applies each batch in one Badger commit before it
// acks. Run blocks; Ready may be called from any goroutine.
type Pipeline struct {
	opts        Options
	log         *slog.Logger
	m           *metrics
	proc        *process.Processor
	parts       int
	sources     sourceSet
	in          chan inMsg    // what every source's reader delivers
	ctrl        chan func()   // work run on the loop between batches (manage)
	stopReaders chan struct{} // closed when Run returns: readers stop handing over
	running     atomic.Bool
	stuck       stuckSet               // messages whose last batch failed, until they commit
	tickErr     atomic.Pointer[string] // the last rescoring tick failure, cleared by a committed tick
}

// New validates opts, loads the processor's durable state and builds a pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.JetStream == nil {
		return nil, errors.New("pipeline: Options.JetStream is required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	if opts.AckWait <= 0 {
		opts.AckWait = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnCommit == nil {
		opts.OnCommit = func() {}
	}
	if opts.Group == "" {
		opts.Group = ConsumerName
	}
	if opts.EventTime && opts.Ownership != nil {
		return nil, errors.New("pipeline: EventTime reads ORDERS whole in stream order, on one instance: it takes no Ownership")
	}
	if opts.Member == "" {
		opts.Member = "local"
	}
	if opts.Partitions <= 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := opts.JetStream.Stream(ctx, StreamOrders)
		if err != nil {
			return nil, fmt.Errorf("pipeline: look up stream %s for its partitions: %w", StreamOrders, err)
		}
		if opts.Partitions, err = StreamPartitions(s.CachedInfo().Config); err != nil {
			return nil, err
		}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("pipeline: register metrics: %w", err)
	}
	log := opts.Logger.With("component", "pipeline")
	p := &Pipeline{opts: opts, log: log, m: m, parts: opts.Partitions,
		in: make(chan inMsg, opts.BatchSize), ctrl: make(chan func()), stopReaders: make(chan struct{})}
	n := opts.Partitions
	proc, err := process.New(process.Options{
		Store: opts.Store, Policy: opts.Policy, Scorer: opts.Scorer, DeadLetter: JetStreamDeadLetter(opts.JetStream),
		EventTime: opts.EventTime, CatchUpBefore: opts.CatchUpBefore, Clock: opts.Clock, OnRow: opts.OnRow, Retention: opts.Retention,
		Partitions: n, PartitionOf: func(order string) int { return features.Partition(features.OrderToken(order), n) },
		Owns: p.active, Replicated: opts.Replica != nil, OpenOrders: opts.OpenOrders,
		Logger: opts.Logger.With("component", "process"), Registerer: opts.Registerer,
	})
	if err != nil {
		return nil, err
	}
	p.proc = proc
	return p, nil
}

// Ready reports whether the consumer is running and the last batch did not fail,
// with the reason when it is not.
func (p *Pipeline) Ready() (bool, string) {
	if !p.running.Load() {
		return false, "consumer not running"
	}
	// Alone, it owns every partition from the start: ready once it reads them all.
	if p.opts.Ownership == nil && !p.opts.EventTime {
		if n := len(p.sources.names()); n < p.parts+1 {
			return false, fmt.Sprintf("starting the consumers of the partitions: %d of %d", n, p.parts+1)
		}
	}
	if why := p.stuck.reason(p.now()); why != "" {
		return false, why
	}
	if e := p.tickErr.Load(); e != nil {
		return false, *e
	}
	return true, ""
}

// Run consumes until ctx is done: the partitions this instance owns (all of
// them without an Ownership), taken and given up as the leases move, and the
// context subjects. On cancellation it stops fetching, finishes the batch in
// flight (commit and ack), naks what was buffered but not started so it is
// redelivered at once, and returns nil.
func (p *Pipeline) Run(ctx context.Context) error {
	mctx, stopManage := context.WithCancel(ctx)
	manageDone := make(chan struct{})
	if p.opts.EventTime {
		// Event time wants one order over every partition: one reader.
		if err := p.ordered(ctx); err != nil {
			stopManage()
			return err
		}
		close(manageDone)
	} else {
		if err := p.follow(ctx); err != nil {
			stopManage()
			return err
		}
		go func() {
			defer close(manageDone)
			p.manage(mctx)
		}()
	}
	defer func() {
		stopManage()
		<-manageDone
	}()
	p.running.Store(true)
	p.m.running.Set(1)
	p.log.Info("consuming", "stream", StreamOrders, "group", p.opts.Group, "member", p.opts.Member,
		"partitions", p.parts, "batch", p.opts.BatchSize, "event_time", p.opts.EventTime)
	defer func() {
		p.running.Store(false)
		p.m.running.Set(0)
	}()
	msgs := p.in

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	// Two batches are in hand at a time: one commits while the next is staged
	// (decoded, folded and scored); each has its own buffers.
	var bufs [2]batchBuf
	for i := range bufs {
		bufs[i] = batchBuf{msgs: make([]inMsg, 0, p.opts.BatchSize),
			wrapped: make([]Message, p.opts.BatchSize), ptrs: make([]*Message, 0, p.opts.BatchSize)}
	}
	var (
		cur      int
		inflight *batchBuf // submitted, commit on its way
		backoff  = 100 * time.Millisecond
		// timersLeft: the last tick stopped at its slice with timers still
		// due; the next slice runs as soon as no message waits.
		timersLeft bool
	)
	pause := func() {
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	// land waits for the batch in flight, then acks it, or naks it when its
	// commit failed; it reports whether it committed.
	land := func() bool {
		b := inflight
		inflight = nil
		res, err := p.proc.Wait(b.flight)
		if p.settle(err, b, backoff) {
			return false
		}
		backoff = 100 * time.Millisecond
		p.replicate(ctx)
		p.acked(b, res)
		return true
	}
	// rescore fires one slice of the rescoring timers due (process.Tick): a
	// batch that arrives meanwhile waits behind one slice, not the backlog.
	rescore := func() {
		res, err := p.proc.Tick()
		if res.Timers {
			p.settleTick(err)
		}
		if err == nil && res.Queued {
			p.opts.OnCommit()
		}
		timersLeft = err == nil && res.TimersLeft
	}
	stop := func() error {
		if inflight != nil {
			land()
		}
		stopManage()
		<-manageDone
		return p.shutdown()
	}
	for {
		if inflight != nil && len(msgs) == 0 {
			// Nothing waiting: ack the batch in flight now rather than after
			// the next message arrives.
			if !land() {
				pause()
			}
		}
		b := &bufs[cur]
		b.msgs = b.msgs[:0]
		if ctx.Err() != nil {
			// Stop first: select picks among ready cases at random, and
			// messages keep coming.
			return stop()
		}
		if timersLeft && inflight == nil && len(msgs) == 0 {
			rescore()
			continue
		}
		select {
		case <-ctx.Done():
			return stop()
		case op := <-p.ctrl:
			if inflight != nil && !land() {
				pause()
			}
			op()
			continue
		case <-tick.C:
			if inflight != nil && !land() {
				pause()
				continue
			}
			// Rescoring timers fire between batches when the stream is quiet, a
			// slice at a time. A tick is judged apart from the batches: one with
			// no timer due, or a committed one, must not hide a batch that keeps
			// failing.
			rescore()
			continue
		case m := <-msgs:
			b.msgs = append(b.msgs, m)
		}
	fill:
		for len(b.msgs) < p.opts.BatchSize {
			select {
			case m := <-msgs:
				b.msgs = append(b.msgs, m)
			default:
				break fill
			}
		}
		if b.wrap(p); len(b.msgs) == 0 {
			continue
		}
		b.start = time.Now()
		// The batch in flight finishes even when ctx is cancelled meanwhile.
		bctx := context.WithoutCancel(ctx)
		staged, err := p.proc.Stage(bctx, b.ptrs)
		if inflight != nil && !land() {
			// The batch before failed: this one was staged on top of it.
			p.proc.Abort(staged)
			p.nak(b.msgs, backoff)
			pause()
			continue
		}
		// What an error does is decided by its class (process.Classify):
		// transient, the batch is nak'd and retried after a back-off; too big
		// or poison, Process applies it in parts, each in its own commit, down
		// to the message or timer that fails alone, which it isolates.
		if process.Classify(err) == process.Transient {
			p.proc.Abort(staged)
			p.settle(err, b, backoff)
			pause()
			continue
		}
		var flight *process.Flight
		if err == nil {
			flight, err = p.proc.Submit(staged)
		} else {
			p.proc.Abort(staged)
		}
		if c := process.Classify(err); c == process.TooBig || c == process.Poison {
			res, err := p.proc.Process(bctx, b.ptrs)
			if p.settle(err, b, backoff) {
				pause()
				continue
			}
			p.replicate(ctx)
			p.acked(b, res)
			continue
		}
		if p.settle(err, b, backoff) {
			pause()
			continue
		}
		b.flight = flight
		inflight = b
		cur ^= 1
	}
}

// batchBuf holds one batch of messages through staging, commit and ack.
type batchBuf struct {
	msgs    []inMsg
	wrapped []Message
	ptrs    []*Message
	start   time.Time
	flight  *process.Flight
}

// wrap reads the JetStream metadata of the batch's messages. A message without
// any (impossible for a pull consumer's message) is logged and left out, never
// acked: the server redelivers it.
func (b *batchBuf) wrap(p *Pipeline) {
	b.ptrs = b.ptrs[:0]
	kept := b.msgs[:0]
	for _, in := range b.msgs {
		// A message of a partition given up (or of a source stopped) is left
		// unacked: the partition's next owner reads after what was acked.
		if !p.keep(in) {
			p.m.notOwned.Inc()
			continue
		}
		m := in.msg
		meta, err := m.Metadata()
		if err != nil {
			p.log.Error("message without JetStream metadata, not acked", "err", err, "subject", m.Subject())
			continue
		}
		part := in.src.part
		if part == allParts {
			part = partOf(m.Subject())
		}
		b.wrapped[len(kept)] = Message{Seq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), Header: m.Headers(),
			Partition: part, Mode: in.src.mode}
		b.ptrs = append(b.ptrs, &b.wrapped[len(kept)])
		kept = append(kept, in)
	}
	b.msgs = kept
}

// replicate writes the governance the batch changed to the group's state
// bucket before the batch is acked, so that the next owner of a partition finds
// it as of the ack floor it reads on from. A failure is tried again three times;
// then the batch is acked anyway (the stream does not stall on the bucket) and
// the changes, marked in the store, go out with a later flush.
func (p *Pipeline) replicate(ctx context.Context) {
	if p.opts.Replica == nil {
		return
	}
	orders := p.proc.TakeGovernanceChanged()
	if len(orders) == 0 {
		return
	}
	// The batch is acked after this, also when shutting down: its governance
	// goes out first, within a bound of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	wait := 50 * time.Millisecond
	for try := 0; ; try++ {
		err := p.opts.Replica.FlushOrders(ctx, orders)
		if err == nil {
			return
		}
		if errors.Is(err, actions.ErrReplicaDown) {
			p.m.replicaFailures.Inc() // the background flush logs the outage
			return
		}
		if try == 3 || ctx.Err() != nil {
			p.m.replicaFailures.Inc()
			p.log.Warn("order governance not written to the group's state bucket before the ack; written later", "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// acked acks a committed batch and tells who wants to know. A message of a
// partition no longer owned is held back: lose acks it when the partition was
// given up, or leaves it to the next owner when the lease was lost.
func (p *Pipeline) acked(b *batchBuf, res process.Result) {
	for _, m := range b.msgs {
		if !p.keep(m) {
			if len(m.src.held) < 4*p.opts.BatchSize {
				m.src.held = append(m.src.held, m.msg)
			}
			p.m.notOwned.Inc()
			continue
		}
		if err := m.msg.Ack(); err != nil {
			p.m.ackFailures.Inc()
		}
	}
	if res.Queued {
		p.opts.OnCommit()
	}
	if p.opts.OnCommitted != nil {
		p.opts.OnCommitted(b.ptrs)
	}
	p.m.batchSize.Observe(float64(len(b.msgs)))
	p.m.batchSecs.Observe(time.Since(b.start).Seconds())
}

// nak returns a batch that was not committed, for redelivery after delay (the
// back-off, at least a second).
func (p *Pipeline) nak(msgs []inMsg, delay time.Duration) {
	delay = max(delay, time.Second)
	for _, m := range msgs {
		_ = m.msg.NakWithDelay(delay)
	}
}

// settle records a batch outcome for readiness; on failure it naks the batch so it
// is redelivered after delay, and reports true.
func (p *Pipeline) settle(err error, b *batchBuf, delay time.Duration) bool {
	if err == nil {
		p.stuck.committed(b.ptrs)
		return false
	}
	p.stuck.failed(b.ptrs, err.Error(), p.now())
	p.log.Error("batch not committed, messages will be redelivered", "err", err, "messages", len(b.msgs), "class", process.Classify(err).String())
	p.nak(b.msgs, delay)
	return true
}

func (p *Pipeline) now() time.Time {
	if p.opts.Clock != nil {
		return p.opts.Clock()
	}
	return time.Now()
}

// stuckFor is how long a failed message keeps the pipeline not ready without
// coming back: a nak'd message is redelivered within seconds (the nak delay and
// the retry back-off, 10 s each at most), so one not seen for a minute has left the
// stream (purged, aged out) and cannot commit any more.
const stuckFor = time.Minute

// stuckSet is the readiness of the batch path: not ready while any message whose
// batch failed has not been committed since. A batch of other messages that
// commits in between (a redelivery split differently, the next batch) does not
// hide one that keeps failing.
type stuckSet struct {
	mu   sync.Mutex
	seqs map[uint64]time.Time // stream sequence → when its batch last failed
	why  string               // the last failure
}

func (s *stuckSet) failed(msgs []*Message, why string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seqs == nil {
		s.seqs = make(map[uint64]time.Time)
	}
	for _, m := range msgs {
		s.seqs[m.Seq] = now
	}
	s.why = why
}

func (s *stuckSet) committed(msgs []*Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seqs) == 0 {
		return
	}
	for _, m := range msgs {
		delete(s.seqs, m.Seq)
	}
}

// reason is the last failure while a failed message is still outstanding, or "".
func (s *stuckSet) reason(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for seq, at := range s.seqs {
		if now.Sub(at) > stuckFor {
			delete(s.seqs, seq)
		}
	}
	if len(s.seqs) == 0 {
		return ""
	}
	return s.why
}

// settleTick records a rescoring tick's outcome for readiness. A failed tick
// changed nothing: its timers stay due and fire again at the next tick.
func (p *Pipeline) settleTick(err error) {
	if err == nil {
		p.tickErr.Store(nil)
		return
	}
	msg := "rescoring: " + err.Error()
	p.tickErr.Store(&msg)
	p.log.Error("rescoring not committed, retried at the next tick", "err", err)
}

// shutdown stops every source and naks what was delivered but not staged, so it
// is redelivered at once; the partitions' local state is kept, to resume.
func (p *Pipeline) shutdown() error {
	close(p.stopReaders)
	srcs := p.sources.all()
	for _, src := range srcs {
		p.stop(src)
	}
	var naked int
	for {
		select {
		case m := <-p.in:
			_ = m.msg.Nak()
			naked++
			continue
		default:
		}
		break
	}
	if p.opts.Ownership != nil {
		for _, src := range srcs {
			if src.part >= 0 && src.part < p.parts {
				p.opts.Ownership.Handoff(src.part)
			}
		}
	}
	p.log.Info("consumer stopped", "returned_unprocessed", naked)
	return nil
}

// Consumers returns the names of the consumers the pipeline reads for its
// partitions and the context account, for the lag monitor.
func (p *Pipeline) Consumers() []string { return p.sources.names() }

// Partitions returns the number of order partitions of ORDERS.
func (p *Pipeline) Partitions() int { return p.parts }
