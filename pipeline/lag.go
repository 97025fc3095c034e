package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// LagOptions configures a LagMonitor. Zero values mean the defaults.
type LagOptions struct {
	JetStream jetstream.JetStream // required
	// Consumers returns the consumers to sum (Pipeline.Consumers); nil means
	// none yet.
	Consumers func() []string
	// Interval between two reads of the consumer's info. Zero means 1s.
	Interval   time.Duration
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// LagMonitor exports how far the durable consumer ConsumerName is behind the
// stream StreamOrders: messages not yet delivered and messages delivered but not yet
// acked, read from the consumer's info on the server. It reads, never changes, the
// consumer: the pipeline creates it. Run blocks and is called once.
type LagMonitor struct {
	opts       LagOptions
	log        *slog.Logger
	pending    prometheus.Gauge
	ackPending prometheus.Gauge
}

// NewLagMonitor validates opts and registers the lag gauges.
func NewLagMonitor(opts LagOptions) (*LagMonitor, error) {
	if opts.JetStream == nil {
		return nil, errors.New("pipeline: LagOptions.JetStream is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &LagMonitor{
		opts: opts,
		log:  opts.Logger.With("component", "lag"),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_consumer_pending_messages",
			Help: "Messages of ORDERS not yet delivered to the orderwatch consumer (its num_pending), at the last poll or batch.",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_consumer_ack_pending_messages",
			Help: "Messages delivered to the orderwatch consumer and not yet acked (its num_ack_pending), at the last poll.",
		}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{l.pending, l.ackPending} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("pipeline: register lag metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Run polls the consumer's info every Interval until ctx is done, then returns nil.
// A failed poll (NATS away) keeps the last values; it is logged when a run of
// failures starts and when it ends, not once per poll. A consumer not created yet
// (the pipeline creates it at start) is not a failure.
func (l *LagMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	var failed int
	for {
		err := l.poll(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// Not created by the pipeline yet: nothing to report.
		case err != nil:
			if failed == 0 {
				l.log.Warn("read consumer info", "err", err)
			}
			failed++
		case failed > 0:
			l.log.Info("consumer info readable again", "failed_polls", failed)
			failed = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (l *LagMonitor) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, max(l.opts.Interval, time.Second))
	defer cancel()
	if l.opts.Consumers == nil {
		return nil
	}
	// The lag of an instance is the sum over the consumers of the partitions
	// it owns; Consumer fetches each one's info from the server.
	var pending, ackPending uint64
	for _, name := range l.opts.Consumers() {
		c, err := l.opts.JetStream.Consumer(ctx, StreamOrders, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue // given up meanwhile
		}
		if err != nil {
			return fmt.Errorf("pipeline: consumer %s on %s: %w", name, StreamOrders, err)
		}
		info := c.CachedInfo()
		pending += info.NumPending
		ackPending += uint64(info.NumAckPending)
	}
	l.pending.Set(float64(pending))
	l.ackPending.Set(float64(ackPending))
	return nil
}
