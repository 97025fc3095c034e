package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/mapping"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestRunRefusesABadMapping: run --mapping with a file that does not compile, or
// whose subjects overlap orderwatch's own, refuses to start with the reason.
func TestRunRefusesABadMapping(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file string
		want       error
		says       string
	}{
		{"own subjects", write("own.yaml", "version: 1\nrecords:\n- name: all\n  subjects: [\"erp.>\", \"orders.>\"]\n  when: 'true'\n  skip: true\n"),
			pipeline.ErrForeignSubject, `"orders.>" overlaps`},
		{"no subjects", write("none.yaml", "version: 1\nrecords:\n- name: all\n  when: 'true'\n  skip: true\n"),
			pipeline.ErrForeignSubject, "names no subjects"},
		{"does not compile", write("bad.yaml", "version: 1\nrecords:\n- name: all\n  subjects: [\"erp.>\"]\n  when: 'r.kind =='\n  skip: true\n"),
			mapping.ErrBadMapping, "does not compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseRunFlags([]string{"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--mapping", c.file})
			if err != nil {
				t.Fatal(err)
			}
			err = run(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "--mapping") {
				t.Errorf("run: %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}

// TestRunMappingBridgesLive: orderwatch run --mapping takes the middleware's
// messages published to its subjects and folds the order they describe, as
// GET /api/v1/orders/{id} shows, with the bridge's metrics on /metrics.
func TestRunMappingBridgesLive(t *testing.T) {
	natsAddr := freeAddr(t)
	base := startRunWith(t, "--data", t.TempDir(), "--nats-listen", natsAddr,
		"--mapping", "../../examples/mapping/middleware-json.yaml")
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../examples/mapping/middleware-messages.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[string]string{"SalesOrderCreated": "erp.orders.created", "CreditBlock": "erp.credit.block",
		"Heartbeat": "erp.heartbeat", "SiteStatus": "wms.sites.status", "PickTaskConfirmed": "wms.tasks.confirmed",
		"ShipmentDispatched": "tms.dispatch", "CarrierStatus": "tms.status"}
	for line := range strings.Lines(string(raw)) {
		var v struct{ Kind string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), subjects[v.Kind], []byte(strings.TrimSpace(line))); err != nil {
			t.Fatalf("publish %s: %v", v.Kind, err)
		}
	}
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("last answer: %s", body)
			_, m := get(base + "/metrics")
			for l := range strings.Lines(m) {
				if strings.Contains(l, "bridge") || strings.Contains(l, "dlq_total") || strings.Contains(l, "events_total") {
					t.Log(strings.TrimSpace(l))
				}
			}
		}
	}()
	waitFor(t, "the order shipped", func() bool {
		var code int
		code, body = get(base + "/api/v1/orders/4500012345")
		return code == 200 && strings.Contains(body, `"shipped_at": "2026-11-02T15:42:00Z"`) && strings.Contains(body, `"carrier_issues": 1,`) &&
			strings.Contains(body, `"credit_holds": 1,`)
	})
	_, metrics := get(base + "/metrics")
	for _, want := range []string{`orderwatch_bridge_messages_total{result="mapped"} 7`, `orderwatch_bridge_messages_total{result="skipped"} 1`, "orderwatch_bridge_events_total 8"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
