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
	// Partitions taken over and given up.
	notOwned         prometheus.Counter
	takeoverFailures prometheus.Counter
	takeoverSecs     prometheus.Histogram
	replicaFailures  prometheus.Counter
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
		notOwned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_partition_messages_not_owned_total",
			Help: "Messages delivered for a partition this instance no longer owned when it staged or acked them: left unacked for the partition's next owner.",
		}),
		takeoverFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_partition_takeover_failures_total",
			Help: "Partitions leased but not started: their state could not be rebuilt or their consumer created (see the log).",
		}),
		takeoverSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderwatch_partition_takeover_seconds",
			Help:    "Time from a partition's lease to reading it: forgetting the old state, rebuilding it from ORDERS, creating the consumer.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		replicaFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_batches_acked_unreplicated_total",
			Help: "Batches acked before the governance they changed reached the group's state bucket (it failed; written by a later flush).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.batchSecs, m.batchSize, m.ackFailures, m.running, m.notOwned, m.takeoverFailures, m.takeoverSecs, m.replicaFailures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
