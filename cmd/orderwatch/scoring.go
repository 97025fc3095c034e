package main

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
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
		Open: models.OpenOptions{
			SpecVersion: features.SpecVersion, FeatureNames: features.Names[:],
			LoadTokenizer: func(path string) (models.Tokenizer, error) { return features.LoadTokenizer(path) },
		},
	})
}

// registryScorer scores each pipeline batch with the models live when the batch
// starts: cutoff_risk (required), exception_class and a shadow cutoff_risk when
// they serve.
type registryScorer struct {
	r      *models.Registry
	shadow []float32
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
	if c := set.Model(modelClass); c != nil && c.OutputWidth() == len(features.ExceptionClasses) {
		n := len(risk)
		if err := c.ScoreTexts(rows, texts, classes[:n*c.OutputWidth()]); err == nil {
			cr := ref(c)
			sc.ClassModel, sc.ClassLabels = &cr, c.Bundle().Labels
		}
	}
	if sh := set.Shadow(modelRisk); sh != nil {
		s.shadow = append(s.shadow[:0], risk...)
		if err := sh.ScoreTexts(rows, texts, s.shadow); err == nil {
			sc.ShadowRisk, sc.Shadow = s.shadow, ref(sh)
		}
	}
	return sc, nil
}
