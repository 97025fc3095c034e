package process

import (
	"slices"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
)

// Scorer scores a batch of rows in one call per model. rows holds one feature
// vector after the other (features.NumFeatures values each, spec
// features.SpecVersion), texts[i] the texts of row i; risk[i] receives the
// probability that order i misses its cutoff and classes the exception class
// probabilities, len(features.ExceptionClasses) per row, when a class model serves.
// The returned Scored holds the models until its Release is called.
type Scorer interface {
	Score(rows []float32, texts [][]string, risk, classes []float32) (Scored, error)
}

// Scored says what scored a batch.
type Scored struct {
	Risk actions.ModelRef
	// Threshold is the risk model's act threshold, for live quality metrics.
	Threshold float64
	// ClassModel is set when classes were filled; ClassLabels name their columns.
	ClassModel  *actions.ModelRef
	ClassLabels []string
	// RowDegraded, when not nil, marks the rows (one entry per row) whose risk
	// model output was unusable (not finite, out of [0,1]): the scorer put the
	// rules fallback's risk in their place, and their decisions say degraded.
	RowDegraded []bool
	// Shadows holds the scores of each shadow risk model serving, the
	// greatest version first; none without one.
	Shadows []ShadowScores
	// Explain fills deltas (one per feature and row) for rows (laid out as in
	// Score) with the same risk model, in one run.
	Explain func(rows []float32, texts [][]string, deltas []float32) error
	// Release lets the models go; it must be called once.
	Release func()
}

// ShadowScores is one shadow risk model's scores of a batch: recorded in each
// row's score point and judged when the order's outcome is known, never acted on.
type ShadowScores struct {
	Ref actions.ModelRef
	// Threshold is the shadow's act threshold: its live quality is judged at it.
	Threshold float64
	// Risk holds one score per row. A NaN entry is a row the shadow could not
	// score: it is left out.
	Risk []float32
}

// scoreRows scores the batch's rows that pickRows keeps in one call per
// model; the models are held until decide.
func (p *Processor) scoreRows() {
	p.pickRows()
	n := len(p.rows)
	nf, nc := features.NumFeatures, len(features.ExceptionClasses)
	p.flat = slices.Grow(p.flat[:0], n*nf)[:n*nf]
	p.risks = slices.Grow(p.risks[:0], n)[:n]
	p.classes = slices.Grow(p.classes[:0], n*nc)[:n*nc]
	p.texts = p.texts[:0]
	for i := range p.rows {
		copy(p.flat[i*nf:], p.rows[i].Vector[:])
		p.texts = append(p.texts, p.rows[i].Texts)
	}
	p.sc = p.score()
}

// shadowKeys returns the "name@version" of each shadow of sc, the keys of a
// decision's and a score point's shadow scores; the strings of the previous
// batch are reused while the same versions serve.
func (p *Processor) shadowKeys(sc *scored) []string {
	p.shadowRefs = slices.Grow(p.shadowRefs, len(sc.Shadows))[:len(sc.Shadows)]
	p.shadowNames = slices.Grow(p.shadowNames, len(sc.Shadows))[:len(sc.Shadows)]
	for j := range sc.Shadows {
		if ref := sc.Shadows[j].Ref; p.shadowRefs[j] != ref || p.shadowNames[j] == "" {
			p.shadowRefs[j], p.shadowNames[j] = ref, ref.Name+"@"+ref.Version
		}
	}
	return p.shadowNames
}

// release lets the models that scored the batch go.
func (p *Processor) release() {
	if p.sc.Release != nil {
		p.sc.Release()
	}
	p.sc = scored{}
}

// scored is Scored with whether the rules fallback stood in for the model, for
// the whole batch or (fallback) for some rows.
type scored struct {
	Scored
	degraded bool
	fallback []bool // per row: the scorer marked it degraded, or its risk was unusable
}

// fallbackModel names the rules fallback where a model is recorded.
const fallbackModel = "rules_fallback"

// rowDegraded reports whether row i was scored by the rules fallback alone.
func (sc *scored) rowDegraded(i int) bool {
	return sc.degraded || (i < len(sc.fallback) && sc.fallback[i])
}

// usableRisk reports whether a model's risk is a probability.
func usableRisk(r float32) bool { return r >= 0 && r <= 1 } // false for NaN

// score fills p.risks (and p.classes when a class model serves) with the models, or
// p.risks with the rules fallback when there is no risk model or it fails.
func (p *Processor) score() scored {
	noop := func() {}
	if len(p.rows) == 0 {
		return scored{Scored: Scored{Release: noop}}
	}
	if s := p.opts.Scorer; s != nil {
		start := time.Now()
		sc, err := s.Score(p.flat, p.texts, p.risks, p.classes)
		if err == nil {
			p.m.scoringSecs.Observe(time.Since(start).Seconds())
			if sc.Release == nil {
				sc.Release = noop
			}
			return p.checkRows(sc)
		}
		p.m.failures.WithLabelValues(stageScore).Inc()
		p.log.Error("model scoring failed, using the rules fallback for this batch", "err", err)
	}
	for i := range p.rows {
		p.risks[i] = features.FallbackRisk(&p.rows[i].Vector)
	}
	return scored{Scored: Scored{Risk: actions.ModelRef{Name: fallbackModel, Version: features.SpecVersion}, Release: noop}, degraded: true}
}

// checkRows takes the scores of a model: a row the scorer marked degraded, or
// whose risk is not a probability (NaN, infinite, out of [0,1]) though it was
// not marked, is scored by the rules fallback and decided degraded.
func (p *Processor) checkRows(res Scored) scored {
	sc := scored{Scored: res}
	p.fallback = p.fallback[:0]
	for i := range p.rows {
		bad := i < len(res.RowDegraded) && res.RowDegraded[i]
		if !bad && !usableRisk(p.risks[i]) {
			bad = true
			p.risks[i] = features.FallbackRisk(&p.rows[i].Vector)
			p.m.unusableScores.Inc()
		}
		p.fallback = append(p.fallback, bad)
	}
	sc.fallback = p.fallback
	return sc
}

// rowSpan is where an order's rows are in the batch being staged, for
// pickRows: its first and latest row, and the row its eval would be taken
// from (-1 for none) with whether it has one by then.
type rowSpan struct {
	first, latest, eval int
	hasEval             bool
}

// pickRows decides on the latest state (issue 20): of the rows of an order in
// the batch, only the latest is decided; the earlier ones are superseded. A
// superseded row is scored only when replay exports every row
// (Options.OnRow: one row per event, whatever the batching) or when it is the
// one the order's outcome will be judged on (its eval: the last score at
// least evalHorizon before the cutoff, which a batch that straddles that
// moment holds before the order's latest row); the other superseded rows
// leave the batch, unscored. The eval is picked as decide picks it, row
// after row, on the state the batch leaves (a row the scorer then marks
// degraded gives no eval).
func (p *Processor) pickRows() {
	p.superseded = slices.Grow(p.superseded[:0], len(p.rows))[:len(p.rows)]
	clear(p.superseded)
	if len(p.rows) < 2 {
		return
	}
	for i := len(p.rows) - 1; i >= 0; i-- {
		p.rowRecs[i].rows.first = i
	}
	for i := range p.rows {
		rec := p.rowRecs[i]
		rec.rows.latest = i
		if i == rec.rows.first {
			rec.rows.eval, rec.rows.hasEval = -1, rec.Eval != nil
		}
		if judgeable(&rec.State, p.rows[i].Moment, rec.rows.hasEval) {
			rec.rows.eval, rec.rows.hasEval = i, true
		}
	}
	keepAll := p.opts.OnRow != nil
	n := 0
	for i := range p.rows {
		rec := p.rowRecs[i]
		superseded := rec.rows.latest != i
		if superseded {
			p.nSuperseded++
			if !keepAll && rec.rows.eval != i {
				continue
			}
		}
		p.rows[n], p.rowRecs[n], p.superseded[n] = p.rows[i], rec, superseded
		n++
	}
	clear(p.rows[n:]) // let the texts of the rows left out go
	clear(p.rowRecs[n:])
	p.rows, p.rowRecs, p.superseded = p.rows[:n], p.rowRecs[:n], p.superseded[:n]
}
