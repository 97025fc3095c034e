package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/store"
)

// dropBadModel copies the misbehaving bundle models/testdata/bad/<fixture>
// (models/testdata/make_bad_fixtures.py: a model that validates, but whose
// output is NaN, +Inf or 7 for rows past the cutoff) into modelsDir as
// <name>/1.1.0 with role.
func dropBadModel(t *testing.T, modelsDir, fixture, role string) {
	t.Helper()
	base := filepath.Join("..", "..", "models", "testdata", "bad", fixture)
	names, err := os.ReadDir(base)
	if err != nil || len(names) != 1 {
		t.Fatalf("fixture %s: %v", fixture, err)
	}
	src := filepath.Join(base, names[0].Name(), "1.1.0")
	dst := filepath.Join(modelsDir, names[0].Name(), "1.1.0")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{models.ModelFile, models.BundleFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == models.BundleFile {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["role"] = role
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShadowBadPastCutoffKeepsThePipelineGoing (issue 9, finding 3): a shadow
// cutoff_risk that validates but returns NaN (or +Inf, or 7) for the rows past
// their cutoff, with the real embedded nats-server, Badger, pipeline and
// registryScorer: /readyz stays 200, every message is applied, the shadow's bad
// rows are left out and counted, and the decisions are the live model's.
func TestShadowBadPastCutoffKeepsThePipelineGoing(t *testing.T) {
	for _, fixture := range []string{"risk_nan", "risk_inf", "risk_high"} {
		t.Run(fixture, func(t *testing.T) {
			data := t.TempDir()
			dropBadModel(t, filepath.Join(data, "models"), fixture, models.RoleShadow)
			const orders, past = 12, 6
			var base string
			t.Run("run", func(t *testing.T) {
				natsAddr := freeAddr(t)
				base = startRunWith(t, "--data", data, "--nats-listen", natsAddr)
				nc, err := nats.Connect("nats://" + natsAddr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				now := time.Now().UTC()
				for i := range orders {
					cutoff := now.Add(5 * time.Hour)
					if i < past {
						cutoff = now.Add(-2 * time.Hour) // past its cutoff: the shadow's bad rows
					}
					ev := fmt.Sprintf(`{"id":"sh-%d","type":"order.created","order_id":"SO-SH-%d","occurred_at":%q,"source":"erp","schema":1,"data":{"warehouse":"DAL","ship_cutoff":%q}}`,
						i, i, now.Format(time.RFC3339Nano), cutoff.Format(time.RFC3339))
					if err := nc.PublishMsg(&nats.Msg{Subject: features.Subject(features.TypeOrderCreated, fmt.Sprintf("SO-SH-%d", i)), Data: []byte(ev), Header: nats.Header{"Nats-Msg-Id": {fmt.Sprintf("sh-%d", i)}}}); err != nil {
						t.Fatal(err)
					}
				}
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "every event applied", func() bool {
					_, s := get(base + "/api/v1/stats")
					var st store.Stats
					_ = json.Unmarshal([]byte(s), &st)
					return st.EventsApplied == orders
				})
				if code, body := get(base + "/readyz"); code != 200 {
					t.Errorf("/readyz = %d %s, want 200", code, body)
				}
				_, m := get(base + "/metrics")
				if got := metricSum(m, "orderwatch_model_bad_outputs_total", `role="shadow"`); got < past {
					t.Errorf("shadow bad outputs = %v, want at least %d", got, past)
				}
				if got := metricSum(m, "orderwatch_batch_failures_total", ""); got != 0 {
					t.Errorf("batch failures = %v, want 0", got)
				}
			})

			st, err := store.Open(store.Options{Dir: filepath.Join(data, "badger")})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for i := range orders {
				for _, p := range scorePoints(t, st, fmt.Sprintf("SO-SH-%d", i)) {
					if p.Degraded || !strings.HasPrefix(p.Model, "cutoff_risk@1.0.0") {
						t.Errorf("SO-SH-%d scored by %s (degraded %v), want the live cutoff_risk@1.0.0", i, p.Model, p.Degraded)
					}
					sh, ok := p.Shadow["cutoff_risk@1.1.0"]
					switch {
					case i < past && ok:
						t.Errorf("SO-SH-%d past its cutoff has shadow score %v, want it left out", i, sh)
					case i >= past && (!ok || sh != 0.25):
						t.Errorf("SO-SH-%d has shadow %v, want 0.25", i, p.Shadow)
					}
				}
			}
		})
	}
}

// TestRegistryScorerChecksOutputs: an active risk model's bad rows fall back
// to the rules for those rows only, marked degraded; a class model with a bad
// row is not used for the batch; every bad row is counted.
func TestRegistryScorerChecksOutputs(t *testing.T) {
	dir := t.TempDir()
	dropBadModel(t, dir, "risk_high", models.RoleActive)
	dropBadModel(t, dir, "class_nan", models.RoleActive)
	reg := prometheus.NewRegistry()
	r, err := newRegistry(dir, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := &registryScorer{r: r}
	nf, nc := features.NumFeatures, len(features.ExceptionClasses)
	const n = 4
	rows := make([]float32, n*nf)
	for i := range n {
		rows[i*nf+features.FMinutesToCutoff] = 90
	}
	rows[1*nf+features.FMinutesToCutoff] = -15 // past the cutoff: bad outputs
	rows[1*nf+features.FOnCreditHold] = 1
	risk, classes := make([]float32, n), make([]float32, n*nc)
	sc, err := s.Score(rows, make([][]string, n), risk, classes)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	if sc.Risk.Version != "1.1.0" {
		t.Fatalf("scored by %s %s, want the fixture 1.1.0", sc.Risk.Name, sc.Risk.Version)
	}
	want := features.FallbackRisk((*features.Vector)(rows[nf : 2*nf]))
	if len(sc.RowDegraded) != n || !sc.RowDegraded[1] || sc.RowDegraded[0] || sc.RowDegraded[2] || sc.RowDegraded[3] {
		t.Errorf("RowDegraded = %v, want row 1 only", sc.RowDegraded)
	}
	if risk[1] != want || risk[0] != 0.25 {
		t.Errorf("risk = %v, want row 1 = the rules' %v, the others 0.25", risk, want)
	}
	if sc.ClassModel != nil {
		t.Errorf("class model %v used with a NaN row", sc.ClassModel)
	}
	for _, c := range []struct{ model string }{{"cutoff_risk"}, {"exception_class"}} {
		if got := badOutputs(t, reg, c.model); got != 1 {
			t.Errorf("bad outputs of %s = %v, want 1", c.model, got)
		}
	}
	for _, v := range risk {
		if math.IsNaN(float64(v)) {
			t.Errorf("a NaN risk left: %v", risk)
		}
	}
}

// badOutputs returns orderwatch_model_bad_outputs_total{model=name,version="1.1.0",role="active"}.
func badOutputs(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderwatch_model_bad_outputs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["model"] == name && labels["version"] == "1.1.0" && labels["role"] == "active" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no orderwatch_model_bad_outputs_total for %s 1.1.0", name)
	return 0
}

// scorePoints reads the score points of an order's history from st: at least
// one, each decoded.
func scorePoints(t *testing.T, st *store.Store, order string) []actions.ScorePoint {
	t.Helper()
	v, err := st.Order(order)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Scores) == 0 {
		t.Fatalf("%s has no score", order)
	}
	ps := make([]actions.ScorePoint, len(v.Scores))
	for i, raw := range v.Scores {
		if err := ps[i].UnmarshalBinary(raw); err != nil {
			t.Fatalf("%s score point %d: %v", order, i, err)
		}
	}
	return ps
}
