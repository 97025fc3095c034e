package whatif

import (
	"cmp"
	"slices"
	"time"
)

// Kinds of change, the values --fail-on takes.
const (
	KindAdded   = "added"   // the candidate decides it, the baseline does not
	KindRemoved = "removed" // the baseline decides it, the candidate does not
	KindChanged = "changed" // both decide it, with another outcome
)

// Kinds are the kinds of change, in report order.
var Kinds = []string{KindAdded, KindRemoved, KindChanged}

// Changes is how the candidate's decisions differ from the baseline's.
// Decisions are the same when they have the same key: order, action, rule and
// the rule's episode for the order (the n-th time its conditions started to
// hold, counted from the replay's start, warm-up included). A rule acts once
// per episode, so a threshold moved within a rule keeps its decisions' keys:
// they are changed, decided earlier or later, and the episodes the new
// threshold creates or ends are added or removed; a new rule adds, a rule
// taken out removes, a renamed rule does both. A key is reported when a
// decision of it is in the window.
type Changes struct {
	Added   int `json:"added"`
	Removed int `json:"removed"`
	// Changed counts keys both decide, with another outcome (status: queued,
	// pending approval, suppressed, shadow; suppression reason, reroute target
	// or team) or at another moment. Moved counts those of them with the same
	// outcome at another moment; Earlier and Later split the keys decided at
	// another moment (moved or not), by a median of MedianShift minutes
	// (candidate minus baseline; nil when none moved).
	Changed     int      `json:"changed"`
	Moved       int      `json:"moved"`
	Earlier     int      `json:"earlier"`
	Later       int      `json:"later"`
	MedianShift *float64 `json:"median_shift_minutes"`
	// Unchanged counts keys both decide alike, at the same moment.
	Unchanged int `json:"unchanged"`
	// List holds the first Listed changes of each kind by time (the
	// candidate's decision's, else the baseline's).
	Listed int      `json:"listed"`
	List   []Change `json:"list"`
}

// Count returns the changes of a kind.
func (c *Changes) Count(kind string) int {
	switch kind {
	case KindAdded:
		return c.Added
	case KindRemoved:
		return c.Removed
	case KindChanged:
		return c.Changed
	}
	return 0
}

// Change is one key the runs decide differently.
type Change struct {
	Kind    string `json:"kind"`
	OrderID string `json:"order_id"`
	Action  string `json:"action"`
	RuleID  string `json:"rule_id"`
	Episode int    `json:"episode"`
	// What says what changed of a changed key: "outcome", "moment" or both.
	What      []string `json:"what,omitempty"`
	Baseline  *Side    `json:"baseline,omitempty"`
	Candidate *Side    `json:"candidate,omitempty"`
}

// Side is one run's decision of a change.
type Side struct {
	At           time.Time `json:"at"`
	Status       string    `json:"status"`
	SuppressedBy string    `json:"suppressed_by,omitempty"`
	Target       string    `json:"target,omitempty"`
	Team         string    `json:"team,omitempty"`
	Risk         float64   `json:"risk"`
	LeadMinutes  int       `json:"lead_minutes"`
	Model        string    `json:"model"`
	Reasons      []string  `json:"reasons,omitempty"` // the risk's top drivers
	id           string    // the decision's id, to read its reasons
}

// diff is a change by the records' indices, -1 for a side that has none.
type diff struct {
	kind       string
	base, cand int32
	at         int64
}

// compare merges the two runs' records (each sorted by SortRecords) by key.
func compare(base, cand []Record, names *Names, w Window, list int) Changes {
	n := names.all()
	var (
		c      Changes
		diffs  []diff
		shifts []float64
	)
	key := func(a, b *Record) int { return compareKeys(a, b, n) }
	i, j := 0, 0
	for i < len(base) || j < len(cand) {
		var k int
		switch {
		case i == len(base):
			k = 1
		case j == len(cand):
			k = -1
		default:
			k = key(&base[i], &cand[j])
		}
		switch k {
		case -1:
			if b := &base[i]; w.contains(b.At) {
				c.Removed++
				diffs = append(diffs, diff{KindRemoved, int32(i), -1, b.At})
			}
			i++
		case 1:
			if a := &cand[j]; w.contains(a.At) {
				c.Added++
				diffs = append(diffs, diff{KindAdded, -1, int32(j), a.At})
			}
			j++
		default:
			b, a := &base[i], &cand[j]
			if w.contains(b.At) || w.contains(a.At) {
				outcome := b.Status != a.Status || b.Reason != a.Reason || b.Target != a.Target || b.Team != a.Team
				switch {
				case a.At < b.At:
					c.Earlier++
				case a.At > b.At:
					c.Later++
				}
				if a.At != b.At {
					shifts = append(shifts, float64(a.At-b.At)/float64(time.Minute))
				}
				switch {
				case outcome || a.At != b.At:
					c.Changed++
					if !outcome {
						c.Moved++
					}
					diffs = append(diffs, diff{KindChanged, int32(i), int32(j), a.At})
				default:
					c.Unchanged++
				}
			}
			i++
			j++
		}
	}
	if len(shifts) > 0 {
		slices.Sort(shifts)
		m := round(percentile(shifts, 0.5), 1)
		c.MedianShift = &m
	}
	slices.SortStableFunc(diffs, func(a, b diff) int { return cmp.Compare(a.at, b.at) })
	c.Listed, c.List = list, []Change{} // [] in JSON, not null
	per := map[string]int{}
	for _, d := range diffs {
		if per[d.kind] >= list {
			continue
		}
		per[d.kind]++
		ch := Change{Kind: d.kind}
		if d.base >= 0 {
			ch.Baseline = side(&base[d.base], n)
			r := &base[d.base]
			ch.OrderID, ch.Action, ch.RuleID, ch.Episode = r.Order, n[r.Action], n[r.Rule], int(r.Episode)
		}
		if d.cand >= 0 {
			ch.Candidate = side(&cand[d.cand], n)
			r := &cand[d.cand]
			ch.OrderID, ch.Action, ch.RuleID, ch.Episode = r.Order, n[r.Action], n[r.Rule], int(r.Episode)
		}
		if d.kind == KindChanged {
			b, a := &base[d.base], &cand[d.cand]
			if b.Status != a.Status || b.Reason != a.Reason || b.Target != a.Target || b.Team != a.Team {
				ch.What = append(ch.What, "outcome")
			}
			if a.At != b.At {
				ch.What = append(ch.What, "moment")
			}
		}
		c.List = append(c.List, ch)
	}
	// Kinds in report order, by time within each.
	slices.SortStableFunc(c.List, func(a, b Change) int {
		return cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind))
	})
	return c
}

func side(r *Record, n []string) *Side {
	return &Side{At: r.at(), Status: n[r.Status], SuppressedBy: n[r.Reason], Target: n[r.Target],
		Team: n[r.Team], Risk: round(float64(r.Risk), 4), LeadMinutes: int(r.Lead), Model: n[r.Model], id: r.decisionID()}
}
