package main

import (
	"errors"
	"log/slog"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
)

// The models orderwatch serves.
const (
	modelRisk  = "cutoff_risk"
	modelClass = "exception_class"
)

// newRegistry seeds the models dir with the shipped bundles and serves the live
// version of each model from it.
func newRegistry(dir string, log *slog.Logger, reg prometheus.Registerer) (*models.Registry, error) {
	if err := models.InitRuntime(""); err != nil {
		return nil, err
	}
	if err := models.SeedDir(dir); err != nil {
		return nil, err
	}
	return models.NewRegistry(models.RegistryOptions{
		Dir: dir, Names: []string{modelRisk, modelClass}, Logger: log, Registerer: reg,
		Open: openOptions(),
	})
}

// registryScorer scores each pipeline batch with the models live when the batch
// starts: cutoff_risk (required), exception_class and each shadow cutoff_risk
// when they serve. Every output is checked (models.ValidScore, ValidDistribution)
// and its bad rows reported to the registry, which takes a version that keeps
// producing them out of service:
//   - a risk row that is not a probability falls back to the rules for that row
//     (Scored.RowDegraded: the decision says degraded, model rules_fallback);
//   - a shadow row that is not a probability is dropped (NaN in its
//     ShadowScores.Risk); a shadow that fails is left out of the batch;
//   - a class model with any bad row is not used for the batch (no per-row
//     class model exists in a decision), its good rows counted as scored.
//
// Score is called by one pipeline at a time: the buffers are reused.
type registryScorer struct {
	r        *models.Registry
	shadow   [models.MaxShadows][]float32 // each shadow's scores
	shadows  []process.ShadowScores
	degraded []bool
}

var errNoRiskModel = errors.New("no valid cutoff_risk model is serving")

func ref(m *models.Model) actions.ModelRef {
	return actions.ModelRef{Name: m.Name(), Version: m.Version(), SHA256: m.SHA256()}
}

func (s *registryScorer) Score(rows []float32, texts [][]string, risk, classes []float32) (pipeline.Scored, error) {
	set := s.r.Acquire()
	m := set.Model(modelRisk)
	if m == nil {
		set.Release()
		return pipeline.Scored{}, errNoRiskModel
	}
	if err := m.ScoreTexts(rows, texts, risk); err != nil {
		set.Release()
		return pipeline.Scored{}, err
	}
	sc := pipeline.Scored{Risk: ref(m), Threshold: m.Threshold(), Explain: m.ExplainRows, Release: set.Release}
	n := len(risk)
	sc.RowDegraded = s.checkRisk(rows, risk)
	set.Report(m, n, count(sc.RowDegraded))
	if c := set.Model(modelClass); c != nil && c.OutputWidth() == len(features.ExceptionClasses) {
		w := c.OutputWidth()
		if err := c.ScoreTexts(rows, texts, classes[:n*w]); err == nil {
			var bad int
			for i := range n {
				if !models.ValidDistribution(classes[i*w : (i+1)*w]) {
					bad++
				}
			}
			set.Report(c, n, bad)
			if bad == 0 {
				cr := ref(c)
				sc.ClassModel, sc.ClassLabels = &cr, c.Bundle().Labels
			}
		}
	}
	s.shadows = s.shadows[:0]
	for j, sh := range set.Shadows(modelRisk) {
		if j == len(s.shadow) {
			break
		}
		out := slices.Grow(s.shadow[j][:0], n)[:n]
		s.shadow[j] = out
		if err := sh.ScoreTexts(rows, texts, out); err != nil {
			continue
		}
		var bad int
		for i, v := range out {
			if !models.ValidScore(v) {
				out[i] = float32(math.NaN()) // left out of the decision
				bad++
			}
		}
		set.Report(sh, n, bad)
		s.shadows = append(s.shadows, process.ShadowScores{Ref: ref(sh), Threshold: sh.Threshold(), Risk: out})
	}
	if len(s.shadows) > 0 {
		sc.Shadows = s.shadows
	}
	return sc, nil
}

// checkRisk replaces each risk that is not a probability by the rules
// fallback's risk for its row and returns the rows replaced, or nil when none
// was.
func (s *registryScorer) checkRisk(rows, risk []float32) []bool {
	var degraded []bool
	for i, v := range risk {
		if models.ValidScore(v) {
			continue
		}
		if degraded == nil {
			s.degraded = slices.Grow(s.degraded[:0], len(risk))[:len(risk)]
			clear(s.degraded)
			degraded = s.degraded
		}
		degraded[i] = true
		risk[i] = features.FallbackRisk((*features.Vector)(rows[i*features.NumFeatures : (i+1)*features.NumFeatures]))
	}
	return degraded
}

// count returns the number of true values in b.
func count(b []bool) int {
	var n int
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
