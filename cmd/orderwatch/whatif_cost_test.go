package main

import (
	"math"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/whatif"
)

// whatifCosts prices misses and actions for the cost tests (currency units).
const whatifCosts = `
costs:
  missed_cutoff: {base: 50, per_value: 0.05, tier: {platinum: 3, gold: 2, silver: 1.5, standard: 1}}
  actions: {notify_customer_service: 20, request_warehouse_reprioritisation: 15, validate_carrier_capacity: 10, flag_finance: 5, reroute_warehouse: 120}
  effect: {notify_customer_service: 0.1, request_warehouse_reprioritisation: 0.3, validate_carrier_capacity: 0.2, flag_finance: 0.2, reroute_warehouse: 0.5}
`

// TestWhatifCostAwareRuleActsLess: a candidate that prices misses and actions
// and makes the high-risk notification cost-aware notifies less: the
// notifications whose expected saving does not exceed their cost change to
// suppressed (not_worth_it), a few of them are added later in their episode
// once the risk makes them pay, nothing else changes, and both runs' expected
// cost is reported, priced by the candidate's costs.
func TestWhatifCostAwareRuleActsLess(t *testing.T) {
	events := whatifEvents(t)
	cand := candidatePolicy(t, func(p string) string {
		const rule = "  - id: high-risk-notify-cs\n"
		if strings.Count(p, rule) != 1 {
			t.Fatal("the shipped policy no longer has rule high-risk-notify-cs")
		}
		p = strings.Replace(p, rule, rule+"    cost_aware: true\n", 1)
		return strings.Replace(p, "\nrules:\n", whatifCosts+"\nrules:\n", 1)
	})
	code, rep, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--candidate-policy", cand, "--list", "1000"}, whatifWindow...)...)
	if code != whatifOK || rep == nil {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	const notify = actions.ActionNotifyCS
	b, c := &rep.Baseline, &rep.Candidate
	t.Logf("notifications acted: baseline %d, candidate %d; not worth it %d; expected cost %+v -> %+v",
		b.ByAction[notify], c.ByAction[notify], c.Suppressed[actions.SuppressedNotWorthIt], b.Cost, c.Cost)
	if c.ByAction[notify] == 0 || c.ByAction[notify] >= b.ByAction[notify] {
		t.Errorf("acted notifications: baseline %d, candidate %d: want fewer, not none", b.ByAction[notify], c.ByAction[notify])
	}
	ch := rep.Changes
	if ch.Changed == 0 || ch.Removed != 0 || len(ch.List) != ch.Changed+ch.Added {
		t.Fatalf("changes %d added, %d removed, %d changed (%d listed): want changed, and added ones", ch.Added, ch.Removed, ch.Changed, len(ch.List))
	}
	if n := c.Suppressed[actions.SuppressedNotWorthIt]; n != ch.Changed || b.Suppressed[actions.SuppressedNotWorthIt] != 0 {
		t.Errorf("not_worth_it: baseline %d, candidate %d; want the candidate's %d changes", b.Suppressed[actions.SuppressedNotWorthIt], n, ch.Changed)
	}
	// A notification not worth it was acted on in the baseline, or suppressed
	// there by a later check (the cooldown): not_worth_it comes first.
	fewer := 0
	for _, x := range ch.List {
		if x.Kind == whatif.KindAdded {
			// Not worth it at first, it paid later in the episode: acted then.
			if x.RuleID != "high-risk-notify-cs" || x.Candidate.Status != actions.StatusQueued {
				t.Errorf("an added decision that is not a notification acted once it paid: %+v %+v", x, x.Candidate)
			}
			continue
		}
		if x.RuleID != "high-risk-notify-cs" || x.Candidate.SuppressedBy != actions.SuppressedNotWorthIt {
			t.Errorf("a change that is not a notification found not worth it: %+v %+v %+v", x, x.Baseline, x.Candidate)
		}
		switch x.Baseline.Status {
		case actions.StatusQueued:
			fewer++
		case actions.StatusSuppressed:
		default:
			t.Errorf("baseline side %+v: want queued or suppressed", x.Baseline)
		}
	}
	if fewer-ch.Added != b.ByAction[notify]-c.ByAction[notify] {
		t.Errorf("%d queued notifications became not_worth_it and %d were added once they paid; the candidate notifies %d fewer",
			fewer, ch.Added, b.ByAction[notify]-c.ByAction[notify])
	}
	if rep.CostsFrom != "candidate" || b.Cost == nil || c.Cost == nil {
		t.Fatalf("costs from %q, baseline %v, candidate %v: want both priced by the candidate's costs", rep.CostsFrom, b.Cost, c.Cost)
	}
	prices := map[string]float64{notify: 20, actions.ActionReprioritise: 15, actions.ActionValidateCarier: 10, actions.ActionFlagFinance: 5, actions.ActionReroute: 120}
	for _, s := range []*whatif.Summary{b, c} {
		spend := 0.0
		for a, n := range s.ByAction {
			spend += float64(n) * prices[a]
		}
		if math.Abs(s.Cost.ActionSpend-spend) > 0.005 {
			t.Errorf("action spend %.2f, want %.2f: the acted decisions times their cost", s.Cost.ActionSpend, spend)
		}
		if math.Abs(s.Cost.ExpectedCost-(s.Cost.ActionSpend+s.Cost.MissCost)) > 0.011 || s.Cost.MissCost <= 0 || s.Cost.ExpectedSaving <= 0 {
			t.Errorf("cost %+v: want expected cost = action spend + misses not averted, both above 0", *s.Cost)
		}
	}
	if c.Cost.ActionSpend >= b.Cost.ActionSpend || c.Cost.Averted > b.Cost.Averted {
		t.Errorf("fewer notifications should spend less and avert no more: baseline %+v, candidate %+v", *b.Cost, *c.Cost)
	}
	// The misses not averted and those averted are the same missed orders.
	if tb, tc := b.Cost.MissCost+b.Cost.Averted, c.Cost.MissCost+c.Cost.Averted; math.Abs(tb-tc) > 0.02 {
		t.Errorf("the missed orders' cost: baseline %.2f, candidate %.2f; want the same", tb, tc)
	}
	if !strings.Contains(out, "| expected cost (actions + misses not averted; costs of the candidate) |") ||
		!strings.Contains(out, "| suppressed: not_worth_it | 0 |") {
		t.Errorf("the Markdown report lacks the expected cost or the not_worth_it line:\n%s", out)
	}
}
