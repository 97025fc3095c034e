package process

import (
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// evalHorizon: a model is judged on its last score at least this long before the
// cutoff, when there was still time to act, or on its first score for an order
// created within the horizon, which had no earlier one (judgeable).
const evalHorizon = 2 * time.Hour

// judgeable reports whether a score of s at moment may be the one its order is
// judged on, given whether the order has one already: a score before the
// cutoff, at least evalHorizon before it (the latest such wins), or else the
// first score of an order created within the horizon. An order created
// earlier that is first scored within the horizon was seen late (a backlog, a
// late feed): its first score, made with the rest of its history still on the
// way, is no prediction the model had the time to make, and it is not judged.
func judgeable(s *features.OrderState, moment time.Time, has bool) bool {
	if s.ShipCutoff.IsZero() || !moment.Before(s.ShipCutoff) {
		return false
	}
	horizon := s.ShipCutoff.Add(-evalHorizon)
	if !moment.After(horizon) {
		return true
	}
	return !has && s.CreatedAt.After(horizon)
}

type evalScore struct {
	Model     string  `json:"model"`   // name
	Version   string  `json:"version"` // of the risk model
	Risk      float32 `json:"risk"`
	Threshold float64 `json:"threshold"`
	Class     string  `json:"class,omitempty"` // most likely exception class
	ClassVer  string  `json:"class_version,omitempty"`
	// Shadows are the shadow versions' scores of the same moment, each judged
	// at its own threshold when the outcome is known.
	Shadows []evalShadow `json:"shadows,omitempty"`
}

// evalShadow is one shadow version's score in an eval; the model is the eval's.
type evalShadow struct {
	Version   string  `json:"version"`
	Risk      float32 `json:"risk"`
	Threshold float64 `json:"threshold"`
}

// Roles of the role label of orderwatch_model_outcomes_total and
// orderwatch_model_outcome_risk: the version that acted, or a shadow.
const (
	roleLive   = "live"
	roleShadow = "shadow"
)

// atRiskDefault is the risk at or above which an order counts as at risk when its
// model gave no threshold (the rules fallback).
const atRiskDefault = 0.5

func (e *evalScore) threshold() float64 {
	if e == nil || e.Threshold == 0 {
		return atRiskDefault
	}
	return e.Threshold
}

// outcome is one order's known outcome joined to its evaluated prediction.
type outcome struct {
	eval     evalScore
	missed   bool
	class    string
	unjudged bool // no score to judge: eval is empty
}

type gaugeState struct {
	Warehouse string `json:"warehouse,omitempty"`
	Open      bool   `json:"open,omitempty"`
	AtRisk    bool   `json:"at_risk,omitempty"`
}

// gaugeDelta moves one order between the per-warehouse counts.
type gaugeDelta struct{ from, to gaugeState }

// milestoneStay is how long an order sat at a milestone before it moved on.
type milestoneStay struct {
	milestone string
	d         time.Duration
}

// countOutcome records the order's cutoff outcome in its customer's history once
// it is known, and joins it to the order's evaluated prediction.
func (p *Processor) countOutcome(rec *orderRecord, moment time.Time) {
	s := &rec.State
	if s.MissCounted {
		return
	}
	p.ctx.CountOutcome(s, moment)
	if !s.MissCounted {
		return
	}
	if rec.Eval == nil {
		p.outcomes = append(p.outcomes, outcome{unjudged: true})
		return
	}
	missed := s.ShippedAt.IsZero() || s.ShippedAt.After(s.ShipCutoff)
	p.outcomes = append(p.outcomes, outcome{eval: *rec.Eval, missed: missed, class: outcomeClass(s, missed)})
}

// outcomeClass names the exception class an order's outcome shows, for the
// live join and the labels of replay (OutcomeOf) alike: the one its events
// show (features.OrderState.SeenException), and for a miss none of them
// explains, the warehouse's: warehouse_capacity, as the simulator's labels
// name it.
func outcomeClass(s *features.OrderState, missed bool) string {
	c := s.SeenException()
	if missed && c == features.ExceptionNone {
		return features.ExceptionWarehouseCapacity
	}
	return c
}

// observe counts a committed batch in the metrics.
func (p *Processor) observe(st *batchState) {
	for i := range st.items {
		it := &st.items[i]
		if m := it.msg.Mode; m == ModeFollow || m == ModeRebuild {
			continue // counted where the message is owned, live
		}
		p.m.events.WithLabelValues(typeLabel(it.ev.Type), it.result).Inc()
		if it.result == resultDeadLetter {
			p.m.dlq.WithLabelValues(it.reason).Inc()
		}
	}
	p.m.sources.observe(st.items, p.opts.Clock())
	for i := range st.decs {
		p.m.decisions.WithLabelValues(st.decs[i].Action, st.decs[i].Mode).Inc()
	}
	p.m.rescored.Add(float64(countTimers(st.rows)))
	p.m.pointsSkipped.Add(float64(st.pointsSkipped))
	p.m.superseded.Add(float64(st.nSuperseded))
	for _, g := range st.gauges {
		p.m.countOrder(g.from, -1)
		p.m.countOrder(g.to, 1)
	}
	for _, stay := range st.stays {
		p.m.stays.WithLabelValues(stay.milestone).Observe(stay.d.Seconds())
	}
	for _, o := range st.outcomes {
		if o.unjudged {
			p.m.unjudged.Inc()
			continue
		}
		actual := "met"
		if o.missed {
			actual = "missed"
		}
		live := p.m.judge(o.eval.Model, o.eval.Version, roleLive, o.eval.Risk, o.eval.Threshold, actual)
		for _, sh := range o.eval.Shadows {
			pred := p.m.judge(o.eval.Model, sh.Version, roleShadow, sh.Risk, sh.Threshold, actual)
			p.m.shadowOutcomes.WithLabelValues(o.eval.Model, sh.Version, o.eval.Version, pred, live, actual).Inc()
		}
		if o.eval.Class != "" {
			p.m.classOutcomes.WithLabelValues("exception_class", o.eval.ClassVer, o.eval.Class, o.class).Inc()
		}
	}
	p.m.timers.Set(float64(p.dues.len()))
}

// judge counts one version's prediction against an order's outcome and
// returns the prediction: flagged or not_flagged.
func (m *metrics) judge(model, version, role string, risk float32, threshold float64, actual string) string {
	predicted := "not_flagged"
	if float64(risk) >= threshold {
		predicted = "flagged"
	}
	m.outcomes.WithLabelValues(model, version, role, predicted, actual).Inc()
	m.outcomeRisk.WithLabelValues(model, version, role, actual).Observe(float64(risk))
	return predicted
}

func countTimers(rows []Row) int {
	n := 0
	for i := range rows {
		if rows[i].Trigger == TriggerTimer {
			n++
		}
	}
	return n
}
