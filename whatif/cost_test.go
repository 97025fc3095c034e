package whatif

import (
	"math"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

// TestExpectedCost: the spend counts every acted decision in the window; a
// missed order's cost is reduced by the effects of the distinct actions taken
// on it before its cutoff; the saving is what the acted decisions expected.
func TestExpectedCost(t *testing.T) {
	p, err := actions.ParsePolicy([]byte(`version: v1
costs:
  missed_cutoff: {base: 100, per_value: 0.1, tier: {gold: 2}}
  actions: {notify_customer_service: 10, flag_finance: 4}
  effect: {notify_customer_service: 0.5, flag_finance: 0.2}
rules:
  - {id: r, action: notify_customer_service, mode: auto, when: {risk: {gte: 0.5}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	n := NewNames()
	w := Window{From: time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 5, 18, 2, 0, 0, 0, time.UTC)}
	recs := []Record{
		rec(t, n, "SO-1", "notify_customer_service", "r", 1, 10, "queued", "", 60),      // missed, averted half
		rec(t, n, "SO-1", "notify_customer_service", "r", 2, 20, "queued", "", 50),      // same action again: spends, averts no more
		rec(t, n, "SO-1", "flag_finance", "f", 1, 30, "pending_approval", "", 40),       // and 0.2 of the rest
		rec(t, n, "SO-2", "notify_customer_service", "r", 1, 40, "queued", "", -5),      // after the cutoff: spends, averts nothing
		rec(t, n, "SO-3", "notify_customer_service", "r", 1, 50, "suppressed", "x", 90), // not acted
		rec(t, n, "SO-4", "notify_customer_service", "r", 1, 200, "queued", "", 90),     // after the window
	}
	for i := range recs {
		recs[i].Risk, recs[i].Value, recs[i].Tier = 0.5, 1000, 3 // gold: miss cost (100 + 100) × 2 = 400
	}
	outcomes := map[string]process.Label{"SO-1": {MissedCutoff: true}, "SO-2": {MissedCutoff: true}, "SO-3": {MissedCutoff: true}, "SO-5": {}}
	var gold, none features.Vector
	gold[features.FLogValue], gold[features.FCustomerTier] = float32(math.Log1p(1000)), 3
	none[features.FLogValue] = float32(math.Log1p(500))
	scored := map[string]orderFacts{"SO-1": factsOf(&gold), "SO-2": factsOf(&gold), "SO-3": factsOf(&none), "SO-5": factsOf(&gold)}
	c := expectedCost(recs, n, w, outcomes, scored, p.Costs)
	// SO-1: 400 × 0.5 × 0.8 = 160 left, 240 averted; SO-2: 400 left; SO-3
	// (no tier: 1): 100 + 50 = 150 left.
	want := CostSummary{ActionSpend: 10 + 10 + 4 + 10, MissCost: 160 + 400 + 150, Averted: 240, ExpectedCost: 34 + 710,
		ExpectedSaving: 0.5*400*0.5*3 + 0.5*400*0.2}
	if math.Abs(c.MissCost-want.MissCost) > 0.011 || math.Abs(c.Averted-want.Averted) > 0.011 || c.ActionSpend != want.ActionSpend ||
		math.Abs(c.ExpectedCost-want.ExpectedCost) > 0.011 || math.Abs(c.ExpectedSaving-want.ExpectedSaving) > 0.011 {
		t.Errorf("expected cost %+v, want %+v", *c, want)
	}
}
