package process

import (
	"slices"

	"github.com/orderwatch/orderwatch/features"
)

// maxReasons is how many drivers a decision names.
const maxReasons = 3

// reasons names, for every row that decided something, the top drivers of its
// risk, measured on the model itself: the features whose move to a reference
// value lowers the score most. All those rows are explained in one model run.
// A row without decisions gets nil.
func (p *Processor) reasons(sc scored) map[int][]string {
	p.explain = p.explain[:0]
	for j, i := range p.decRows {
		if j == 0 || p.decRows[j-1] != i {
			p.explain = append(p.explain, i)
		}
	}
	if len(p.explain) == 0 {
		return nil
	}
	nf := features.NumFeatures
	n := len(p.explain)
	p.deltas = slices.Grow(p.deltas[:0], n*nf)[:n*nf]
	p.exFlat = slices.Grow(p.exFlat[:0], n*nf)[:n*nf]
	p.exTexts = p.exTexts[:0]
	for k, i := range p.explain {
		copy(p.exFlat[k*nf:], p.flat[i*nf:(i+1)*nf])
		p.exTexts = append(p.exTexts, p.rows[i].Texts)
	}
	if sc.degraded || sc.Explain == nil {
		for k, i := range p.explain {
			explainFallback(&p.rows[i].Vector, p.deltas[k*nf:(k+1)*nf])
		}
	} else if err := sc.Explain(p.exFlat, p.exTexts, p.deltas); err != nil {
		p.log.Warn("reason codes not computed", "err", err)
		return nil
	} else {
		// A row the model could not score was scored by the rules: so are its reasons.
		for k, i := range p.explain {
			if sc.rowDegraded(i) {
				explainFallback(&p.rows[i].Vector, p.deltas[k*nf:(k+1)*nf])
			}
		}
	}
	out := make(map[int][]string, n)
	for k, i := range p.explain {
		out[i] = topReasons(p.deltas[k*nf:(k+1)*nf], &p.rows[i].Vector, &p.rowRecs[i].State)
	}
	return out
}

// explainFallback fills deltas with how much the rules fallback's risk drops when
// each feature of v moves to zero: the fallback is a rule, explained one feature
// at a time.
func explainFallback(v *features.Vector, deltas []float32) {
	base := features.FallbackRisk(v)
	for j := range deltas {
		w := *v
		w[j] = 0
		deltas[j] = base - features.FallbackRisk(&w)
	}
}

// topReasons names the features with the largest deltas, in words, without
// repeating a phrase.
func topReasons(deltas []float32, v *features.Vector, state *features.OrderState) []string {
	var out []string
	for len(out) < maxReasons {
		best, at := float32(0.01), -1
		for j, d := range deltas {
			if d > best {
				best, at = d, j
			}
		}
		if at < 0 {
			break
		}
		deltas[at] = 0
		if w := features.Describe(at, v, state); !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}
