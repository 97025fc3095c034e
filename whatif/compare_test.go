package whatif

import (
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/process"
)

// rec builds a record at minute m of day 0 with the names interned.
func rec(t *testing.T, n *Names, order, action, rule string, episode int32, m int, status, reason string, lead int32) Record {
	t.Helper()
	at := time.Date(2026, 5, 18, 0, m, 0, 0, time.UTC)
	d := decisionFields{OrderID: order, At: at, Action: action, RuleID: rule, Status: status, SuppressedBy: reason,
		Episode: episode, IdempotencyKey: "0123456789abcdef"}
	d.Features.MinutesToCutoff = float64(lead)
	r, err := record(&d, n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCompareByKey: decisions match by order, action, rule and episode; a
// match with another status is changed, one at another moment moved; a key
// with no decision in the window is not reported.
func TestCompareByKey(t *testing.T) {
	n := NewNames()
	w := Window{From: time.Date(2026, 5, 18, 0, 10, 0, 0, time.UTC), To: time.Date(2026, 5, 18, 2, 0, 0, 0, time.UTC)}
	base := []Record{
		rec(t, n, "SO-1", "notify", "high-risk", 1, 20, "queued", "", 60),
		rec(t, n, "SO-1", "notify", "high-risk", 2, 50, "queued", "", 30),              // removed
		rec(t, n, "SO-2", "notify", "high-risk", 1, 30, "queued", "", 90),              // later in the candidate
		rec(t, n, "SO-3", "flag", "credit", 1, 40, "pending_approval", "", 120),        // changed
		rec(t, n, "SO-4", "notify", "high-risk", 1, 5, "queued", "", 200),              // in the warm-up, both
		rec(t, n, "SO-5", "notify", "high-risk", 1, 5, "queued", "", 200),              // warm-up only: not reported
		rec(t, n, "SO-6", "notify", "high-risk", 1, 5, "queued", "", 200),              // moved into the window
		rec(t, n, "SO-7", "reroute", "shortfall", 1, 70, "suppressed", "cooldown", 10), // same
	}
	cand := []Record{
		rec(t, n, "SO-1", "notify", "high-risk", 1, 20, "queued", "", 60),
		rec(t, n, "SO-2", "notify", "high-risk", 1, 45, "queued", "", 75),
		rec(t, n, "SO-2", "notify", "new-rule", 1, 15, "queued", "", 105), // added
		rec(t, n, "SO-3", "flag", "credit", 1, 40, "suppressed", "rate_limit:customer", 120),
		rec(t, n, "SO-4", "notify", "high-risk", 1, 5, "queued", "", 200),
		rec(t, n, "SO-6", "notify", "high-risk", 1, 12, "queued", "", 193),
		rec(t, n, "SO-7", "reroute", "shortfall", 1, 70, "suppressed", "cooldown", 10),
		rec(t, n, "SO-9", "notify", "high-risk", 1, 130, "queued", "", 10), // after the window: not reported
	}
	SortRecords(base, n)
	SortRecords(cand, n)
	c := compare(base, cand, n, w, 10)
	if c.Added != 1 || c.Removed != 1 || c.Changed != 1 || c.Unchanged != 4 || c.Earlier != 0 || c.Later != 2 {
		t.Fatalf("changes %+v: want 1 added, 1 removed, 1 changed, 4 unchanged of which 2 later", c)
	}
	if c.MedianShift == nil || *c.MedianShift != 7 {
		t.Errorf("median shift %v, want 7 minutes (7 and 15, nearest rank)", c.MedianShift)
	}
	want := []struct{ kind, order, rule string }{{KindAdded, "SO-2", "new-rule"}, {KindRemoved, "SO-1", "high-risk"}, {KindChanged, "SO-3", "credit"}}
	if len(c.List) != len(want) {
		t.Fatalf("listed %d, want %d: %+v", len(c.List), len(want), c.List)
	}
	for i, w := range want {
		if got := c.List[i]; got.Kind != w.kind || got.OrderID != w.order || got.RuleID != w.rule {
			t.Errorf("list[%d] = %s %s %s, want %v", i, got.Kind, got.OrderID, got.RuleID, w)
		}
	}
	if ch := c.List[2]; ch.Baseline.Status != "pending_approval" || ch.Candidate.SuppressedBy != "rate_limit:customer" {
		t.Errorf("changed sides: %+v %+v", ch.Baseline, ch.Candidate)
	}
	if c := compare(base, cand, n, w, 0); len(c.List) != 0 || c.Added != 1 {
		t.Errorf("--list 0 still counts and lists nothing: %+v", c)
	}
}

// TestSummariseQuality: precision and recall count an order acted on before
// its cutoff only; approvals are counted per team and hour; lead times are
// nearest-rank percentiles.
func TestSummariseQuality(t *testing.T) {
	n := NewNames()
	w := Window{From: time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 5, 18, 2, 0, 0, 0, time.UTC)}
	recs := []Record{
		rec(t, n, "SO-1", "notify", "r", 1, 10, "queued", "", 60),           // acted, missed
		rec(t, n, "SO-2", "notify", "r", 1, 20, "queued", "", 30),           // acted, met
		rec(t, n, "SO-3", "notify", "r", 1, 30, "queued", "", -5),           // after the cutoff: not acted on
		rec(t, n, "SO-4", "flag", "r", 1, 40, "shadow", "", 100),            // shadow: not acted on
		rec(t, n, "SO-5", "flag", "r", 1, 50, "suppressed", "cooldown", 90), // suppressed
	}
	for i := range recs {
		recs[i].Team, _ = n.id("credit-desk")
	}
	recs[1].Status, _ = n.id("pending_approval")
	outcomes := map[string]process.Label{"SO-1": {MissedCutoff: true}, "SO-2": {}, "SO-3": {MissedCutoff: true}, "SO-4": {MissedCutoff: true}}
	scored := map[string]orderFacts{"SO-1": {}, "SO-2": {}, "SO-3": {}, "SO-4": {}, "SO-5": {}}
	s := summarise(recs, n, w, outcomes, scored)
	q := s.Quality
	if q.ActedOrders != 2 || q.ActedKnown != 2 || q.ActedMissed != 1 || *q.Precision != 0.5 {
		t.Errorf("precision: %+v", q)
	}
	if q.MissedOrders != 3 || q.MissedActed != 1 || *q.Recall != 0.3333 {
		t.Errorf("recall: %+v", q)
	}
	if s.ActedLate != 1 || s.Suppressed["cooldown"] != 1 || s.ByStatus["shadow"] != 1 {
		t.Errorf("summary: %+v", s)
	}
	if len(s.Approvals) != 1 || s.Approvals[0] != (TeamApprovals{Team: "credit-desk", Count: 1, PerHour: 0.5, Peak: 1}) {
		t.Errorf("approvals: %+v", s.Approvals)
	}
	if s.LeadTime.Count != 3 || *s.LeadTime.Median != 30 || *s.LeadTime.P10 != -5 {
		t.Errorf("lead time: %d, median %v, p10 %v; want 3, 30, -5", s.LeadTime.Count, *s.LeadTime.Median, *s.LeadTime.P10)
	}
}
