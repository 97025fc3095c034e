package whatif

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Markdown writes the report: a summary table of baseline and candidate, the
// count of each kind of change, then the first changes of each kind.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# What-if: candidate against baseline\n\n")
	fmt.Fprintf(&b, "Window %s to %s (%s h of event time), replayed from %s: %d events read, %d before the warm-up skipped, %d applied, %d duplicates, %d dead-lettered. Outcomes at the stream's end (%s): %d orders with one, %d missed, %d not yet.\n\n",
		stamp(r.Window.From), stamp(r.Window.To), trim(r.Window.Hours, 1), stamp(r.Window.Start), r.Events.Lines, r.Events.Skipped,
		r.Events.Applied, r.Events.Duplicates, r.Events.DeadLettered, stamp(r.Outcomes.End), r.Outcomes.Labelled, r.Outcomes.Missed, r.Outcomes.NoOutcome)

	bs, cs := &r.Baseline, &r.Candidate
	b.WriteString("| | baseline | candidate |\n|---|---|---|\n")
	row := func(name, base, cand string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", name, base, cand) }
	row("policy", bs.Policy, cs.Policy)
	row("models", bs.Models, cs.Models)
	row("scored by", counts(bs.ScoredBy), counts(cs.ScoredBy))
	row("decisions", fmt.Sprint(bs.Decisions), fmt.Sprint(cs.Decisions))
	for _, st := range []struct{ key, name string }{{"queued", "acted (auto)"}, {"pending_approval", "needs approval"}, {"suppressed", "suppressed"}, {"shadow", "shadow only"}} {
		row(st.name, fmt.Sprint(bs.ByStatus[st.key]), fmt.Sprint(cs.ByStatus[st.key]))
	}
	for _, a := range union(bs.ByAction, cs.ByAction) {
		row("acted: "+a, fmt.Sprint(bs.ByAction[a]), fmt.Sprint(cs.ByAction[a]))
	}
	for _, reason := range union(bs.Suppressed, cs.Suppressed) {
		row("suppressed: "+reason, fmt.Sprint(bs.Suppressed[reason]), fmt.Sprint(cs.Suppressed[reason]))
	}
	teams := map[string]bool{}
	for _, t := range append(slices.Clone(bs.Approvals), cs.Approvals...) {
		teams[t.Team] = true
	}
	for _, t := range slices.Sorted(maps.Keys(teams)) {
		row("approvals/h: "+t, approvals(bs.Approvals, t), approvals(cs.Approvals, t))
	}
	row("lead time before cutoff, median", minutes(bs.LeadTime.Median), minutes(cs.LeadTime.Median))
	row("lead time before cutoff, p10", minutes(bs.LeadTime.P10), minutes(cs.LeadTime.P10))
	row("acted at or after the cutoff", fmt.Sprint(bs.ActedLate), fmt.Sprint(cs.ActedLate))
	row("precision (orders acted on before the cutoff that missed)", share(bs.Quality.Precision, bs.Quality.ActedMissed, bs.Quality.ActedKnown),
		share(cs.Quality.Precision, cs.Quality.ActedMissed, cs.Quality.ActedKnown))
	row("recall (missed orders acted on before the cutoff)", share(bs.Quality.Recall, bs.Quality.MissedActed, bs.Quality.MissedOrders),
		share(cs.Quality.Recall, cs.Quality.MissedActed, cs.Quality.MissedOrders))
	if bc, cc := bs.Cost, cs.Cost; bc != nil && cc != nil {
		row("expected cost (actions + misses not averted; costs of the "+r.CostsFrom+")", money(bc.ExpectedCost), money(cc.ExpectedCost))
		row("· action spend", money(bc.ActionSpend), money(cc.ActionSpend))
		row("· misses not averted (missed orders' cost × share left by actions before the cutoff)", money(bc.MissCost), money(cc.MissCost))
		row("misses averted (by the stated effects)", money(bc.Averted), money(cc.Averted))
		row("expected saving at the decisions (risk × miss cost × effect)", money(bc.ExpectedSaving), money(cc.ExpectedSaving))
	}

	c := &r.Changes
	fmt.Fprintf(&b, "\n**Changes** (keyed by order, action, rule and episode): %d added, %d removed, %d changed; %d unchanged",
		c.Added, c.Removed, c.Changed, c.Unchanged)
	if c.Earlier+c.Later > 0 {
		fmt.Fprintf(&b, ", of which %d decided earlier and %d later (median shift %s)", c.Earlier, c.Later, signedMinutes(*c.MedianShift))
	}
	b.WriteString(".\n")
	for _, kind := range Kinds {
		total := c.Count(kind)
		if total == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s (first %d of %d)\n\n", titles[kind], min(total, c.Listed), total)
		if kind == KindChanged {
			b.WriteString("| order | action | rule | episode | at | baseline | candidate | risk b → c | reasons |\n|---|---|---|---|---|---|---|---|---|\n")
		} else {
			b.WriteString("| order | action | rule | episode | at | outcome | risk | lead | reasons |\n|---|---|---|---|---|---|---|---|---|\n")
		}
		for i := range c.List {
			ch := &c.List[i]
			if ch.Kind != kind {
				continue
			}
			switch kind {
			case KindChanged:
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %.2f → %.2f | %s |\n", ch.OrderID, ch.Action, ch.RuleID, ch.Episode, stamp(ch.Candidate.At),
					outcome(ch.Baseline), outcome(ch.Candidate), ch.Baseline.Risk, ch.Candidate.Risk, strings.Join(ch.Candidate.Reasons, ", "))
			default:
				s := ch.Candidate
				if s == nil {
					s = ch.Baseline
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %.2f | %s | %s |\n", ch.OrderID, ch.Action, ch.RuleID, ch.Episode, stamp(s.At),
					outcome(s), s.Risk, signedMinutes(float64(s.LeadMinutes)), strings.Join(s.Reasons, ", "))
			}
		}
	}
	if r.Parity != nil {
		r.Parity.markdown(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var titles = map[string]string{KindAdded: "Added", KindRemoved: "Removed", KindChanged: "Changed"}

// outcome says what became of a decision: its status, with the reason of a
// suppression, a reroute's target and the team asked to approve.
func outcome(s *Side) string {
	out := s.Status
	if s.SuppressedBy != "" {
		out += " (" + s.SuppressedBy + ")"
	}
	if s.Target != "" {
		out += " → " + s.Target
	}
	if s.Team != "" && s.Status == "pending_approval" {
		out += ", " + s.Team
	}
	return out
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func trim(v float64, digits int) string {
	s := fmt.Sprintf("%.*f", digits, v)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func union(a, b map[string]int) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

func approvals(ts []TeamApprovals, team string) string {
	for _, t := range ts {
		if t.Team == team {
			return fmt.Sprintf("%s (%d, peak %d in an hour)", trim(t.PerHour, 2), t.Count, t.Peak)
		}
	}
	return "0"
}

func minutes(v *float64) string {
	if v == nil {
		return "-"
	}
	return signedMinutes(*v)
}

// signedMinutes writes minutes as hours and minutes, "-1h 05m" for negatives.
func signedMinutes(m float64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	d := time.Duration(m * float64(time.Minute)).Round(time.Minute)
	h, mm := int(d.Hours()), int(d.Minutes())%60
	if h == 0 {
		return fmt.Sprintf("%s%dm", sign, mm)
	}
	return fmt.Sprintf("%s%dh %02dm", sign, h, mm)
}

// money writes an amount with two decimals and thousands separated.
func money(v float64) string {
	s := fmt.Sprintf("%.2f", math.Abs(v))
	whole, frac := s[:len(s)-3], s[len(s)-3:]
	var b strings.Builder
	if v < 0 && s != "0.00" {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + frac
}

func share(v *float64, n, of int) string {
	if v == nil {
		return "- (0 of 0)"
	}
	return fmt.Sprintf("%.3f (%d of %d)", *v, n, of)
}
