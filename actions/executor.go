package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// PublishFunc publishes one command durably (a JetStream publish acknowledged by the
// stream), with msgID as its Nats-Msg-Id so a retry is deduplicated.
type PublishFunc func(ctx context.Context, subject, msgID string, data []byte) error

// ExecutorOptions configures an Executor.
type ExecutorOptions struct {
	Store   *store.Store // required
	Publish PublishFunc  // required
	// Interval between outbox scans when nothing wakes the executor. Zero means 1s.
	Interval   time.Duration
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Executor drains the outbox: it publishes each queued command and records the
// outcome. Commands are published at least once and deduplicated downstream by their
// idempotency key, so the effect is once. Run and Wake may be called concurrently.
type Executor struct {
	opts    ExecutorOptions
	wake    chan struct{}
	log     *slog.Logger
	sent    *prometheus.CounterVec
	failed  *prometheus.CounterVec
	pending prometheus.Gauge
}

// Outcome is stored beside a decision once its command was executed.
type Outcome struct {
	Status      string    `json:"status"` // "published"
	Subject     string    `json:"subject"`
	PublishedAt time.Time `json:"published_at"`
	Attempts    int       `json:"attempts"`
}

// NewExecutor validates opts and builds an executor.
func NewExecutor(opts ExecutorOptions) (*Executor, error) {
	if opts.Store == nil || opts.Publish == nil {
		return nil, fmt.Errorf("actions: ExecutorOptions.Store and .Publish are required")
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Executor{
		opts: opts,
		wake: make(chan struct{}, 1),
		log:  opts.Logger.With("component", "executor"),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_actions_published_total",
			Help: "Action commands published to JetStream, by action.",
		}, []string{"action"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_executor_failures_total",
			Help: "Failed attempts to execute an action command, by action.",
		}, []string{"action"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_outbox_depth",
			Help: "Commands in the outbox at the last scan.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.sent, e.failed, e.pending} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actions: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Wake asks the executor to scan the outbox now. It never blocks.
func (e *Executor) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run drains the outbox until ctx is done, then makes one last pass with a short
// deadline so commands of the last batch go out before shutdown.
func (e *Executor) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			e.drain(fctx)
			return nil
		case <-e.wake:
		case <-t.C:
		}
		e.drain(ctx)
	}
}

// drain executes what is in the outbox. Failures stay in the outbox for the next
// pass; they are counted and logged once per pass.
func (e *Executor) drain(ctx context.Context) {
	for ctx.Err() == nil {
		entries, err := e.opts.Store.Outbox(256)
		if err != nil {
			e.log.Error("read outbox", "err", err)
			return
		}
		e.pending.Set(float64(len(entries)))
		if len(entries) == 0 {
			return
		}
		var failures int
		var lastErr error
		for _, en := range entries {
			if err := e.execute(ctx, en); err != nil {
				failures++
				lastErr = err
			}
		}
		if failures > 0 {
			e.log.Warn("commands not executed, will retry", "failed", failures, "err", lastErr)
			return
		}
	}
}

func (e *Executor) execute(ctx context.Context, en store.OutboxEntry) error {
	var cmd Command
	if err := json.Unmarshal(en.Command, &cmd); err != nil {
		return fmt.Errorf("decode outbox entry %s: %w", en.DecisionID, err)
	}
	subject := Subject(cmd.Action)
	if err := e.opts.Publish(ctx, subject, cmd.IdempotencyKey, en.Command); err != nil {
		e.failed.WithLabelValues(cmd.Action).Inc()
		return fmt.Errorf("publish %s for decision %s: %w", subject, en.DecisionID, err)
	}
	out, _ := json.Marshal(Outcome{Status: "published", Subject: subject, PublishedAt: time.Now().UTC(), Attempts: 1})
	if err := e.opts.Store.CompleteOutbox(en.DecisionID, out, true); err != nil {
		return err
	}
	e.sent.WithLabelValues(cmd.Action).Inc()
	return nil
}
