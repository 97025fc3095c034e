package process

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// decide runs the policy over the scored rows in order and writes orders,
// decisions, outbox entries, timers, context and the watermark into the batch.
// It reports whether commands were queued.
func (p *Processor) decide(batch *store.Batch) (bool, error) {
	sc := p.sc
	defer p.release()
	// One policy for the whole batch, even when a reload lands meanwhile.
	policy := p.opts.Policy.Policy()
	shadowKeys := p.shadowKeys(&sc)

	var queued bool
	// One map of class probabilities for the batch's rows, cleared for each:
	// Decide reads in.Classes and keeps none of it (a decision copies the
	// scores it records).
	var classProbs map[string]float64
	for i := range p.rows {
		row, rec := &p.rows[i], p.rowRecs[i]
		row.Risk = p.risks[i]
		risk := float64(row.Risk)
		degraded, model := sc.degraded, &sc.Risk
		if !degraded && sc.rowDegraded(i) {
			degraded, model = true, &actions.ModelRef{Name: fallbackModel, Version: features.SpecVersion}
		}
		if p.superseded[i] {
			// A later row of the order in the batch decides (pickRows): this
			// one is scored for the export or the order's eval only.
			if !degraded && judgeable(&rec.State, row.Moment, rec.Eval != nil) {
				p.judgeRow(rec, &sc, i, row.Moment, topClassOf(&sc, p.classes, i))
			}
			continue
		}
		if rec.Risk == nil {
			rec.Risk = new(float64)
		}
		*rec.Risk = risk // the record owns its Risk: no allocation per scoring
		rec.ScoredAt, rec.Model, rec.Degraded = row.Moment, model, degraded
		if rec.Policy == nil {
			rec.Policy = actions.Memory{}
		}
		trigger := row.EventID
		if row.Trigger == TriggerTimer {
			trigger = "timer"
		}
		if rec.LastPoint == nil {
			rec.LastPoint = &actions.ScoreMark{}
		}
		in := &actions.Input{
			OrderID: row.OrderID, At: row.Moment, TriggerEvent: trigger, TriggerType: row.Trigger,
			Risk: risk, Degraded: degraded, Model: *model, Features: &row.Vector, State: &rec.State,
			Last: rec.LastPoint,
		}
		top := ""
		if sc.ClassModel != nil && usableClasses(p.classes[i*len(sc.ClassLabels):(i+1)*len(sc.ClassLabels)]) {
			if classProbs == nil {
				classProbs = make(map[string]float64, len(sc.ClassLabels))
			}
			clear(classProbs)
			in.Classes, in.ClassModel = classProbs, *sc.ClassModel
			best := float32(-1)
			for j, label := range sc.ClassLabels {
				pr := p.classes[i*len(sc.ClassLabels)+j]
				in.Classes[label] = float64(pr)
				if pr > best {
					best, top = pr, label
				}
			}
		}
		for j := range sc.Shadows {
			if r := sc.Shadows[j].Risk[i]; usableRisk(r) {
				if in.Shadow == nil {
					in.Shadow = make(map[string]float64, len(sc.Shadows))
				}
				in.Shadow[shadowKeys[j]] = float64(r)
			}
		}
		if !degraded {
			p.judgeRow(rec, &sc, i, row.Moment, top)
		}
		first := len(p.decs)
		in.Context = p.ctx // reroutes weigh the alternative warehouses' load
		sig, last := memorySig(rec.Policy), *rec.LastPoint
		var err error
		if p.decs, err = policy.Decide(batch, in, rec.Policy, p.decs); err != nil {
			return false, err
		}
		if *rec.LastPoint == last {
			p.pointsSkipped++ // no point written: Decide moves the mark when it writes one
		}
		if p.opts.Replicated && (len(p.decs) > first || memorySig(rec.Policy) != sig) {
			if err := p.markGovernance(batch, row.OrderID); err != nil {
				return false, err
			}
		}
		for range len(p.decs) - first {
			p.decRows = append(p.decRows, i)
		}
	}
	// Reasons for every row that decided something, in one model run; then the
	// decisions are recorded in order (governance read and wrote its limits and
	// cooldowns as each was decided).
	reasons := p.reasons(sc)
	for j := range p.decs {
		p.decs[j].Reasons = reasons[p.decRows[j]]
		// Live, a wait for a person starts when people can see it: on the clock,
		// also for a decision made on history being caught up on.
		since := p.decs[j].At
		if !p.opts.EventTime {
			since = later(since, p.opts.Clock())
		}
		if err := policy.RecordSince(batch, &p.decs[j], since); err != nil {
			return false, err
		}
		queued = queued || p.decs[j].Queued()
	}
	for _, rec := range p.touched {
		if err := p.writeOrder(batch, rec); err != nil {
			return false, err
		}
	}
	p.dirty = p.ctx.Dirty(p.dirty[:0])
	for _, k := range p.dirty {
		v, err := json.Marshal(p.ctx.Entry(k))
		if err != nil {
			return false, fmt.Errorf("encode %s %s: %w", k.Kind, k.ID, err)
		}
		if err := batch.PutContext(k.Kind, k.ID, v); err != nil {
			return false, err
		}
	}
	if !p.watermark.IsZero() {
		wm, _ := p.watermark.MarshalText()
		if err := batch.PutMeta("watermark", wm); err != nil {
			return false, err
		}
	}
	return queued, nil
}

// judgeRow makes row i, scored by a model at moment with top its most likely
// class, the order's eval when its outcome is to be judged on it (judgeable).
func (p *Processor) judgeRow(rec *orderRecord, sc *scored, i int, moment time.Time, top string) {
	if !judgeable(&rec.State, moment, rec.Eval != nil) {
		return
	}
	// In place: the record owns its eval (an outcome copies it), and a new
	// one per judged scoring was an allocation. Its shadows are new each
	// time, as an outcome's copy shares them.
	if rec.Eval == nil {
		rec.Eval = new(evalScore)
	}
	*rec.Eval = evalScore{Model: sc.Risk.Name, Version: sc.Risk.Version, Risk: p.risks[i], Threshold: sc.Threshold, Class: top}
	if sc.ClassModel != nil {
		rec.Eval.ClassVer = sc.ClassModel.Version
	}
	for j := range sc.Shadows {
		sh := &sc.Shadows[j]
		if r := sh.Risk[i]; usableRisk(r) {
			if rec.Eval.Shadows == nil {
				rec.Eval.Shadows = make([]evalShadow, 0, len(sc.Shadows))
			}
			rec.Eval.Shadows = append(rec.Eval.Shadows, evalShadow{Version: sh.Ref.Version, Risk: r, Threshold: sh.Threshold})
		}
	}
}

// topClassOf returns the most likely class of row i as decide names it (the
// first label of the greatest probability), or "" when no class model served
// or its probabilities are unusable.
func topClassOf(sc *scored, classes []float32, i int) string {
	if sc.ClassModel == nil {
		return ""
	}
	n := len(sc.ClassLabels)
	probs := classes[i*n : (i+1)*n]
	if !usableClasses(probs) {
		return ""
	}
	top, best := "", float32(-1)
	for j, pr := range probs {
		if pr > best {
			best, top = pr, sc.ClassLabels[j]
		}
	}
	return top
}

// writeOrder stores an order record with its open-order count; the record
// holds its rescoring time (NextDue), which the index is loaded from. Open
// orders are kept; closed and orphan ones expire after the retention, unless
// their record carries deadline watches (recordTTL).
func (p *Processor) writeOrder(batch *store.Batch, rec *orderRecord) error {
	open := rec.State.Open()
	switch {
	case open && !rec.wasOpen:
		batch.Add(p.countersOf(p.opts.PartitionOf(rec.id)).open, 1)
	case !open && rec.wasOpen:
		batch.Add(p.countersOf(p.opts.PartitionOf(rec.id)).open, -1)
		if p.opts.Replicated && len(rec.Policy) > 0 {
			// Closed: its governance leaves the group's state bucket unless
			// decisions of it are still in flight.
			if err := p.markGovernance(batch, rec.State.OrderID); err != nil {
				return err
			}
		}
	}
	if !open {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
	s := &rec.State
	rec.Flags = flagsOf(s)
	g := gaugeState{Warehouse: s.Warehouse, Open: open}
	if open && rec.Risk != nil {
		threshold := rec.Eval.threshold()
		g.AtRisk = *rec.Risk >= threshold
	}
	if g != rec.Gauge {
		p.gauges = append(p.gauges, gaugeDelta{rec.Gauge, g})
		rec.Gauge = g
	}
	if p.opts.OpenOrders != nil {
		p.opens = append(p.opens, openUpdate{row: openRowOf(rec), open: open})
	}
	// The batch holds the value until it commits: each record gets its own part
	// of the arena, which the next batch reuses.
	start := len(p.arena)
	arena, err := encodeRecord(p.arena, rec)
	if err != nil {
		return fmt.Errorf("encode order record %s: %w", rec.State.OrderID, err)
	}
	p.arena = arena
	raw := p.arena[start:len(p.arena):len(p.arena)]
	return batch.PutOrder(rec.State.OrderID, raw, p.recordTTL(rec, open))
}

// memorySig sums a memory's episodes and active rules so that a change of it
// by one Decide changes the sum: a rule that starts an episode adds 3 (and
// decides), one that stops holding takes 1.
func memorySig(m actions.Memory) int {
	n := 0
	for _, r := range m {
		n += 2 * r.Episode
		if r.Active {
			n++
		}
	}
	return n
}

// markGovernance marks in the batch that an order's governance changed.
func (p *Processor) markGovernance(batch *store.Batch, order string) error {
	p.govNonce++
	p.govOrders = append(p.govOrders, order)
	return batch.MarkGovernance(order, p.govNonce)
}

// usableClasses reports whether a row's class probabilities are probabilities;
// a row whose are not is decided without them.
func usableClasses(probs []float32) bool {
	for _, pr := range probs {
		if !usableRisk(pr) {
			return false
		}
	}
	return true
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
