package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's own; the Processor registers its own (process).
type metrics struct {
	batchSecs   prometheus.Histogram
	batchSize   prometheus.Histogram
	ackFailures prometheus.Counter
	running     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		batchSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderwatch_batch_duration_seconds",
			Help:    "Time to process one batch: decode, fold, score, decide, commit, ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderwatch_batch_size_messages",
			Help:    "Messages per processed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		ackFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_ack_failures_total",
			Help: "Acks that failed after their batch was committed; the messages will be redelivered and recognised.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_consumer_running",
			Help: "1 while the JetStream consumer is fetching.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.batchSecs, m.batchSize, m.ackFailures, m.running} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
