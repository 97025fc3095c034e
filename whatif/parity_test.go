package whatif

import (
	"slices"
	"testing"
	"time"
)

// TestParityNamesReasons: keys both decide alike match (one at another
// moment); a difference names what it can: another policy version, a kill
// switch, a cooldown or limit on one side only, another episode; else
// unexplained. Decisions outside the window are not compared.
func TestParityNamesReasons(t *testing.T) {
	n := NewNames()
	w := Window{From: time.Date(2026, 5, 18, 0, 10, 0, 0, time.UTC), To: time.Date(2026, 5, 18, 2, 0, 0, 0, time.UTC)}
	recorded := []Record{
		rec(t, n, "SO-1", "notify", "high-risk", 1, 20, "queued", "", 60),
		rec(t, n, "SO-2", "notify", "high-risk", 1, 31, "queued", "", 90),                    // at another moment
		rec(t, n, "SO-3", "flag", "credit", 1, 40, "suppressed", "kill_switch:runtime", 120), // kill switch
		rec(t, n, "SO-4", "notify", "high-risk", 1, 50, "queued", "", 30),                    // replay: rate limit
		rec(t, n, "SO-5", "notify", "high-risk", 3, 60, "queued", "", 30),                    // replay: episode 2
		rec(t, n, "SO-6", "reroute", "shortfall", 1, 70, "pending_approval", "", 30),         // policy version
		rec(t, n, "SO-7", "notify", "high-risk", 1, 80, "queued", "", 30),                    // only recorded
	}
	replayed := []Record{
		rec(t, n, "SO-0", "notify", "high-risk", 1, 5, "queued", "", 60), // in the warm-up: not compared
		rec(t, n, "SO-1", "notify", "high-risk", 1, 20, "queued", "", 60),
		rec(t, n, "SO-2", "notify", "high-risk", 1, 30, "queued", "", 90),
		rec(t, n, "SO-3", "flag", "credit", 1, 40, "pending_approval", "", 120),
		rec(t, n, "SO-4", "notify", "high-risk", 1, 50, "suppressed", "rate_limit:warehouse", 30),
		rec(t, n, "SO-5", "notify", "high-risk", 2, 60, "queued", "", 30),
		rec(t, n, "SO-6", "reroute", "shortfall", 1, 70, "suppressed", "no_alternative", 30),
	}
	SortRecords(recorded, n)
	SortRecords(replayed, n)
	other := map[string]string{}
	for i := range recorded {
		if recorded[i].Order == "SO-6" {
			other[recorded[i].decisionID()] = "2026-10-actions-0"
		}
	}
	p := compareParity(recorded, replayed, other, n, w, 20)
	if p.Recorded != 7 || p.Replayed != 6 || p.Matched != 2 || p.AtOtherMoment != 1 || p.OnlyRecorded != 2 || p.OnlyReplayed != 1 || p.Differing != 3 {
		t.Fatalf("counts: %+v", p)
	}
	want := map[string][]string{
		"SO-3": {ReasonKillSwitch},
		"SO-4": {ReasonGovernance},
		"SO-5": {ReasonEpisode},
		"SO-6": {ReasonPolicyVersion},
		"SO-7": {ReasonUnexplained},
	}
	for _, d := range p.List {
		if w, ok := want[d.OrderID]; ok && !slices.Equal(d.Reasons, w) {
			t.Errorf("%s %s: reasons %v, want %v", d.OrderID, d.Kind, d.Reasons, w)
		}
	}
	if p.Reasons[ReasonEpisode] != 2 || p.Mismatched() != 6 {
		t.Errorf("reasons %v, mismatched %d: want the episode named on both sides of SO-5, 6 in all", p.Reasons, p.Mismatched())
	}
}
