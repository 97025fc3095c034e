package whatif

import (
	"math"
	"slices"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
)

// Summary is what one run decided in the window.
type Summary struct {
	Policy string `json:"policy"` // the policy's version, and its file
	Models string `json:"models"` // the models asked for
	// ScoredBy counts the window's decisions by the risk model that scored
	// them: name@version, or rules_fallback.
	ScoredBy  map[string]int `json:"scored_by"`
	Decisions int            `json:"decisions"`
	// ByStatus counts them by status: queued (acted), pending_approval,
	// suppressed, shadow.
	ByStatus map[string]int `json:"by_status"`
	// ByAction counts the acted ones (queued or pending_approval) by action.
	ByAction   map[string]int  `json:"acted_by_action"`
	Approvals  []TeamApprovals `json:"approvals"`
	Suppressed map[string]int  `json:"suppressed"` // by reason
	LeadTime   LeadTime        `json:"lead_time"`
	// ActedLate counts the acted decisions at or after the order's cutoff
	// (lead time 0 or less): too late to keep it, so Quality leaves them out.
	ActedLate int     `json:"acted_after_cutoff"`
	Quality   Quality `json:"quality"`
	// Cost is the run's expected cost, when a policy states costs (Report.CostsFrom).
	Cost *CostSummary `json:"cost,omitempty"`
}

// TeamApprovals is the decisions a team is asked to approve.
type TeamApprovals struct {
	Team    string  `json:"team"`
	Count   int     `json:"count"`
	PerHour float64 `json:"per_hour"`  // Count over the window's hours
	Peak    int     `json:"peak_hour"` // the most in one hour of event time (clock hours)
}

// LeadTime is how long before the order's cutoff the acted decisions came, in
// minutes (the decision's minutes_to_cutoff, bounded to [-1440, 10080] like
// the feature; negative: after the cutoff). Median and P10 are nearest-rank
// percentiles, nil with no acted decision.
type LeadTime struct {
	Count  int      `json:"count"`
	Median *float64 `json:"median_minutes"`
	P10    *float64 `json:"p10_minutes"`
}

// Quality is how well the acted decisions picked the orders that missed, over
// the orders whose outcome the stream shows by its end (process.Outcomes). An
// order is acted on when an acted decision (queued or pending approval) came
// in the window before its cutoff: one after it cannot keep the cutoff, and an
// order past its cutoff unshipped is at high risk whatever the model.
type Quality struct {
	// ActedOrders were acted on; ActedKnown of them have an outcome,
	// ActedMissed of those missed.
	ActedOrders int `json:"acted_orders"`
	ActedKnown  int `json:"acted_with_outcome"`
	ActedMissed int `json:"acted_missed"`
	// Precision is ActedMissed / ActedKnown; nil when ActedKnown is 0.
	Precision *float64 `json:"precision"`
	// MissedOrders were scored in the window and missed their cutoff;
	// MissedActed of them have an acted decision in the window.
	MissedOrders int `json:"missed_orders"`
	MissedActed  int `json:"missed_acted"`
	// Recall is MissedActed / MissedOrders; nil when MissedOrders is 0.
	Recall *float64 `json:"recall"`
}

// acted reports whether a status is an action taken or asked for.
func acted(status string) bool {
	return status == actions.StatusQueued || status == actions.StatusPendingApproval
}

// summarise sums up the records of a run in the window. outcomes are the
// orders' outcomes, scored the orders scored in the window.
func summarise(recs []Record, names *Names, w Window, outcomes map[string]process.Label, scored map[string]orderFacts) Summary {
	n := names.all()
	s := Summary{ScoredBy: map[string]int{}, ByStatus: map[string]int{}, ByAction: map[string]int{}, Suppressed: map[string]int{},
		Approvals: []TeamApprovals{}}
	actedOrders := map[string]struct{}{}
	type teamHour struct {
		team uint16
		hour int64
	}
	perHour := map[teamHour]int{}
	teams := map[uint16]int{}
	var leads []float64
	for i := range recs {
		r := &recs[i]
		if !w.contains(r.At) {
			continue
		}
		s.Decisions++
		status := n[r.Status]
		s.ByStatus[status]++
		s.ScoredBy[n[r.Model]]++
		switch {
		case status == actions.StatusSuppressed:
			s.Suppressed[n[r.Reason]]++
		case acted(status):
			s.ByAction[n[r.Action]]++
			leads = append(leads, float64(r.Lead))
			if r.Lead > 0 {
				actedOrders[r.Order] = struct{}{}
			} else {
				s.ActedLate++
			}
			if status == actions.StatusPendingApproval {
				teams[r.Team]++
				perHour[teamHour{r.Team, r.At / int64(time.Hour)}]++
			}
		}
	}
	for t, c := range teams {
		ta := TeamApprovals{Team: n[t], Count: c, PerHour: round(float64(c)/w.Hours(), 2)}
		for k, v := range perHour {
			if k.team == t && v > ta.Peak {
				ta.Peak = v
			}
		}
		s.Approvals = append(s.Approvals, ta)
	}
	slices.SortFunc(s.Approvals, func(a, b TeamApprovals) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		if a.Team < b.Team {
			return -1
		}
		return 1
	})
	s.LeadTime.Count = len(leads)
	if len(leads) > 0 {
		slices.Sort(leads)
		med, p10 := percentile(leads, 0.5), percentile(leads, 0.1)
		s.LeadTime.Median, s.LeadTime.P10 = &med, &p10
	}
	q := &s.Quality
	q.ActedOrders = len(actedOrders)
	for o := range actedOrders {
		if l, ok := outcomes[o]; ok {
			q.ActedKnown++
			if l.MissedCutoff {
				q.ActedMissed++
			}
		}
	}
	for o := range scored {
		if l, ok := outcomes[o]; ok && l.MissedCutoff {
			q.MissedOrders++
			if _, ok := actedOrders[o]; ok {
				q.MissedActed++
			}
		}
	}
	q.Precision, q.Recall = ratio(q.ActedMissed, q.ActedKnown), ratio(q.MissedActed, q.MissedOrders)
	return s
}

// percentile is the nearest-rank p-quantile of sorted, which is not empty.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ratio(a, b int) *float64 {
	if b == 0 {
		return nil
	}
	v := round(float64(a)/float64(b), 4)
	return &v
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
