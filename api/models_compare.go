package api

import (
	"encoding/json"
	"net/http"
)

// versionQuality is one version's verdicts on the judged orders of a
// comparison, each at its own act threshold.
type versionQuality struct {
	Version   string   `json:"version"`
	Role      string   `json:"role"`                // live or shadow
	Threshold *float64 `json:"threshold,omitempty"` // its act threshold, while it serves
	Judged    float64  `json:"judged"`              // orders with a known outcome
	Flagged   float64  `json:"flagged"`             // risk >= its threshold
	Missed    float64  `json:"missed"`              // orders that missed their cutoff
	Caught    float64  `json:"caught"`              // flagged and missed
	Precision *float64 `json:"precision"`           // caught / flagged; null when none was flagged
	Recall    *float64 `json:"recall"`              // caught / missed; null when none missed
}

// modelComparison is the answer of GET /api/v1/models/{name}/compare: a
// shadow version against each live version that judged the same orders.
type modelComparison struct {
	Model       string        `json:"model"`
	Version     string        `json:"version"`
	Comparisons []versionPair `json:"comparisons"`
}

// versionPair is a live version and the shadow on the same judged orders.
type versionPair struct {
	Live   versionQuality `json:"live"`
	Shadow versionQuality `json:"shadow"`
}

// compareModel serves GET /api/v1/models/{name}/compare?version=V from
// orderwatch_model_shadow_outcomes_total: the shadow version's and the live
// version's verdicts on exactly the orders both scored at the judged moment.
func (s *server) compareModel(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.URL.Query().Get("version")
	if version == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "api: query parameter version is missing: want ?version=1.2.0, a shadow version"})
		return
	}
	if s.o.Gatherer == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "api: no metrics registry: the comparison is read from orderwatch_model_shadow_outcomes_total"})
		return
	}
	thresholds := s.thresholds(name)
	byLive := map[string]*[2]versionQuality{} // live version → live, shadow
	var order []string
	for _, f := range s.gather() {
		if f.GetName() != "orderwatch_model_shadow_outcomes_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["model"] != name || l["version"] != version {
				continue
			}
			lv := l["live_version"]
			pair := byLive[lv]
			if pair == nil {
				pair = &[2]versionQuality{{Version: lv, Role: "live"}, {Version: version, Role: "shadow"}}
				byLive[lv] = pair
				order = append(order, lv)
			}
			n := m.GetCounter().GetValue()
			pair[0].count(n, l["live_predicted"] == "flagged", l["actual"] == "missed")
			pair[1].count(n, l["predicted"] == "flagged", l["actual"] == "missed")
		}
	}
	out := modelComparison{Model: name, Version: version}
	out.Comparisons = make([]versionPair, 0, len(order))
	for _, lv := range order {
		pair := byLive[lv]
		if pair[0].Judged == 0 {
			continue
		}
		for i := range pair {
			pair[i].finish(thresholds)
		}
		out.Comparisons = append(out.Comparisons, versionPair{Live: pair[0], Shadow: pair[1]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (q *versionQuality) count(n float64, flagged, missed bool) {
	q.Judged += n
	if flagged {
		q.Flagged += n
	}
	if missed {
		q.Missed += n
		if flagged {
			q.Caught += n
		}
	}
}

// finish fills the ratios and the version's threshold, when it serves.
func (q *versionQuality) finish(thresholds map[string]float64) {
	if t, ok := thresholds[q.Version]; ok {
		q.Threshold = &t
	}
	if q.Flagged > 0 {
		p := q.Caught / q.Flagged
		q.Precision = &p
	}
	if q.Missed > 0 {
		r := q.Caught / q.Missed
		q.Recall = &r
	}
}

// thresholds returns the act threshold of each serving version of model name
// (live and shadows), by version.
func (s *server) thresholds(name string) map[string]float64 {
	out := map[string]float64{}
	raw, err := json.Marshal(s.o.Models.Status())
	if err != nil {
		return out
	}
	var ms []modelStatus
	if json.Unmarshal(raw, &ms) != nil {
		return out
	}
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		if m.Live != nil {
			out[m.Live.Version] = m.Live.Threshold
		}
		for _, sh := range m.Shadows {
			out[sh.Version] = sh.Threshold
		}
	}
	return out
}
