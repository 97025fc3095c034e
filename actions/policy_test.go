package actions

import (
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

func TestDefaultPolicyLoads(t *testing.T) {
	p, err := LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Version == "" || len(p.Rules) == 0 {
		t.Errorf("default policy = %+v", p)
	}
	if p.Settings.MaxOutage.D() != DefaultMaxOutage {
		t.Errorf("settings.max_outage = %s, want %s", p.Settings.MaxOutage.D(), DefaultMaxOutage)
	}
	unset, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n"))
	if err != nil || unset.Settings.MaxOutage.D() != DefaultMaxOutage {
		t.Errorf("a policy without settings.max_outage: %v, max_outage %s; want %s", err, unset.Settings.MaxOutage.D(), DefaultMaxOutage)
	}
	modes := map[string]bool{}
	actions := map[string]bool{}
	for _, r := range p.Rules {
		modes[r.Mode] = true
		actions[r.Action] = true
	}
	for _, m := range Modes {
		if !modes[m] {
			t.Errorf("the shipped policy has no rule in mode %s: make run would not show it", m)
		}
	}
	for _, a := range Actions {
		if a != ActionEscalate && !actions[a] {
			t.Errorf("the shipped policy never takes action %s", a)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	const head = "version: v1\n"
	rule := func(s string) string { return head + "rules:\n- " + s + "\n" }
	cases := []struct{ name, doc, want string }{
		{"unknown key", head + "rules: []\nthreshold: 3\n", `unknown key "threshold"`},
		{"unknown key in a rule", rule("{id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}, colour: red}"), `unknown key "colour"`},
		{"unknown key in a range", rule("{id: a, action: flag_finance, mode: auto, when: {risk: {above: 0.5}}}"), `unknown key "above"`},
		{"no version", "rules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "version is empty"},
		{"no rules", head, "rules is empty"},
		{"bad action", rule("{id: a, action: teleport, mode: auto, when: {risk: {gte: 0.5}}}"), `action "teleport" is unknown`},
		{"escalate is not a rule action", rule("{id: a, action: escalate, mode: auto, when: {risk: {gte: 0.5}}}"), "escalations come from the ladders"},
		{"bad mode", rule("{id: a, action: flag_finance, mode: maybe, when: {risk: {gte: 0.5}}}"), `mode "maybe" is unknown`},
		{"no condition", rule("{id: a, action: flag_finance, mode: auto}"), "has no condition"},
		{"risk out of range", rule("{id: a, action: flag_finance, mode: auto, when: {risk: {gte: 7}}}"), "outside 0..1"},
		{"range without bound", rule("{id: a, action: flag_finance, mode: auto, when: {risk: {}}}"), "has no bound"},
		{"impossible range", rule("{id: a, action: flag_finance, mode: auto, when: {features: {lines: {gt: 5, lt: 3}}}}"), "no value can satisfy"},
		{"eq with others", rule("{id: a, action: flag_finance, mode: auto, when: {features: {lines: {eq: 5, lt: 3}}}}"), "eq excludes"},
		{"unknown feature", rule("{id: a, action: flag_finance, mode: auto, when: {features: {warehouse_load_rati: {gte: 1.5}}}}"), "features.warehouse_load_rati: unknown feature"},
		{"unknown class", rule("{id: a, action: flag_finance, mode: auto, when: {classes: {weather: {gte: 0.5}}}}"), "classes.weather: unknown exception class"},
		{"duplicate id", head + "rules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.6}}}\n", "used twice"},
		{"unknown ladder", rule("{id: a, action: flag_finance, mode: approval, escalation: nobody, when: {risk: {gte: 0.5}}}"), `escalation "nobody": no such ladder`},
		{"ack without ladder", rule("{id: a, action: flag_finance, mode: auto, require_ack: true, when: {risk: {gte: 0.5}}}"), "require_ack needs escalation"},
		{"bad sla", head + "escalation: {ops: [{team: desk, sla: soon}]}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", `duration "soon"`},
		{"empty ladder", head + "escalation: {ops: []}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "escalation.ops has no tiers"},
		{"negative limit", rule("{id: a, action: flag_finance, mode: auto, limits: {warehouse: -1}, when: {risk: {gte: 0.5}}}"), "limits must not be negative"},
		{"reroute without alternatives", rule("{id: a, action: reroute_warehouse, mode: auto, when: {risk: {gte: 0.5}}}"), "needs reroute.alternatives"},
		{"webhook without secret", head + "webhooks: {flag_finance: {url: 'http://127.0.0.1:1/x'}}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "webhooks.flag_finance.secret_env is empty"},
		{"webhook bad url", head + "webhooks: {flag_finance: {url: 'ftp:x', secret_env: S}}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "webhooks.flag_finance.url"},
		{"negative max_outage", head + "settings: {max_outage: -1h}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "settings.max_outage -1h0m0s is negative"},
		{"tiny max_outage", head + "settings: {max_outage: 10ms}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "settings.max_outage 10ms is under a second"},
		{"webhook for unknown action", head + "webhooks: {teleport: {url: 'http://h/x', secret_env: S}}\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n", "webhooks.teleport: unknown action"},
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

func TestConditionHolds(t *testing.T) {
	var v features.Vector
	v[features.FWarehouseLoadRatio] = 1.5
	v[features.FMinutesToCutoff] = 90
	st := &features.OrderState{OrderID: "SO-1", Warehouse: "DAL", CustomerTier: "gold", Channel: "edi", Carrier: "ODFL"}
	in := &Input{OrderID: "SO-1", Risk: 0.72, Classes: map[string]float64{"credit": 0.6}, Features: &v, State: st}
	cases := []struct {
		when string
		want bool
	}{
		{"{risk: {gte: 0.7}}", true},
		{"{risk: {gt: 0.72}}", false},
		{"{risk: {lte: 0.72}}", true},
		{"{features: {warehouse_load_ratio: {gte: 1.5}, minutes_to_cutoff: {lt: 120}}}", true},
		{"{features: {warehouse_load_ratio: {gte: 1.5}, minutes_to_cutoff: {lt: 60}}}", false},
		{"{features: {on_credit_hold: {eq: 0}}}", true},
		{"{classes: {credit: {gte: 0.5}}}", true},
		{"{classes: {carrier: {gte: 0.1}}}", false}, // not scored: does not hold
		{"{order: {warehouse: DAL}}", true},
		{"{order: {warehouse: [ATL, RNO]}}", false},
		{"{order: {customer_tier: [gold, platinum], channel: edi, carrier: ODFL}}", true},
		{"{risk: {gte: 0.7}, order: {channel: portal}}", false},
	}
	for _, c := range cases {
		t.Run(c.when, func(t *testing.T) {
			p, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: r, action: flag_finance, mode: auto, when: " + c.when + "}\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Rules[0].When.holds(in); got != c.want {
				t.Errorf("holds = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDecideOncePerEpisode(t *testing.T) {
	p, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: hot, action: notify_customer_service, mode: auto, when: {risk: {gte: 0.7}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem := Memory{}
	var v features.Vector
	state := &features.OrderState{OrderID: "SO-1"}
	at := time.Date(2026, 5, 21, 8, 0, 0, 0, time.UTC)
	var keys []string
	for i, risk := range []float64{0.2, 0.8, 0.9, 0.75, 0.3, 0.95, 0.96} {
		b := st.NewBatch()
		in := &Input{OrderID: "SO-1", At: at.Add(time.Duration(i) * time.Minute), Risk: risk, Features: &v, State: state}
		ds, err := p.Decide(b, in, mem, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ds {
			d := &ds[i]
			keys = append(keys, d.IdempotencyKey)
			if d.Status != StatusQueued || d.Mode != ModeAuto || !d.Queued() {
				t.Errorf("decision %+v, want queued auto", d)
			}
			if err := p.Record(b, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		b.Discard()
	}
	// Above 0.7 at steps 1-3 (episode 1) and 5-6 (episode 2).
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatalf("keys = %v, want two distinct decisions, one per episode", keys)
	}
	if keys[0] != IdempotencyKey("SO-1", "hot", "v1", 1) {
		t.Error("idempotency key is not the deterministic key of (order, rule, policy version, episode)")
	}
	out, err := st.OutboxPage("", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Errorf("outbox holds %d entries, want the 2 commands", len(out))
	}
	scores, err := st.Scores("SO-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 7 {
		t.Errorf("%d score points kept, want one per scoring (7)", len(scores))
	}
}
