package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// TestDecisionsShowTheCost: a decision of a policy with costs carries its
// expected value through the API and `orderwatch decisions show`, with the
// not_worth_it suppression of a cost-aware rule.
func TestDecisionsShowTheCost(t *testing.T) {
	p, err := actions.ParsePolicy([]byte(`version: cost-1
costs:
  missed_cutoff: {base: 50, per_value: 0.05}
  actions: {notify_customer_service: 20}
  effect: {notify_customer_service: 0.1}
rules:
  - {id: notify, action: notify_customer_service, mode: auto, cost_aware: true, when: {risk: {gte: 0.5}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	state := features.OrderState{OrderID: "SO-1", Known: true, Warehouse: "DAL", CustomerTier: "standard", Value: 1000}
	var v features.Vector
	b := st.NewBatch()
	ds, err := p.Decide(b, &actions.Input{OrderID: "SO-1", At: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), TriggerEvent: "e-1",
		TriggerType: "event", Risk: 0.8, Features: &v, State: &state}, actions.Memory{}, nil)
	if err != nil || len(ds) != 1 {
		t.Fatalf("decide: %v %+v", err, ds)
	}
	if err := p.Record(b, &ds[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	srv := httptest.NewServer(api.Handler(api.Options{Store: st}))
	defer srv.Close()

	var out bytes.Buffer
	if err := decisionsCmd([]string{"show", ds[0].ID, "--api", srv.URL}, &out); err != nil {
		t.Fatal(err)
	}
	var view struct {
		Decision struct {
			Status       string             `json:"status"`
			SuppressedBy string             `json:"suppressed_by"`
			Cost         map[string]float64 `json:"cost"`
		} `json:"decision"`
	}
	if err := json.Unmarshal(out.Bytes(), &view); err != nil {
		t.Fatalf("decisions show: %v\n%s", err, out.String())
	}
	d := view.Decision
	// miss (50 + 50) × 1 = 100; saving 0.8 × 100 × 0.1 = 8, not above 20.
	want := map[string]float64{"order_value": 1000, "miss_cost": 100, "effect": 0.1, "expected_saving": 0.8 * 100 * 0.1, "action_cost": 20}
	if d.Status != actions.StatusSuppressed || d.SuppressedBy != actions.SuppressedNotWorthIt || len(d.Cost) != len(want) {
		t.Fatalf("decisions show: %s", out.String())
	}
	for k, w := range want {
		if g := d.Cost[k]; g < w-1e-9 || g > w+1e-9 {
			t.Errorf("cost.%s = %v, want %v", k, g, w)
		}
	}
	if !strings.Contains(out.String(), "does not exceed the cost of notify_customer_service") {
		t.Errorf("decisions show does not say why it was not worth it:\n%s", out.String())
	}
}
