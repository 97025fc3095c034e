package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
)

// TestTargets: GET /api/v1/targets lists the executor's targets with their
// circuit state and queue; without an executor it answers 404.
func TestTargets(t *testing.T) {
	st := openStore(t)
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st,
		Publish: func(context.Context, string, string, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Targets: exec}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Targets []map[string]any `json:"targets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/targets = %d, %v", resp.StatusCode, err)
	}
	if len(body.Targets) != len(actions.Actions) {
		t.Fatalf("%d targets, want one per action's subject (%d): %v", len(body.Targets), len(actions.Actions), body.Targets)
	}
	first := body.Targets[0]
	for k, want := range map[string]any{"target": actions.Subject(actions.ActionEscalate), "kind": "nats", "state": "closed",
		"queued": 0.0, "consecutive_failures": 0.0, "max_outage": "24h0m0s"} {
		if first[k] != want {
			t.Errorf("targets[0].%s = %v, want %v (%v)", k, first[k], want, first)
		}
	}

	none := httptest.NewServer(api.Handler(api.Options{Store: st}))
	defer none.Close()
	resp2, err := http.Get(none.URL + "/api/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("without an executor: %d, want 404", resp2.StatusCode)
	}
}
