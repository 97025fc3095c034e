package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// Options configures a Pipeline. Zero values mean the defaults.
type Options struct {
	JetStream jetstream.JetStream // required
	Store     *store.Store        // required
	Policy    *actions.Policy     // required
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
	// watermark instead of the wall clock, as replay does.
	EventTime bool
	// OnRow receives every scored row (see ProcessorOptions.OnRow).
	OnRow func(*Row)
	// OnCommitted, when set, receives the messages of each batch after its commit
	// and acks (the benchmark measures event-to-decision latency with it).
	OnCommitted func(msgs []*Message)
	// OnPending, when set, receives after each batch how many messages the
	// consumer had not yet delivered when its last message was sent (the
	// LagMonitor's ObservePending), so the lag shows between two polls.
	OnPending func(pending uint64)
	// Retention of closed orders and timelines; zero means 30 days.
	Retention time.Duration
	// CheckSpace, when set, is asked before each batch and rescoring tick writes
	// anything; an error fails it at the stage "commit" (see
	// ProcessorOptions.CheckSpace).
	CheckSpace func() error
	// Clock gives the wall clock; nil means time.Now.
	Clock      func() time.Time
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Pipeline consumes ORDERS and applies each batch in one Badger commit before it
// acks. Run blocks; Ready may be called from any goroutine.
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	m       *metrics
	proc    *Processor
	running atomic.Bool
	lastErr atomic.Pointer[string] // the last batch failure, cleared by a commit
	tickErr atomic.Pointer[string] // the last rescoring tick failure, cleared by a committed tick
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
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("pipeline: register metrics: %w", err)
	}
	log := opts.Logger.With("component", "pipeline")
	proc, err := NewProcessor(ProcessorOptions{
		Store: opts.Store, Policy: opts.Policy, Scorer: opts.Scorer, DeadLetter: JetStreamDeadLetter(opts.JetStream),
		EventTime: opts.EventTime, Clock: opts.Clock, OnRow: opts.OnRow, Retention: opts.Retention, CheckSpace: opts.CheckSpace, Logger: log,
	}, m)
	if err != nil {
		return nil, err
	}
	return &Pipeline{opts: opts, log: log, m: m, proc: proc}, nil
}

// Ready reports whether the consumer is running and the last batch did not fail,
// with the reason when it is not.
func (p *Pipeline) Ready() (bool, string) {
	if !p.running.Load() {
		return false, "consumer not running"
	}
	if e := p.lastErr.Load(); e != nil {
		return false, *e
	}
	if e := p.tickErr.Load(); e != nil {
		return false, *e
	}
	return true, ""
}

// Run consumes until ctx is done. On cancellation it stops fetching, finishes the
// batch in flight (commit and ack), naks what was buffered but not started so it is
// redelivered at once on restart, and returns nil.
func (p *Pipeline) Run(ctx context.Context) error {
	cons, err := p.opts.JetStream.CreateOrUpdateConsumer(ctx, StreamOrders, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "orderwatch pipeline: acks only after the Badger commit",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.opts.AckWait,
		MaxAckPending: 8 * p.opts.BatchSize,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: SubjectsOrders,
	})
	if err != nil {
		return fmt.Errorf("pipeline: create consumer %s on %s: %w", ConsumerName, StreamOrders, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * p.opts.BatchSize))
	if err != nil {
		return fmt.Errorf("pipeline: start fetching from %s: %w", StreamOrders, err)
	}
	msgs := make(chan jetstream.Msg, p.opts.BatchSize)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(msgs)
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err != nil {
				// Missed heartbeats while the server restarts: the iterator
				// re-pulls by itself.
				p.log.Warn("fetch from consumer", "err", err)
				continue
			}
			msgs <- msg
		}
	}()
	p.running.Store(true)
	p.m.running.Set(1)
	p.log.Info("consuming", "stream", StreamOrders, "consumer", ConsumerName, "batch", p.opts.BatchSize, "event_time", p.opts.EventTime)
	defer func() {
		p.running.Store(false)
		p.m.running.Set(0)
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	batch := make([]jetstream.Msg, 0, p.opts.BatchSize)
	wrapped := make([]Message, p.opts.BatchSize)
	ptrs := make([]*Message, 0, p.opts.BatchSize)
	backoff := 100 * time.Millisecond
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return p.shutdown(it, msgs, readerDone)
		case <-tick.C:
			// Rescoring timers fire between batches when the stream is quiet. A
			// tick is judged apart from the batches: one with no timer due, or a
			// committed one, must not hide a batch that keeps failing.
			res, err := p.proc.Tick()
			if res.Timers {
				p.settleTick(err)
			}
			if err == nil && res.Queued {
				p.opts.OnCommit()
			}
			continue
		case m, ok := <-msgs:
			if !ok {
				return errors.New("pipeline: message iterator closed unexpectedly")
			}
			batch = append(batch, m)
		}
	fill:
		for len(batch) < p.opts.BatchSize {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		ptrs = ptrs[:0]
		kept := batch[:0]
		var pending uint64
		for _, m := range batch {
			meta, err := m.Metadata()
			if err != nil {
				// Cannot happen for a pull consumer's message; never ack what
				// was not placed: the server redelivers it.
				p.log.Error("message without JetStream metadata, not acked", "err", err, "subject", m.Subject())
				continue
			}
			pending = meta.NumPending
			wrapped[len(kept)] = Message{Seq: meta.Sequence.Stream, Subject: m.Subject(), Data: m.Data(), Header: m.Headers()}
			ptrs = append(ptrs, &wrapped[len(kept)])
			kept = append(kept, m)
		}
		batch = kept
		start := time.Now()
		// The batch in flight finishes even when ctx is cancelled meanwhile.
		res, err := p.proc.Process(context.WithoutCancel(ctx), ptrs)
		if p.settle(err, batch) {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, m := range batch {
			if err := m.Ack(); err != nil {
				p.m.ackFailures.Inc()
			}
		}
		if res.Queued {
			p.opts.OnCommit()
		}
		if p.opts.OnCommitted != nil {
			p.opts.OnCommitted(ptrs)
		}
		if p.opts.OnPending != nil && len(batch) > 0 {
			p.opts.OnPending(pending)
		}
		p.m.batchSize.Observe(float64(len(batch)))
		p.m.batchSecs.Observe(time.Since(start).Seconds())
	}
}

// settle records a batch outcome for readiness; on failure it naks the batch so it
// is redelivered, and reports true.
func (p *Pipeline) settle(err error, batch []jetstream.Msg) bool {
	if err == nil {
		p.lastErr.Store(nil)
		return false
	}
	msg := err.Error()
	p.lastErr.Store(&msg)
	p.log.Error("batch not committed, messages will be redelivered", "err", err, "messages", len(batch))
	for _, m := range batch {
		_ = m.NakWithDelay(time.Second)
	}
	return true
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

func (p *Pipeline) shutdown(it jetstream.MessagesContext, msgs chan jetstream.Msg, readerDone chan struct{}) error {
	it.Stop()
	var naked int
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				<-readerDone
				p.log.Info("consumer stopped", "returned_unprocessed", naked)
				return nil
			}
			_ = m.Nak()
			naked++
		case <-time.After(5 * time.Second):
			p.log.Warn("message reader did not stop within 5s")
			return nil
		}
	}
}
