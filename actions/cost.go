package actions

import (
	"fmt"
	"math"
	"slices"

	"github.com/orderwatch/orderwatch/features"
)

// Costs is the policy's costs: section, in one currency unit. With it, every
// decision records its expected value (Cost), and a rule with cost_aware acts only
// when that pays:
//
//	miss_cost       = (missed_cutoff.base + missed_cutoff.per_value × order value) × missed_cutoff.tier[customer tier]
//	expected_saving = risk × miss_cost × effect[action]
//	act only if       expected_saving > actions[action]
//
// A tier not listed (or an order with none) counts 1; an action not listed costs 0
// and averts nothing.
type Costs struct {
	MissedCutoff MissCost `yaml:"missed_cutoff" json:"missed_cutoff"`
	// Actions is the cost of taking each action once.
	Actions map[string]float64 `yaml:"actions" json:"actions,omitempty"`
	// Effect is, per action, the share of a miss the action averts, in [0, 1]:
	// an assumption the policy states, for the expected saving.
	Effect map[string]float64 `yaml:"effect" json:"effect,omitempty"`
}

// MissCost is the cost of an order missing its ship cutoff: Base plus PerValue
// times the order's value, times the factor of the customer's tier.
type MissCost struct {
	Base     float64            `yaml:"base" json:"base"`
	PerValue float64            `yaml:"per_value" json:"per_value"`
	Tier     map[string]float64 `yaml:"tier" json:"tier,omitempty"`
}

// Cost is the expected value of one decision, by Costs.Estimate: what it records
// as "cost".
type Cost struct {
	OrderValue     float64 `json:"order_value"`     // the order's value at the decision
	MissCost       float64 `json:"miss_cost"`       // what a miss of this order costs
	Effect         float64 `json:"effect"`          // the share of a miss the action averts
	ExpectedSaving float64 `json:"expected_saving"` // risk × miss_cost × effect
	ActionCost     float64 `json:"action_cost"`     // what taking the action costs
}

// Worth reports whether the expected saving exceeds the action's cost.
func (c *Cost) Worth() bool { return c.ExpectedSaving > c.ActionCost }

// Miss returns the cost of a miss of an order of the value and customer tier.
func (c *Costs) Miss(value float64, tier string) float64 {
	f, ok := c.MissedCutoff.Tier[tier]
	if !ok {
		f = 1
	}
	return (c.MissedCutoff.Base + c.MissedCutoff.PerValue*max(value, 0)) * f
}

// Estimate returns the expected value of taking action for an order of the
// value and customer tier at the risk.
func (c *Costs) Estimate(action string, risk, value float64, tier string) Cost {
	miss := c.Miss(value, tier)
	eff := c.Effect[action]
	return Cost{OrderValue: max(value, 0), MissCost: miss, Effect: eff, ExpectedSaving: risk * miss * eff, ActionCost: c.Actions[action]}
}

// estimate returns the expected value of the rule's action for the order when
// the policy states costs, else nil.
func (p *Policy) estimate(r *Rule, in *Input) *Cost {
	if p.Costs == nil {
		return nil
	}
	c := p.Costs.Estimate(r.Action, in.Risk, in.State.Value, in.State.CustomerTier)
	return &c
}

// nowWorth reports, for a rule whose conditions still hold, whether it was
// found not worth it in its episode and now pays: then it decides again, in a
// new episode. Its memory keeps the wait under waitKey ('~' is not allowed in
// rule ids).
func (p *Policy) nowWorth(r *Rule, in *Input, mem Memory) bool {
	if !r.CostAware || p.Costs == nil || !mem[r.waitKey].Active {
		return false
	}
	c := p.Costs.Estimate(r.Action, in.Risk, in.State.Value, in.State.CustomerTier)
	if !c.Worth() {
		return false
	}
	delete(mem, r.waitKey)
	return true
}

// notWorth reports whether a cost-aware rule's decision d is not worth taking,
// and why.
func notWorth(r *Rule, d *Decision) (bool, string) {
	c := d.Cost
	if !r.CostAware || c == nil || c.Worth() {
		return false, ""
	}
	return true, fmt.Sprintf("expected saving %.2f (risk %.3f × miss cost %.2f × effect %.2f) does not exceed the cost of %s, %.2f",
		c.ExpectedSaving, d.Scores["cutoff_risk"], c.MissCost, c.Effect, r.Action, c.ActionCost)
}

// validate checks the costs: section and the cost-aware rules.
func (c *Costs) validate(rules []Rule) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c == nil {
		for i := range rules {
			if rules[i].CostAware {
				bad("rules[%d] (%s).cost_aware needs a costs: section (missed_cutoff, actions, effect)", i, rules[i].ID)
			}
		}
		return errs
	}
	amount := func(at string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad("%s %v: want a finite amount of zero or more", at, v)
		}
	}
	ruleActions := slices.DeleteFunc(slices.Clone(Actions), func(a string) bool { return a == ActionEscalate })
	m := &c.MissedCutoff
	amount("costs.missed_cutoff.base", m.Base)
	amount("costs.missed_cutoff.per_value", m.PerValue)
	if m.Base == 0 && m.PerValue == 0 {
		bad("costs.missed_cutoff gives no cost: set base, per_value or both")
	}
	for _, tier := range sortedKeys(m.Tier) {
		if !slices.Contains(features.CustomerTiers, tier) {
			bad("costs.missed_cutoff.tier.%s: unknown customer tier, want one of %v", tier, features.CustomerTiers)
		}
		amount("costs.missed_cutoff.tier."+tier, m.Tier[tier])
	}
	for _, a := range sortedKeys(c.Actions) {
		if !slices.Contains(ruleActions, a) {
			bad("costs.actions.%s: unknown action, want one of %v", a, ruleActions)
		}
		amount("costs.actions."+a, c.Actions[a])
	}
	for _, a := range sortedKeys(c.Effect) {
		if !slices.Contains(ruleActions, a) {
			bad("costs.effect.%s: unknown action, want one of %v", a, ruleActions)
		}
		if v := c.Effect[a]; !(v >= 0 && v <= 1) {
			bad("costs.effect.%s %v is outside 0..1: give the share of a miss the action averts", a, v)
		}
	}
	for i := range rules {
		r := &rules[i]
		if !r.CostAware {
			continue
		}
		if _, ok := c.Actions[r.Action]; !ok {
			bad("rules[%d] (%s).cost_aware: costs.actions has no cost for %s", i, r.ID, r.Action)
		}
		if _, ok := c.Effect[r.Action]; !ok {
			bad("rules[%d] (%s).cost_aware: costs.effect has no effect for %s", i, r.ID, r.Action)
		}
	}
	return errs
}
