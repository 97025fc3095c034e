package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderwatch/orderwatch/features"
)

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startRun runs the whole wiring of `orderwatch run` on temp dirs and free ports.
func startRun(t *testing.T, demo bool) (httpBase, natsURL string) {
	t.Helper()
	natsAddr := freeAddr(t)
	args := []string{"--data", t.TempDir(), "--nats-listen", natsAddr, "--demo-rate", "200"}
	if demo {
		args = append(args, "--demo")
	}
	return startRunWith(t, args...), "nats://" + natsAddr
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 30*time.Second, what, cond)
}

// waitForWithin is waitFor with another bound.
func waitForWithin(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum adds the values of the series of a metric whose labels contain each
// of match.
func metricSum(body, name string, match ...string) float64 {
	var sum float64
	re := regexp.MustCompile(`^` + name + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	for _, line := range strings.Split(body, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil || slices.ContainsFunc(match, func(s string) bool { return !strings.Contains(m[1], s) }) {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	return sum
}

func TestHandwrittenEventsThroughTheWholeProcess(t *testing.T) {
	base, natsURL := startRun(t, false)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f, err := os.Open("../../testdata/events/handwritten.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var n int
	for sc.Scan() {
		var env struct{ ID, Type string }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatal(err)
		}
		// Plain core NATS publish, as the simplest producer would do it.
		if err := nc.PublishMsg(&nats.Msg{Subject: features.Subject(env.Type, orderIDOf(sc.Bytes())), Data: sc.Bytes(), Header: nats.Header{"Nats-Msg-Id": {env.ID}}}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := nc.Publish("orders.order.created.SO-BAD", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	var body string
	waitFor(t, "SO-100231 with 3 events", func() bool {
		var code int
		code, body = get(base + "/api/v1/orders/SO-100231")
		return code == 200 && strings.Count(body, `"source"`) >= 3
	})
	var view struct {
		Record struct {
			State struct {
				Warehouse string `json:"warehouse"`
			} `json:"state"`
			Flags struct {
				OnCreditHold bool `json:"on_credit_hold"`
			} `json:"flags"`
			Risk  *float64              `json:"risk"`
			Model struct{ Name string } `json:"model"`
		} `json:"record"`
		Timeline []json.RawMessage `json:"timeline"`
	}
	if err := json.Unmarshal([]byte(body), &view); err != nil {
		t.Fatal(err)
	}
	if view.Record.State.Warehouse != "DAL" || !view.Record.Flags.OnCreditHold || view.Record.Risk == nil || view.Record.Model.Name != "cutoff_risk" || len(view.Timeline) != 3 {
		t.Errorf("order view = %s", body)
	}
	if code, _ := get(base + "/api/v1/orders/SO-unknown"); code != 404 {
		t.Errorf("unknown order: %d, want 404", code)
	}

	waitFor(t, "bad_json dead-lettered and all counted", func() bool {
		_, m := get(base + "/metrics")
		_, s := get(base + "/api/v1/stats")
		var st map[string]int
		_ = json.Unmarshal([]byte(s), &st)
		return metricSum(m, "orderwatch_dlq_total", `reason="bad_json"`) == 1 && st["events_applied"] == n && st["dead_lettered"] == 1
	})
}

func TestDemoShowsEventsAndDecisions(t *testing.T) {
	base, _ := startRun(t, true)
	// The demo's actions come with its warm-up backlog (6 simulated hours, then
	// about 29,000 events at most 2,000/s): under -race, with other packages'
	// tests on the same two cores, that took more than 30 s once.
	waitForWithin(t, 90*time.Second, "events and decisions in /metrics", func() bool {
		_, m := get(base + "/metrics")
		return metricSum(m, "orderwatch_events_total", `result="applied"`) > 100 &&
			metricSum(m, "orderwatch_decisions_total", "") > 0 &&
			metricSum(m, "orderwatch_actions_published_total", "") > 0
	})
}

// TestAPITokenForReads: run --api-token-for-reads refuses to start without a
// token (it could answer nothing); with one, reads of /api/ need it, /readyz and
// /metrics do not, and the CLI, which sends ORDERWATCH_API_TOKEN, still reads.
func TestAPITokenForReads(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "")
	cfg, err := parseRunFlags([]string{"--data", t.TempDir(), "--api-token-for-reads"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "needs ORDERWATCH_API_TOKEN") {
		t.Fatalf("run --api-token-for-reads without a token: %v, want a refusal", err)
	}

	t.Setenv("ORDERWATCH_API_TOKEN", "reads-too")
	base := startRunWith(t, "--data", t.TempDir(), "--nats-listen", freeAddr(t), "--api-token-for-reads")
	for path, want := range map[string]int{"/api/v1/stats": 401, "/api/v1/decisions": 401, "/readyz": 200, "/metrics": 200} {
		if code, _ := get(base + path); code != want {
			t.Errorf("GET %s without the token: %d, want %d", path, code, want)
		}
	}
	var out bytes.Buffer
	if err := decisionsCmd([]string{"list", "--api", base}, &out); err != nil {
		t.Errorf("orderwatch decisions list with ORDERWATCH_API_TOKEN set: %v", err)
	}
}
