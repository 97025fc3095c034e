package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/store"
)

// dropShadowCopy copies the shipped cutoff_risk into modelsDir as version v,
// a shadow whose act threshold is act.
func dropShadowCopy(t *testing.T, modelsDir, v string, act float64) {
	t.Helper()
	src := filepath.Join(modelsDir, modelRisk, "1.0.0")
	dst := filepath.Join(modelsDir, modelRisk, v)
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
			m["role"], m["version"], m["thresholds"] = models.RoleShadow, v, map[string]any{"act": act}
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// publishShadowEvent publishes one event of typ for order at occurred.
func publishShadowEvent(t *testing.T, nc *nats.Conn, id, typ, order string, at time.Time, data string) {
	t.Helper()
	ev := fmt.Sprintf(`{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":%s}`,
		id, typ, order, at.Format(time.RFC3339Nano), data)
	if err := nc.PublishMsg(&nats.Msg{Subject: features.Subject(typ, order), Data: []byte(ev), Header: nats.Header{"Nats-Msg-Id": {id}}}); err != nil {
		t.Fatal(err)
	}
}

// TestTwoShadowsServeSideBySide (issue 21): two shadow versions of cutoff_risk
// serve beside the live one, with the real nats-server, Badger, pipeline and
// ONNX Runtime: /api/v1/models lists both, every scored row's score point in
// the order's history holds each shadow's score, not only the rows that
// decided something, and the outcome join judges each version on the same
// orders: orderwatch_model_outcomes_total by version and role.
func TestTwoShadowsServeSideBySide(t *testing.T) {
	data := t.TempDir()
	modelsDir := filepath.Join(data, "models")
	if err := models.SeedDir(modelsDir); err != nil {
		t.Fatal(err)
	}
	dropShadowCopy(t, modelsDir, "1.1.0", 0.99)
	dropShadowCopy(t, modelsDir, "1.2.0", 0.01)
	const orders = 6
	t.Run("run", func(t *testing.T) {
		natsAddr := freeAddr(t)
		base := startRunWith(t, "--data", data, "--nats-listen", natsAddr)
		_, body := get(base + "/api/v1/models")
		var st []models.ModelStatus
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/api/v1/models: %v: %s", err, body)
		}
		for _, m := range st {
			if m.Name != modelRisk {
				continue
			}
			if m.Shadow == nil || m.Shadow.Version != "1.2.0" || len(m.Shadows) != 2 || m.Shadows[1].Version != "1.1.0" {
				t.Errorf("/api/v1/models shadow %+v shadows %+v, want 1.2.0 then 1.1.0", m.Shadow, m.Shadows)
			}
		}
		nc, err := nats.Connect("nats://" + natsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// Created now with a cutoff 3 h later; the odd orders ship after it.
		created := time.Now().UTC()
		for i := range orders {
			order := fmt.Sprintf("SO-2SH-%d", i)
			publishShadowEvent(t, nc, fmt.Sprintf("2sh-c-%d", i), features.TypeOrderCreated, order, created,
				fmt.Sprintf(`{"warehouse":"DAL","customer_id":"C-2SH","ship_cutoff":%q}`, created.Add(3*time.Hour).Format(time.RFC3339)))
		}
		applied := func(n int) func() bool {
			return func() bool {
				_, s := get(base + "/api/v1/stats")
				var st store.Stats
				_ = json.Unmarshal([]byte(s), &st)
				return st.EventsApplied == int64(n)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		// Scored (and so evaluated) before the shipments make the outcomes known.
		waitFor(t, "the orders scored", applied(orders))
		for i := range orders {
			shipped := created.Add(time.Minute)
			if i%2 == 1 {
				shipped = created.Add(3*time.Hour + time.Minute) // missed its cutoff
			}
			publishShadowEvent(t, nc, fmt.Sprintf("2sh-s-%d", i), features.TypeShipmentConfirmed, fmt.Sprintf("SO-2SH-%d", i), shipped, `{}`)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "every event applied", applied(2*orders))
		// Each order shipped in time, judged on its created row's scores: the
		// live version and each shadow on the same orders, each at its own
		// threshold (the copies score alike; 1.2.0 flags at 0.01, 1.1.0 at 0.99).
		const metric = "orderwatch_model_outcomes_total"
		var m string
		waitFor(t, "the outcomes judged", func() bool {
			_, m = get(base + "/metrics")
			return metricSum(m, metric, `role="live"`) == orders
		})
		for _, c := range []struct {
			version, role, predicted string
		}{{"1.0.0", "live", ""}, {"1.1.0", "shadow", `predicted="not_flagged"`}, {"1.2.0", "shadow", `predicted="flagged"`}} {
			sel := []string{`model="cutoff_risk"`, fmt.Sprintf(`version=%q`, c.version), fmt.Sprintf(`role=%q`, c.role)}
			if got := metricSum(m, metric, sel...); got != orders {
				t.Errorf("%s%v = %v, want %d: every order judged for each version", metric, sel, got, orders)
			}
			if got := metricSum(m, metric, append(sel, c.predicted)...); c.predicted != "" && got != orders {
				t.Errorf("%s%v %s = %v, want %d at the version's own threshold", metric, sel, c.predicted, got, orders)
			}
		}
		if got := metricSum(m, metric, `version="1.2.0"`, `role="live"`); got != 0 {
			t.Errorf("shadow 1.2.0 judged as live: %v", got)
		}

		// orderwatch models compare: each shadow against the live version on
		// the same judged orders, each at its own threshold.
		for _, c := range []struct {
			version string
			want    []string
		}{
			{"1.2.0", []string{"against live 1.0.0 on the same 6 judged orders (3 missed their cutoff)", "1.0.0    live    0.70       0        0       3       -          0.00",
				"1.2.0    shadow  0.01       6        3       0       0.50       1.00"}},
			{"1.1.0", []string{"against live 1.0.0 on the same 6 judged orders (3 missed their cutoff)", "1.1.0    shadow  0.99       0        0       3       -          0.00"}},
		} {
			var out strings.Builder
			if err := modelsCmd([]string{"compare", modelRisk, c.version, "--api", base}, &out); err != nil {
				t.Fatalf("models compare %s: %v", c.version, err)
			}
			t.Logf("orderwatch models compare %s %s:\n%s", modelRisk, c.version, out.String())
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("models compare %s printed\n%s\nwant it to contain %q", c.version, out.String(), w)
				}
			}
		}
		var out strings.Builder
		if err := modelsCmd([]string{"compare", modelRisk, "9.9.9", "--api", base}, &out); err != nil || !strings.Contains(out.String(), "no order it scored") {
			t.Errorf("models compare of a version that judged nothing: %v %q", err, out.String())
		}
		if code, body := get(base + "/api/v1/models/cutoff_risk/compare"); code != 400 || !strings.Contains(body, "version") {
			t.Errorf("compare without a version = %d %s, want 400 naming version", code, body)
		}
	})

	st, err := store.Open(store.Options{Dir: filepath.Join(data, "badger")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range orders {
		for _, p := range scorePoints(t, st, fmt.Sprintf("SO-2SH-%d", i)) {
			a, okA := p.Shadow["cutoff_risk@1.1.0"]
			b, okB := p.Shadow["cutoff_risk@1.2.0"]
			if !okA || !okB || len(p.Shadow) != 2 || a != b || a != p.Risk {
				t.Errorf("SO-2SH-%d score point shadows %v (risk %v), want both copies' score, the live one's", i, p.Shadow, p.Risk)
			}
		}
	}
}
