package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// incidentKinds maps the simulator's kinds of shared cause to the kind of the
// incidents that should group their orders (the first segment of a cause key).
var incidentKinds = map[string]string{
	sim.CauseEDIMapping:      "integration",
	sim.CauseCarrierPickup:   "carrier",
	sim.CauseWarehouseOutage: "warehouse",
	sim.CausePriceContract:   "price_contract",
}

// groupingScore is the pairwise precision and recall of incident membership
// for one kind of cause: a pair of orders is grouped when an incident holds
// both, truly together when one cause of the simulator touched both.
type groupingScore struct {
	kind                   string
	causes, incidents      int // with two orders or more
	grouped, together, hit int // pairs
}

func (g groupingScore) precision() float64 { return ratio(g.hit, g.grouped) }
func (g groupingScore) recall() float64    { return ratio(g.hit, g.together) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// pairs adds the pairs of orders of each cluster to set and returns how many
// clusters have two orders or more.
func pairs(clusters map[string][]string, set map[[2]string]bool) int {
	n := 0
	for _, orders := range clusters {
		slices.Sort(orders)
		orders = slices.Compact(orders)
		if len(orders) > 1 {
			n++
		}
		for i := range orders {
			for j := i + 1; j < len(orders); j++ {
				set[[2]string{orders[i], orders[j]}] = true
			}
		}
	}
	return n
}

// TestIncidentGroupingAgainstTheSimulator replays days of the simulator's
// incidents scenario (map breaks, WMS outages, carrier failures, expired price
// contracts) through the shipped policy and scores the incidents it groups
// against the simulator's ground truth of shared causes. The README's figures
// come from ORDERWATCH_INCIDENT_DAYS=7 (a week); make test runs one day, in
// which each kind of cause touches two orders or more at least once.
func TestIncidentGroupingAgainstTheSimulator(t *testing.T) {
	days := 1
	if v := os.Getenv("ORDERWATCH_INCIDENT_DAYS"); v != "" {
		d, err := strconv.Atoi(v)
		if err != nil || d < 1 {
			t.Fatalf("ORDERWATCH_INCIDENT_DAYS=%q: want a number of days", v)
		}
		days = d
	}
	truth := map[string]map[string][]string{} // kind -> cause id -> orders
	s, err := sim.New(sim.Options{Scenario: sim.Incidents, Orders: int64(days) * 5700, Seed: 18, Warmup: 48 * time.Hour,
		Causes: func(c sim.Cause) {
			if truth[c.Kind] == nil {
				truth[c.Kind] = map[string][]string{}
			}
			truth[c.Kind][c.ID] = append(truth[c.Kind][c.ID], c.OrderID)
		}})
	if err != nil {
		t.Fatal(err)
	}
	var events bytes.Buffer
	if err := s.Run(context.Background(), func(e *sim.Emitted) error {
		events.Write(e.Data)
		return events.WriteByte('\n')
	}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := process.Replay(context.Background(), &events, process.ReplayOptions{Store: st, Policy: actions.NewLive(policy)}); err != nil {
		t.Fatal(err)
	}
	// Membership from the exception records, which name their incident: an
	// incident's own list stops at process.MaxIncidentOrders.
	found := map[string]map[string][]string{} // kind -> incident id -> orders
	incidents := map[string]bool{}
	for after := ""; ; {
		page, next, err := st.ExceptionsPage(after, 1000, func([]byte) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			var x process.Exception
			if err := json.Unmarshal(v, &x); err != nil {
				t.Fatal(err)
			}
			if x.Incident == "" {
				continue
			}
			kind, _, _ := strings.Cut(x.Cause, "/")
			if found[kind] == nil {
				found[kind] = map[string][]string{}
			}
			found[kind][x.Incident] = append(found[kind][x.Incident], x.Order)
			incidents[x.Incident] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	stats := s.Stats()
	t.Logf("%d days of the incidents scenario: %d events, %d orders, %d incidents", days, stats.Events, stats.Orders, len(incidents))
	for _, kind := range []string{sim.CauseEDIMapping, sim.CauseWarehouseOutage, sim.CauseCarrierPickup, sim.CausePriceContract} {
		g := groupingScore{kind: kind}
		want, got := map[[2]string]bool{}, map[[2]string]bool{}
		g.causes = pairs(truth[kind], want)
		g.incidents = pairs(found[incidentKinds[kind]], got)
		g.together, g.grouped = len(want), len(got)
		for p := range got {
			if want[p] {
				g.hit++
			}
		}
		t.Logf("%-16s causes %4d, incidents %4d (two orders or more); pairs together %7d, grouped %7d, both %7d: precision %.3f, recall %.3f",
			kind, g.causes, g.incidents, g.together, g.grouped, g.hit, g.precision(), g.recall())
		if g.causes == 0 {
			t.Errorf("%s: no cause touched two orders: the scenario measures nothing of it", kind)
			continue
		}
		// Floors under what the shipped grouping measures (README: 0.94 and
		// more), so a regression fails and the simulator's draws do not.
		if g.precision() < 0.8 || g.recall() < 0.8 {
			t.Errorf("%s: precision %.3f, recall %.3f: want at least 0.8 each", kind, g.precision(), g.recall())
		}
	}
}
