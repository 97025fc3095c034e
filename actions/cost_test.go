package actions

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// costPolicy prices misses and actions; its notify rule is cost-aware, its
// finance rule is not.
const costPolicy = `version: cost-1
costs:
  missed_cutoff: {base: 50, per_value: 0.05, tier: {platinum: 3, gold: 2, standard: 1}}
  actions: {notify_customer_service: 2, request_warehouse_reprioritisation: 15, flag_finance: 5}
  effect: {notify_customer_service: 0.1, request_warehouse_reprioritisation: 0.3, flag_finance: 0.2}
rules:
  - id: at-risk-reprioritise
    action: request_warehouse_reprioritisation
    mode: auto
    cost_aware: true
    when: {risk: {gte: 0.5}}
  - id: at-risk-finance
    action: flag_finance
    mode: auto
    when: {risk: {gte: 0.5}}
`

// TestCostAwareRuleActsOnlyWhereSavingExceedsCost: two orders at the same risk,
// one of a platinum customer worth 10,000, one of a standard customer worth
// 100. The cost-aware rule acts on the first (saving 0.6 × 1650 × 0.3 = 297 >
// 15) and is suppressed on the second (0.6 × 55 × 0.3 = 9.9 ≤ 15) with reason
// not_worth_it, recorded and counted; every decision records its expected
// value, the rule without cost_aware acts on both.
func TestCostAwareRuleActsOnlyWhereSavingExceedsCost(t *testing.T) {
	p, err := ParsePolicy([]byte(costPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	orders := []features.OrderState{
		{OrderID: "SO-BIG", Known: true, Warehouse: "DAL", CustomerID: "C-1", CustomerTier: "platinum", Value: 10000},
		{OrderID: "SO-SMALL", Known: true, Warehouse: "DAL", CustomerID: "C-2", CustomerTier: "standard", Value: 100},
	}
	b := st.NewBatch()
	got := map[string]Decision{}
	for i := range orders {
		var v features.Vector
		in := &Input{OrderID: orders[i].OrderID, At: at, TriggerEvent: "e-" + orders[i].OrderID, TriggerType: "order.created",
			Risk: 0.6, Features: &v, State: &orders[i]}
		ds, err := p.Decide(b, in, Memory{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range ds {
			if err := p.Record(b, &ds[j]); err != nil {
				t.Fatal(err)
			}
			got[ds[j].OrderID+"/"+ds[j].RuleID] = ds[j]
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Discard()

	check := func(key, status, reason string, miss, saving, cost float64) {
		t.Helper()
		d, ok := got[key]
		if !ok {
			t.Fatalf("no decision %s; decided %v", key, got)
		}
		if d.Status != status || d.SuppressedBy != reason {
			t.Errorf("%s: status %s (%s: %s), want %s (%s)", key, d.Status, d.SuppressedBy, d.SuppressedNote, status, reason)
		}
		if d.Cost == nil {
			t.Fatalf("%s records no cost", key)
		}
		c := d.Cost
		if math.Abs(c.MissCost-miss) > 1e-9 || math.Abs(c.ExpectedSaving-saving) > 1e-9 || c.ActionCost != cost {
			t.Errorf("%s: cost %+v, want miss %v, saving %v, action cost %v", key, *c, miss, saving, cost)
		}
		// The stored record carries it, as the API and `decisions show` read it.
		v, err := st.Decision(d.ID)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Cost map[string]float64 `json:"cost"`
		}
		if err := json.Unmarshal(v.Record, &rec); err != nil {
			t.Fatal(err)
		}
		if math.Abs(rec.Cost["expected_saving"]-saving) > 1e-9 || rec.Cost["action_cost"] != cost || math.Abs(rec.Cost["miss_cost"]-miss) > 1e-9 {
			t.Errorf("%s: stored cost %v", key, rec.Cost)
		}
	}
	check("SO-BIG/at-risk-reprioritise", StatusQueued, "", 1650, 0.6*1650*0.3, 15)
	check("SO-SMALL/at-risk-reprioritise", StatusSuppressed, SuppressedNotWorthIt, 55, 0.6*55*0.3, 15)
	// Not cost-aware: acts on both, records the value all the same (here it
	// would not pay on the small order: 0.6 × 55 × 0.2 = 6.6 > 5 does).
	check("SO-BIG/at-risk-finance", StatusQueued, "", 1650, 0.6*1650*0.2, 5)
	check("SO-SMALL/at-risk-finance", StatusQueued, "", 55, 0.6*55*0.2, 5)
	if d := got["SO-SMALL/at-risk-reprioritise"]; !strings.Contains(d.SuppressedNote, "does not exceed") {
		t.Errorf("suppressed_detail %q does not say why", d.SuppressedNote)
	}
	counts, err := st.Counters(counterSuppressed)
	if err != nil {
		t.Fatal(err)
	}
	if counts[SuppressedNotWorthIt] != 1 {
		t.Errorf("suppressed counters %v, want %s: 1", counts, SuppressedNotWorthIt)
	}
	out, err := st.OutboxPage("", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Errorf("outbox holds %d commands, want 3 (not the one not worth it)", len(out))
	}
}

// TestPolicyWithoutCostsRecordsNone: decisions of a policy without costs: carry
// no cost, and their records stay what they were.
func TestPolicyWithoutCostsRecordsNone(t *testing.T) {
	p, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var v features.Vector
	in := &Input{OrderID: "SO-1", Risk: 0.9, Features: &v, State: &features.OrderState{OrderID: "SO-1", Value: 500}}
	d := p.decision(&p.Rules[0], in, 1)
	if d.Cost != nil {
		t.Errorf("cost %+v, want none", *d.Cost)
	}
	raw, err := d.appendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), `"cost"`) {
		t.Errorf("record %s has a cost", raw)
	}
}

func TestParsePolicyCostErrors(t *testing.T) {
	const rules = "rules:\n- {id: a, action: notify_customer_service, mode: auto, cost_aware: true, when: {risk: {gte: 0.5}}}\n"
	costs := func(s string) string { return "version: v1\ncosts:\n" + s + rules }
	const ok = "  missed_cutoff: {base: 50}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"
	if _, err := ParsePolicy([]byte(costs(ok))); err != nil {
		t.Fatalf("a valid costs section: %v", err)
	}
	cases := []struct{ name, doc, want string }{
		{"cost_aware without costs", "version: v1\n" + rules, "cost_aware needs a costs: section"},
		{"negative base", costs("  missed_cutoff: {base: -5}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.missed_cutoff.base -5"},
		{"negative per_value", costs("  missed_cutoff: {base: 5, per_value: -0.1}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.missed_cutoff.per_value -0.1"},
		{"no miss cost", costs("  missed_cutoff: {tier: {gold: 2}}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.missed_cutoff gives no cost"},
		{"unknown tier", costs("  missed_cutoff: {base: 5, tier: {diamond: 4}}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.missed_cutoff.tier.diamond: unknown customer tier"},
		{"negative tier", costs("  missed_cutoff: {base: 5, tier: {gold: -1}}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.missed_cutoff.tier.gold -1"},
		{"negative action cost", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: -2}\n  effect: {notify_customer_service: 0.1}\n"), "costs.actions.notify_customer_service -2"},
		{"unknown action cost", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2, teleport: 1}\n  effect: {notify_customer_service: 0.1}\n"), "costs.actions.teleport: unknown action"},
		{"escalate has no cost", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2, escalate: 1}\n  effect: {notify_customer_service: 0.1}\n"), "costs.actions.escalate: unknown action"},
		{"effect above 1", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 1.5}\n"), "costs.effect.notify_customer_service 1.5 is outside 0..1"},
		{"negative effect", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: -0.1}\n"), "costs.effect.notify_customer_service -0.1 is outside 0..1"},
		{"NaN effect", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: .nan}\n"), "is outside 0..1"},
		{"unknown effect action", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2}\n  effect: {notify_customer_service: 0.1, teleport: 0.5}\n"), "costs.effect.teleport: unknown action"},
		{"cost_aware without the action's cost", costs("  missed_cutoff: {base: 5}\n  effect: {notify_customer_service: 0.1}\n"), "costs.actions has no cost for notify_customer_service"},
		{"cost_aware without the action's effect", costs("  missed_cutoff: {base: 5}\n  actions: {notify_customer_service: 2}\n"), "costs.effect has no effect for notify_customer_service"},
		{"unknown key", costs(ok + "  currency: EUR\n"), `unknown key "currency"`},
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

// TestCostEncodesAsJSONMarshal holds the decision encoder's cost to json.Marshal,
// odd numbers included.
func TestCostEncodesAsJSONMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		g := recordGen{r}
		d := g.decision()
		f := func() float64 { return oddFloats[r.IntN(len(oddFloats))] }
		d.Cost = &Cost{OrderValue: f(), MissCost: f(), Effect: f(), ExpectedSaving: f(), ActionCost: f()}
		same(t, "decision with cost", &d, d.appendJSON)
	}
	d := Decision{Cost: &Cost{ExpectedSaving: math.Inf(1)}}
	_, err := d.appendJSON(nil)
	if err == nil || !strings.Contains(err.Error(), "field expected_saving") {
		t.Errorf("an infinite saving: error %v, want one naming expected_saving", err)
	}
}

// TestCostAwareRuleActsOnceItPays: a cost-aware rule found not worth it when
// its conditions start to hold decides again, in a new episode, once the risk
// makes it pay while they still hold, and not again in that episode; when they
// stop holding and start again, it judges anew.
func TestCostAwareRuleActsOnceItPays(t *testing.T) {
	p, err := ParsePolicy([]byte(costPolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Miss cost 55: reprioritising (effect 0.3, cost 15) pays above risk 0.909.
	state := &features.OrderState{OrderID: "SO-1", Known: true, CustomerTier: "standard", Value: 100}
	mem := Memory{}
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	type got struct {
		step, episode int
		status        string
	}
	var seen []got
	keys := map[string]bool{}
	for i, risk := range []float64{0.6, 0.8, 0.95, 0.97, 0.3, 0.6, 0.4} {
		var v features.Vector
		b := st.NewBatch()
		ds, err := p.Decide(b, &Input{OrderID: "SO-1", At: at.Add(time.Duration(i) * time.Minute), Risk: risk, Features: &v, State: state}, mem, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range ds {
			if ds[j].RuleID != "at-risk-reprioritise" {
				continue
			}
			if err := p.Record(b, &ds[j]); err != nil {
				t.Fatal(err)
			}
			seen = append(seen, got{i, ds[j].Episode, ds[j].Status})
			keys[ds[j].IdempotencyKey] = true
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		b.Discard()
	}
	want := []got{{0, 1, StatusSuppressed}, {2, 2, StatusQueued}, {5, 3, StatusSuppressed}}
	if len(seen) != len(want) || len(keys) != len(want) {
		t.Fatalf("decisions %v (%d keys), want %v", seen, len(keys), want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("decision %d: %+v, want %+v", i, seen[i], want[i])
		}
	}
	if _, waiting := mem["at-risk-reprioritise~worth"]; waiting || len(mem) != 2 {
		t.Errorf("memory %v: the wait should end when the conditions stop holding", mem)
	}
}
