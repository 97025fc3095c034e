package whatif

import (
	"math"
	"slices"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

// CostSummary is a run's expected cost in the window, priced by one cost table
// (Report.CostsFrom) for both runs so that they compare:
//
//   - ActionSpend: the cost of every acted decision (queued or pending
//     approval: an approval is assumed given);
//   - MissCost: over the orders scored in the window whose outcome is a missed
//     cutoff, each one's miss cost times the share of it not averted by the
//     actions taken on it before its cutoff (1 − Π over its distinct actions of
//     (1 − effect)); Averted is the rest;
//   - ExpectedCost = ActionSpend + MissCost;
//   - ExpectedSaving: what the acted decisions expected to save when taken,
//     each risk × miss cost × effect.
//
// The outcomes are those of the recorded stream, where no action was taken:
// what the actions avert is the policy's stated effect, an assumption.
type CostSummary struct {
	ActionSpend    float64 `json:"action_spend"`
	MissCost       float64 `json:"miss_cost"`
	Averted        float64 `json:"miss_cost_averted"`
	ExpectedCost   float64 `json:"expected_cost"`
	ExpectedSaving float64 `json:"expected_saving"`
}

// orderFacts is what an order's miss cost depends on, as of a scoring.
type orderFacts struct {
	value float32 // the order's value
	tier  uint8   // 1 + its index in features.CustomerTiers; 0: none known
}

// factsOf reads an order's value and tier from its feature vector (log_value
// is ln(1 + value), customer_tier the tier's rank).
func factsOf(v *features.Vector) orderFacts {
	return orderFacts{value: float32(math.Expm1(float64(v[features.FLogValue]))), tier: tierRank(float64(v[features.FCustomerTier]))}
}

func tierRank(f float64) uint8 {
	if f >= 1 && f <= float64(len(features.CustomerTiers)) {
		return uint8(f)
	}
	return 0
}

func (o orderFacts) tierName() string {
	if o.tier == 0 {
		return ""
	}
	return features.CustomerTiers[o.tier-1]
}

// expectedCost prices a run's records in the window with costs.
func expectedCost(recs []Record, names *Names, w Window, outcomes map[string]process.Label, scored map[string]orderFacts, costs *actions.Costs) *CostSummary {
	n := names.all()
	var c CostSummary
	before := map[string][]uint16{} // per order, the actions acted on it before its cutoff
	for i := range recs {
		r := &recs[i]
		if !w.contains(r.At) || !acted(n[r.Status]) {
			continue
		}
		action := n[r.Action]
		c.ActionSpend += costs.Actions[action]
		f := orderFacts{value: r.Value, tier: r.Tier}
		c.ExpectedSaving += float64(r.Risk) * costs.Miss(float64(f.value), f.tierName()) * costs.Effect[action]
		if r.Lead > 0 {
			if as := before[r.Order]; !slices.Contains(as, r.Action) {
				before[r.Order] = append(as, r.Action)
			}
		}
	}
	// In order id order, so that equal runs sum to equal figures.
	missed := make([]string, 0, len(outcomes))
	for o := range scored {
		if l, ok := outcomes[o]; ok && l.MissedCutoff {
			missed = append(missed, o)
		}
	}
	slices.Sort(missed)
	for _, o := range missed {
		f := scored[o]
		miss := costs.Miss(float64(f.value), f.tierName())
		left := 1.0
		for _, a := range before[o] {
			left *= 1 - costs.Effect[n[a]]
		}
		c.MissCost += miss * left
		c.Averted += miss * (1 - left)
	}
	c.ExpectedCost = c.ActionSpend + c.MissCost
	for _, v := range []*float64{&c.ActionSpend, &c.MissCost, &c.Averted, &c.ExpectedCost, &c.ExpectedSaving} {
		*v = round(*v, 2)
	}
	return &c
}
