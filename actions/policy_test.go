package actions

import (
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

func TestDefaultPolicyLoads(t *testing.T) {
	p, err := LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Version == "" || len(p.Rules) == 0 {
		t.Errorf("default policy = %+v", p)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown key", "version: v1\nrules: []\nthreshold: 3\n", "field threshold not found"},
		{"no version", "rules:\n- {id: a, action: escalate, mode: auto, when: {risk_at_least: 0.5}}\n", "version is empty"},
		{"no rules", "version: v1\n", "rules is empty"},
		{"bad action", "version: v1\nrules:\n- {id: a, action: teleport, mode: auto, when: {risk_at_least: 0.5}}\n", `action "teleport" is unknown`},
		{"bad mode", "version: v1\nrules:\n- {id: a, action: escalate, mode: maybe, when: {risk_at_least: 0.5}}\n", `mode "maybe" is unknown`},
		{"no condition", "version: v1\nrules:\n- {id: a, action: escalate, mode: auto}\n", "has no condition"},
		{"risk out of range", "version: v1\nrules:\n- {id: a, action: escalate, mode: auto, when: {risk_at_least: 7}}\n", "outside 0..1"},
		{"duplicate id", "version: v1\nrules:\n- {id: a, action: escalate, mode: auto, when: {risk_at_least: 0.5}}\n- {id: a, action: escalate, mode: auto, when: {risk_at_least: 0.6}}\n", "used twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParsePolicy error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestDecideOncePerEpisode(t *testing.T) {
	p, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: hot, action: notify_customer_service, mode: auto, when: {risk_at_least: 0.7}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	mem := Memory{}
	var v features.Vector
	st := &features.OrderState{OrderID: "SO-1"}
	at := time.Date(2026, 5, 21, 8, 0, 0, 0, time.UTC)
	var keys []string
	for i, risk := range []float64{0.2, 0.8, 0.9, 0.75, 0.3, 0.95, 0.96} {
		in := &Input{OrderID: "SO-1", At: at.Add(time.Duration(i) * time.Minute), Risk: risk, Features: &v, State: st}
		for _, d := range p.Decide(in, mem, nil) {
			keys = append(keys, d.IdempotencyKey)
			if d.Status != StatusQueued || d.Mode != ModeAuto {
				t.Errorf("decision %+v, want queued auto", d)
			}
			if _, ok := d.Command(); !ok {
				t.Error("an auto decision has no command")
			}
		}
	}
	// Above 0.7 at steps 1-3 (episode 1) and 5-6 (episode 2).
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("keys = %v, want two distinct decisions, one per episode", keys)
	}
	if keys[0] != IdempotencyKey("SO-1", "hot", "v1", 1) {
		t.Error("idempotency key is not the deterministic key of (order, rule, policy version, episode)")
	}
}
