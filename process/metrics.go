package process

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
)

// Event results, the result label of orderwatch_events_total.
const (
	resultApplied    = "applied"
	resultDuplicate  = "duplicate"
	resultDeadLetter = "dead_letter"
	resultRedelivery = "redelivered"
)

// Stages of orderwatch_batch_failures_total.
const (
	stageDLQPublish = "dlq_publish"
	stageCommit     = "commit"
	stageScore      = "score"
	stagePoison     = "poison"
)

// kindOrder is the kind label of orderwatch_stored_records_unreadable_total for
// order records; context aggregates use their features kind.
const kindOrder = "order"

type metrics struct {
	events      *prometheus.CounterVec
	dlq         *prometheus.CounterVec
	decisions   *prometheus.CounterVec
	scoringSecs prometheus.Histogram
	failures    *prometheus.CounterVec
	rescored    prometheus.Counter
	timers      prometheus.Gauge

	timersDropped  prometheus.Counter
	unreadable     *prometheus.CounterVec
	unusableScores prometheus.Counter
	// pointsSkipped counts the scorings whose score point was not written.
	pointsSkipped prometheus.Counter
	// superseded counts the rows not decided for a later row of their order.
	superseded prometheus.Counter
	// governanceSkipped counts orders whose governance from the group's state
	// bucket could not be restored.
	governanceSkipped prometheus.Counter

	openByWH *prometheus.GaugeVec
	atRisk   *prometheus.GaugeVec
	stays    *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
	// unjudged counts the outcomes with no score to judge (quality.go).
	unjudged    prometheus.Counter
	outcomeRisk *prometheus.HistogramVec
	// shadowOutcomes pairs each shadow's verdict with the live version's on
	// the same order: orderwatch models compare.
	shadowOutcomes *prometheus.CounterVec
	classOutcomes  *prometheus.CounterVec

	// warehouses bounds the warehouse label of openByWH and atRisk.
	warehouses labelSet
	// sources counts applied events by source system (sources.go).
	sources *sourceMetrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		warehouses: labelSet{max: maxWarehouseLabels, kept: map[string]bool{}},
		sources:    newSourceMetrics(),
		pointsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_score_points_skipped_total",
			Help: "Scorings that wrote no point to the order's score history: nothing decided, and the risk moved less than 0.05 since the last point, with the same most likely class, model and degraded flag. The order record keeps the latest score.",
		}),
		superseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_rows_superseded_total",
			Help: "Scoring moments of an order (an event, a rescoring timer) not decided because a later one of the same order in the same batch was: decisions are taken on the latest state of each batch. Scored only when replay exports every row, or for the order's model quality judgement.",
		}),
		governanceSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_governance_restore_skipped_total",
			Help: "Orders whose governance read from the group's state bucket could not be restored on a takeover (a damaged value): left out, logged.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_events_total",
			Help: "Messages read from ORDERS by event type and result (applied, duplicate, dead_letter, redelivered).",
		}, []string{"type", "result"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_dlq_total",
			Help: "Messages sent to ORDERS_DLQ by reason.",
		}, []string{"reason"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_decisions_total",
			Help: "Decisions recorded by action and mode (auto, approval, shadow).",
		}, []string{"action", "mode"}),
		scoringSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderwatch_scoring_duration_seconds",
			Help:    "Time to score one batch of orders with the model.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14),
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_batch_failures_total",
			Help: "Batches that failed, by stage: dlq_publish and commit (not committed, retried after a back-off), score (scored by the rules instead), poison (split to isolate the message or timer that fails).",
		}, []string{"stage"}),
		rescored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_rescores_total",
			Help: "Open orders scored again by a timer before their cutoff, without a new event.",
		}),
		timers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_rescoring_timers",
			Help: "Open orders with a pending rescoring timer.",
		}),
		timersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_rescoring_timers_dropped_total",
			Help: "Rescoring timers dropped because their order could not be rescored (a poison record or score); the order is rescored again at its next event.",
		}),
		unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_stored_records_unreadable_total",
			Help: "Stored records that did not decode at start, by kind (order: left out of the per-warehouse gauges, its next event dead-lettered as poison; warehouse, carrier, customer: the context aggregate starts again from its next event).",
		}, []string{"kind"}),
		unusableScores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_unusable_scores_total",
			Help: "Rows whose model risk was not a probability (NaN, infinite, outside [0,1]) without the scorer marking them degraded: scored by the rules fallback instead.",
		}),
		openByWH: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_open_orders_by_warehouse",
			Help: "Open orders (created, not shipped or cancelled) by warehouse.",
		}, []string{"warehouse"}),
		atRisk: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_orders_at_risk",
			Help: "Open orders whose latest cutoff risk is at or above the model's act threshold, by warehouse.",
		}, []string{"warehouse"}),
		stays: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderwatch_milestone_duration_seconds",
			Help:    "How long orders sat at a milestone before reaching the next, by the milestone they left (event time).",
			Buckets: []float64{60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800},
		}, []string{"milestone"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_outcomes_total",
			Help: "Orders whose cutoff outcome is known, by the risk model version that scored them 2 h before the cutoff, its role (live: the version that acted; shadow: a shadow's score of the same moment), whether it flagged them (risk >= its act threshold) and whether they missed: precision and recall per version, on the same orders.",
		}, []string{"model", "version", "role", "predicted", "actual"}),
		unjudged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_model_outcomes_unjudged_total",
			Help: "Orders whose cutoff outcome became known with no score to judge the model on: first seen within 2 h of their cutoff though created earlier (a backlog, a late feed), or after it. Not in orderwatch_model_outcomes_total.",
		}),
		outcomeRisk: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderwatch_model_outcome_risk",
			Help:    "The evaluated risk of orders whose outcome is known, by model version, role (live, shadow) and outcome: calibration per bucket.",
			Buckets: []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1},
		}, []string{"model", "version", "role", "actual"}),
		shadowOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_shadow_outcomes_total",
			Help: "Orders whose cutoff outcome is known and that a shadow version scored at the judged moment, by the shadow's version and verdict (predicted, at its act threshold), the live version and its verdict on the same order (live_predicted), and the outcome: a shadow against the live model on exactly the same orders.",
		}, []string{"model", "version", "live_version", "predicted", "live_predicted", "actual"}),
		classOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_model_class_outcomes_total",
			Help: "Orders with a known outcome by the most likely exception class predicted 2 h before the cutoff and the exception seen in their events.",
		}, []string{"model", "version", "predicted", "actual"}),
	}
	// Pre-create the bounded label values so dashboards and alerts see zeros.
	for _, t := range append(features.Types, "unknown") {
		for _, r := range []string{resultApplied, resultDuplicate, resultDeadLetter, resultRedelivery} {
			m.events.WithLabelValues(t, r)
		}
	}
	for _, r := range append(features.Reasons[:len(features.Reasons):len(features.Reasons)], ReasonPoison) {
		m.dlq.WithLabelValues(r)
	}
	for _, s := range []string{stageDLQPublish, stageCommit, stageScore, stagePoison} {
		m.failures.WithLabelValues(s)
	}
	// The warehouses are known only from orders; the one label value known at
	// start is the one past the cap, so the gauges exist before the first order.
	m.openByWH.WithLabelValues(labelOther)
	m.atRisk.WithLabelValues(labelOther)
	for _, k := range []string{kindOrder, features.KindWarehouse, features.KindCarrier, features.KindCustomer} {
		m.unreadable.WithLabelValues(k)
	}
	for _, ms := range features.Milestones[1:] {
		m.stays.WithLabelValues(ms)
	}
	for _, a := range actions.Actions {
		for _, mode := range actions.Modes {
			m.decisions.WithLabelValues(a, mode)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.dlq, m.decisions, m.scoringSecs, m.failures, m.rescored, m.timers, m.timersDropped, m.unreadable, m.unusableScores, m.openByWH, m.atRisk, m.stays, m.outcomes, m.unjudged, m.outcomeRisk, m.shadowOutcomes, m.classOutcomes, m.governanceSkipped, m.pointsSkipped, m.superseded} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
		if err := m.sources.register(reg); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// countOrder adds delta to the per-warehouse gauges the order state g counts in.
func (m *metrics) countOrder(g gaugeState, delta float64) {
	if g.Warehouse == "" {
		return
	}
	wh := m.warehouses.label(g.Warehouse)
	if g.Open {
		m.openByWH.WithLabelValues(wh).Add(delta)
	}
	if g.AtRisk {
		m.atRisk.WithLabelValues(wh).Add(delta)
	}
}

func typeLabel(t string) string {
	if features.KnownType(t) {
		return t
	}
	return "unknown"
}
