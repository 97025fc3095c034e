package api

import (
	"cmp"
	"fmt"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/orderwatch/orderwatch/auth"
)

// modelServed is a served version in GET /api/v1/models.
type modelServed struct {
	Version   string         `json:"version"`
	SHA256    string         `json:"sha256"`
	Threshold float64        `json:"threshold"`
	Metrics   map[string]any `json:"metrics"`
}

// modelStatus is a model in GET /api/v1/models.
type modelStatus struct {
	Name     string        `json:"name"`
	Live     *modelServed  `json:"live"`
	Shadows  []modelServed `json:"shadows"` // the greatest first
	Pinned   string        `json:"pinned"`
	Versions []struct {
		Version string    `json:"version"`
		Role    string    `json:"role"`
		State   string    `json:"state"`
		Reason  string    `json:"reason"`
		Error   string    `json:"error"`
		Note    string    `json:"note"`
		At      time.Time `json:"checked_at"`
	} `json:"versions"`
}

// modelRow is a row of the models page: one version of a model.
type modelRow struct {
	Model, Version, State, Role, Reason, Error string
	Pinned                                     bool
	CheckedAt                                  time.Time
	Served                                     *modelServed // its card, when it is live or shadow
	Quality                                    string
}

// modelsPage serves GET /models: every version of every model (serving,
// shadow, standby, rejected) from GET /api/v1/models, with the served ones'
// cards and each version's live quality from orderwatch_model_outcomes_total.
func (s *server) modelsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var ms []modelStatus
	if err := s.consoleAPI(r, http.MethodGet, "/api/v1/models", nil, &ms); err != nil {
		s.apiFailed(w, p, err)
		return
	}
	quality := s.liveQuality()
	var rows []modelRow
	for _, m := range ms {
		seen := false
		for _, vs := range m.Versions {
			row := modelRow{Model: m.Name, Version: vs.Version, State: vs.State, Role: vs.Role, Reason: vs.Reason,
				Error: cmp.Or(vs.Error, vs.Note), Pinned: m.Pinned == vs.Version, CheckedAt: vs.At, Quality: quality[m.Name+"\x00"+vs.Version]}
			switch {
			case m.Live != nil && m.Live.Version == vs.Version:
				row.Served, seen = m.Live, true
			}
			for j := range m.Shadows {
				if m.Shadows[j].Version == vs.Version {
					row.Served = &m.Shadows[j]
				}
			}
			rows = append(rows, row)
		}
		if !seen && m.Live != nil { // a live version the registry lists no check of
			rows = append(rows, modelRow{Model: m.Name, Version: m.Live.Version, State: "serving", Served: m.Live,
				Pinned: m.Pinned == m.Live.Version, Quality: quality[m.Name+"\x00"+m.Live.Version]})
		}
	}
	s.render(w, r, http.StatusOK, "models", "Models", p, rows)
}

// liveQuality is each model version's precision and recall so far, from
// orderwatch_model_outcomes_total, by model and version ("model\x00version").
func (s *server) liveQuality() map[string]string {
	out := map[string]string{}
	fams := s.gather()
	type counts struct{ flaggedMissed, flagged, missed, judged float64 }
	byVersion := map[string]*counts{}
	for _, f := range fams {
		if f.GetName() != "orderwatch_model_outcomes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			k := l["model"] + "\x00" + l["version"]
			c := byVersion[k]
			if c == nil {
				c = &counts{}
				byVersion[k] = c
			}
			n := m.GetCounter().GetValue()
			c.judged += n
			if l["predicted"] == "flagged" {
				c.flagged += n
			}
			if l["actual"] == "missed" {
				c.missed += n
				if l["predicted"] == "flagged" {
					c.flaggedMissed += n
				}
			}
		}
	}
	for k, c := range byVersion {
		if c.judged == 0 {
			continue
		}
		q := fmt.Sprintf("%.0f orders judged", c.judged)
		if c.flagged > 0 {
			q += fmt.Sprintf(", precision %.2f", c.flaggedMissed/c.flagged)
		}
		if c.missed > 0 {
			q += fmt.Sprintf(", recall %.2f", c.flaggedMissed/c.missed)
		}
		out[k] = q
	}
	return out
}

// gather reads the metrics /metrics serves; none without a gatherer.
func (s *server) gather() []*dto.MetricFamily {
	if s.o.Gatherer == nil {
		return nil
	}
	fams, err := s.o.Gatherer.Gather()
	if err != nil {
		s.log.Warn("console: metrics gathered with errors", "err", err)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
