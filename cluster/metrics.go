package cluster

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Membership's orderwatch_cluster_* series.
type metrics struct {
	owned          prometheus.Gauge
	takeovers      prometheus.Counter
	losses         *prometheus.CounterVec
	members        prometheus.Gauge
	unowned        prometheus.Gauge
	unownedLongest prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_cluster_partitions_owned",
			Help: "Partitions this member owns now (its leases are valid and not being released).",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_cluster_takeovers_total",
			Help: "Leases this member took that another member held or released, or that had expired (not free, not its own).",
		}),
		losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_cluster_lease_losses_total",
			Help: "Leases this member lost without giving them up: reason expired (not renewed in time) or taken (another member holds it).",
		}, []string{"reason"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_cluster_members",
			Help: "Alive members of the group, as this member sees them (itself included).",
		}),
		unowned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_cluster_partitions_unowned",
			Help: "Partitions with no live holder, as this member sees them.",
		}),
		unownedLongest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_cluster_partition_unowned_seconds",
			Help: "The longest time any partition has been without a live holder, as this member sees it (0 when all have one).",
		}),
	}
	m.losses.WithLabelValues("expired")
	m.losses.WithLabelValues("taken")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.owned, m.takeovers, m.losses, m.members, m.unowned, m.unownedLongest} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	return m, nil
}

// updateMetrics sets the gauges from the current view.
func (l *loop) updateMetrics() {
	m := l.m
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	owned := 0
	for p := range m.held {
		if m.ownsLocked(p, now) {
			owned++
		}
	}
	m.met.owned.Set(float64(owned))
	m.met.members.Set(float64(len(l.aliveLocked(now))))
	unowned, longest := 0, time.Duration(0)
	for p := range m.leases {
		if d, ok := m.unownedForLocked(p, now); ok {
			unowned++
			longest = max(longest, d)
		}
	}
	m.met.unowned.Set(float64(unowned))
	m.met.unownedLongest.Set(longest.Seconds())
}
