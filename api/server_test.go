package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/store"
)

func TestEndpoints(t *testing.T) {
	st := openStore(t)
	b := st.NewBatch()
	if err := b.PutOrder("SO-1", []byte(`{"state":{"order_id":"SO-1"}}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendTimeline("SO-1", time.Now(), "e-1", []byte(`{"id":"e-1"}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.PutDecision("0001-a", "SO-1", []byte(`{"id":"0001-a"}`)); err != nil {
		t.Fatal(err)
	}
	b.Add(store.CounterEventsApplied, 3)
	b.Add(store.CounterDecisions, 1)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

	ready := true
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "orderwatch_test_total", Help: "x"}))
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Gatherer: reg, Ready: map[string]api.Check{
		"model": func() (bool, string) { return ready, "no model loaded" },
	}}))
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, sb.String()
	}
	cases := []struct {
		path     string
		code     int
		contains string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ready"},
		{"/metrics", 200, "orderwatch_test_total"},
		{"/api/v1/orders/SO-1", 200, `"0001-a"`},
		{"/api/v1/orders/SO-404", 404, "not known"},
		{"/api/v1/decisions?limit=5", 200, `"0001-a"`},
		{"/api/v1/decisions?limit=abc", 400, "limit"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			code, body := get(c.path)
			if code != c.code || !strings.Contains(body, c.contains) {
				t.Errorf("GET %s = %d %q, want %d containing %q", c.path, code, body, c.code, c.contains)
			}
		})
	}

	_, body := get("/api/v1/stats")
	var stats map[string]int64
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"events_applied", "duplicates", "dead_lettered", "open_orders", "decisions", "actions_published", "actions_deduplicated"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("stats lacks %s: %s", k, body)
		}
	}
	if stats["events_applied"] != 3 || stats["decisions"] != 1 {
		t.Errorf("stats = %v, want 3 events applied and 1 decision", stats)
	}

	ready = false
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no model loaded") {
		t.Errorf("readyz when not ready = %d %s", code, body)
	}
}

// TestTokenForReads: with TokenForReads every /api/ request needs the bearer
// token, reads included, while /metrics, /healthz and /readyz stay open.
func TestTokenForReads(t *testing.T) {
	const token = "read-token"
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "orderwatch_test_total", Help: "x"}))
	srv := httptest.NewServer(api.Handler(api.Options{Store: openStore(t), Gatherer: reg, Token: token, TokenForReads: true}))
	defer srv.Close()
	status := func(path, tok string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200,
		"/api/v1/stats": 401, "/api/v1/decisions": 401, "/api/v1/orders/SO-1": 401} {
		if got := status(path, ""); got != want {
			t.Errorf("GET %s without a token: %d, want %d", path, got, want)
		}
	}
	if got := status("/api/v1/stats", "wrong"); got != 401 {
		t.Errorf("GET /api/v1/stats with a wrong token: %d, want 401", got)
	}
	if got := status("/api/v1/stats", token); got != 200 {
		t.Errorf("GET /api/v1/stats with the token: %d, want 200", got)
	}
}
