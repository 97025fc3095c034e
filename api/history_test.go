package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// historyPoints are score points of one order: from events and the timer, with
// and without the exception classes, degraded, in other zones, with labels and
// strings off the beaten track.
func historyPoints() []actions.ScorePoint {
	t0 := time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)
	classes := func(top string, p float64) map[string]float64 {
		m := map[string]float64{"none": float64(float32(1 - p)), "credit": float64(float32(p / 7))}
		m[top] = float64(float32(p))
		return m
	}
	return []actions.ScorePoint{
		{At: t0, Trigger: "event", Event: "e-k3x9p-1", Risk: float64(float32(0.123456)), Classes: classes("carrier", 0.4),
			Model: "cutoff_risk@1.0.0"},
		{At: t0.Add(20 * time.Minute), Trigger: "timer", Event: "timer", Risk: float64(float32(0.705)),
			Classes: classes("credit", 0.55), Shadow: map[string]float64{"cutoff_risk@1.1.0": float64(float32(0.7))}, Model: "cutoff_risk@1.0.0"},
		{At: t0.Add(25*time.Minute + 123*time.Millisecond).In(time.FixedZone("CST", -6*3600)), Trigger: "event",
			Event: "e-<b>&amp;</b>", Risk: 0.995, Model: "rules_fallback@v3", Degraded: true},
		{At: t0.Add(30*time.Minute + 7).In(time.FixedZone("", 5*3600+30*60)), Trigger: "event", Event: "e-k3x9p-2",
			Risk: 1.0 / 3, Classes: map[string]float64{"none": 0.5, "new_class": 0.5, "carrier": 0.5}, Model: "my model@2"},
		{At: t0.Add(time.Hour), Trigger: "order.milestone", Event: "caf\u00e9 \u2028", Risk: 0,
			Classes: classes("invoicing", 0.125), Model: "cutoff_risk@"},
	}
}

// TestOrderHistoryReadsBothScoreForms stores the same score points for one order
// as earlier releases did (JSON) and for another in the binary form, and checks
// that GET /api/v1/orders/{id} serves the same bytes for both, with the history
// the JSON form gave before the binary form existed (testdata/score_history.golden,
// written by that release).
func TestOrderHistoryReadsBothScoreForms(t *testing.T) {
	st := openStore(t)
	b := st.NewBatch()
	for _, order := range []string{"SO-json", "SO-binary"} {
		if err := b.PutOrder(order, []byte(`{"state":{"order_id":"SO-1"}}`), 0); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC)
		ev := `{"id":"e-k3x9p-1","type":"order.created","occurred_at":"2026-11-02T06:00:00Z","source":"edi","actor":"edi-gw"}`
		if err := b.AppendTimeline(order, at, "e-k3x9p-1", []byte(ev), 0); err != nil {
			t.Fatal(err)
		}
		for _, p := range historyPoints() {
			v, err := json.Marshal(&p)
			if order == "SO-binary" {
				v, err = p.MarshalBinary()
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := b.AppendScore(order, p.At, v, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(api.Options{Store: st}))
	defer srv.Close()
	get := func(order string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/v1/orders/" + order)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s, %v", order, resp.StatusCode, body, err)
		}
		return body
	}

	fromJSON, fromBinary := get("SO-json"), get("SO-binary")
	if want := bytes.Replace(fromJSON, []byte(`"SO-json"`), []byte(`"SO-binary"`), 1); !bytes.Equal(fromBinary, want) {
		t.Errorf("the order with binary score points:\n%s\nwith the same points in JSON:\n%s", fromBinary, fromJSON)
	}
	var out struct{ History json.RawMessage }
	if err := json.Unmarshal(fromJSON, &out); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "score_history.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, append(out.History, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(out.History, '\n'); !bytes.Equal(got, want) {
		t.Errorf("history:\n%s\nwant (%s):\n%s", got, golden, want)
	}
}

// openStore opens a store on a temp dir, closed when the test ends.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestUnreadableScoreIsShownNotDropped: a stored score point that cannot be read
// (a newer release's form, a damaged value) is left out of the history, and the
// answer says so, with why, instead of the history just being shorter.
func TestUnreadableScoreIsShownNotDropped(t *testing.T) {
	st := openStore(t)
	b := st.NewBatch()
	if err := b.PutOrder("SO-1", []byte(`{"state":{"order_id":"SO-1"}}`), 0); err != nil {
		t.Fatal(err)
	}
	points := historyPoints()[:2]
	for _, p := range points {
		v, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AppendScore("SO-1", p.At, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.AppendScore("SO-1", points[1].At.Add(time.Minute), []byte{0xff, 0x01, 0x02}, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(api.Options{Store: st}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/orders/SO-1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		History    []struct{ Kind string }
		Unreadable []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET = %d, %v", resp.StatusCode, err)
	}
	scores := 0
	for _, h := range out.History {
		if h.Kind == "score" {
			scores++
		}
	}
	if scores != len(points) {
		t.Errorf("%d scores in the history, want the %d readable ones", scores, len(points))
	}
	if len(out.Unreadable) != 1 || !strings.Contains(out.Unreadable[0], "score 3 of 3 (3 bytes)") {
		t.Errorf("unreadable = %q, want the third score named with its size and the error", out.Unreadable)
	}
}
