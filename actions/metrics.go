package actions

import (
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// storeCollector reads governance metrics from Badger at scrape time, so they are
// right after a restart: open items, the durable counters of suppressed decisions
// and the kill switch.
type storeCollector struct {
	st     *store.Store
	policy *Live
	clock  func() time.Time

	pending, oldest, acks, suppressed, kill *prometheus.Desc
}

func newStoreCollector(st *store.Store, p *Live, clock func() time.Time) *storeCollector {
	return &storeCollector{
		st: st, policy: p, clock: clock,
		pending: prometheus.NewDesc("orderwatch_approvals_pending",
			"Decisions waiting for a person to approve or reject them.", nil, nil),
		oldest: prometheus.NewDesc("orderwatch_approval_oldest_age_seconds",
			"Age of the oldest decision waiting for approval; 0 when none waits.", nil, nil),
		acks: prometheus.NewDesc("orderwatch_acks_pending",
			"Executed decisions waiting for someone to acknowledge them.", nil, nil),
		suppressed: prometheus.NewDesc("orderwatch_decisions_suppressed_total",
			"Decisions recorded but not executed, by reason (kill_switch:policy, kill_switch:runtime, not_worth_it, dry_run, no_alternative, cooldown, rate_limit:<scope>); durable across restarts.",
			[]string{"reason"}, nil),
		kill: prometheus.NewDesc("orderwatch_kill_switch",
			"1 while a kill switch (policy setting or runtime) stops all actions.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.oldest, c.acks, c.suppressed, c.kill} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	items, err := c.st.OpenItems()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
	} else {
		now := c.clock()
		var pending, acks int
		var oldest time.Duration
		for _, oi := range items {
			var it OpenItem
			if json.Unmarshal(oi.Value, &it) != nil {
				continue
			}
			if it.Kind == OpenAck {
				acks++
				continue
			}
			pending++
			oldest = max(oldest, now.Sub(it.Since))
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest.Seconds())
		ch <- prometheus.MustNewConstMetric(c.acks, prometheus.GaugeValue, float64(acks))
	}
	counts, err := c.st.Counters(counterSuppressed)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.suppressed, err)
	} else {
		for reason, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(n), reason)
		}
	}
	halted, _ := c.policy.Policy().Halted()
	v := 0.0
	if halted {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.kill, prometheus.GaugeValue, v)
}
