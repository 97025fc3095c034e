package models

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// DistributionTolerance is how far from 1 the sum of a row of class
// probabilities may be.
const DistributionTolerance = 1e-3

// ValidScore reports whether v is a usable score: a probability, finite and
// within [0, 1].
func ValidScore(v float32) bool { return v >= 0 && v <= 1 } // false for NaN

// ValidDistribution reports whether p is a usable row of class probabilities:
// each a probability and all summing to 1 within DistributionTolerance.
func ValidDistribution(p []float32) bool {
	var sum float64
	for _, v := range p {
		if !ValidScore(v) {
			return false
		}
		sum += float64(v)
	}
	return math.Abs(sum-1) <= DistributionTolerance
}

// BadOutputPolicy says when a serving version is taken out of service for
// unusable outputs: when Limit of the rows it scored are bad within a window of
// Window consecutive rows (the window restarts every Window rows).
type BadOutputPolicy struct {
	Limit, Window int
}

// DefaultBadOutputs takes a version out of service at 64 bad rows within 1024
// (one full batch): above about 6 % bad rows, a version never completes a
// window; below, its bad rows are only left out (and counted).
var DefaultBadOutputs = BadOutputPolicy{Limit: 64, Window: 1024}

// outputHealth counts one served version's rows in the current window.
type outputHealth struct {
	mu        sync.Mutex
	rows, bad int
	out       bool // taken out of service already
}

// observe adds a batch of rows, bad of them unusable, and reports whether the
// version just crossed the policy's limit.
func (h *outputHealth) observe(p BadOutputPolicy, rows, bad int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.out {
		return false
	}
	h.rows += rows
	h.bad += bad
	if h.bad >= p.Limit {
		h.out = true
		return true
	}
	if h.rows >= p.Window {
		h.rows, h.bad = 0, 0
	}
	return false
}

// Report tells the registry that m, one of the set's models, scored rows rows
// of which bad had an unusable output that the caller left out (see ValidScore
// and ValidDistribution). The bad rows are counted in
// orderwatch_model_bad_outputs_total; a version that reaches the registry's
// BadOutputPolicy is taken out of service like a rejected one: it is recorded
// as rejected for bad_outputs (not tried again until its files change), the
// next scan serves the version below it, and the batches holding it finish on
// it. Report is cheap and safe for concurrent use; it does not block on a scan.
func (s *Set) Report(m *Model, rows, bad int) {
	if s.r == nil || m == nil {
		return
	}
	var sv *served
	for _, h := range s.held {
		if h.m == m {
			sv = h
		}
	}
	if sv == nil {
		return
	}
	if bad > 0 {
		s.r.badOutputs.WithLabelValues(m.Name(), m.Version(), m.Role()).Add(float64(bad))
	}
	if sv.health.observe(s.r.opts.BadOutputs, rows, bad) {
		s.r.takeOut(sv)
	}
}

// takeOut takes sv out of service for bad outputs and asks Run for a scan.
func (r *Registry) takeOut(sv *served) {
	m := sv.m
	name, v, role := m.Name(), m.Version(), m.Role()
	s, ok := r.slots[name]
	if !ok {
		return
	}
	p := r.opts.BadOutputs
	err := fmt.Errorf("%w: %d or more of %d consecutive rows were not finite or not probabilities", ErrBadOutputs, p.Limit, p.Window)
	r.mu.Lock()
	s.tried[v] = attempt{fingerprint: sv.fingerprint, err: err, role: role, at: time.Now()}
	var removed bool
	if role == RoleShadow {
		var rest *shadowList
		if rest, removed = s.shadows.Load().without(sv); removed {
			s.shadows.Store(rest)
		}
	} else {
		removed = s.active.CompareAndSwap(sv, nil)
	}
	r.mu.Unlock()
	r.rejections.WithLabelValues(name, RejectBadOutputs).Inc()
	if !removed {
		// Replaced meanwhile (a batch still held it): it is refused from now
		// on, but it was not serving.
		r.log.Error("model version refused after it left service: too many unusable outputs", "model", name, "version", v, "role", role, "reason", RejectBadOutputs, "err", err)
	} else {
		r.log.Error("model version taken out of service: too many unusable outputs", "model", name, "version", v, "role", role, "reason", RejectBadOutputs, "err", err)
	}
	if removed {
		r.info.DeleteLabelValues(name, v, role, m.SHA256())
		go retire(sv)
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}
