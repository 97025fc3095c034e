package whatif

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Recorded yields the decisions a live run recorded, each as its record
// (actions.Decision's JSON, as the store and the API hold it): at least those
// at or after since, in any order. Run compares those in the window and
// ignores the rest, and a decision yielded twice.
type Recorded func(ctx context.Context, since time.Time, yield func(record []byte) error) error

// Kinds of parity difference between the baseline and the recorded run.
const (
	ParityOnlyRecorded = "only_recorded" // live decided it, the baseline's replay did not
	ParityOnlyReplayed = "only_replayed" // the baseline's replay decided it, live did not
	ParityDiffering    = "differing"     // both, with another status, reason, target or team
)

// Reasons a parity difference names, when it can.
const (
	// ReasonPolicyVersion: the recorded decision was made under another
	// policy version than the baseline's.
	ReasonPolicyVersion = "policy_version"
	// ReasonModel: the two decisions of the key were scored by another model
	// (name@version, or rules_fallback when live ran degraded).
	ReasonModel = "model_version"
	// ReasonMoment: both decided the key at different moments (live decides
	// on the wall clock, the replay on event time), so cooldowns and limits
	// saw other decisions.
	ReasonMoment = "moment"
	// ReasonKillSwitch: one of them was suppressed by a kill switch.
	ReasonKillSwitch = "kill_switch"
	// ReasonEpisode: the same order, action and rule were decided in another
	// episode: the live run counted episodes from before the replay's start
	// (the window's warm-up), or counted one the replay did not.
	ReasonEpisode = "episode"
	// ReasonGovernance: one side was suppressed by a cooldown or a rate
	// limit and the other was not: the decisions before it, which those
	// count, differ (in their order within a batch, or earlier).
	ReasonGovernance = "cooldown_or_limit"
	// ReasonUnexplained: none of the above.
	ReasonUnexplained = "unexplained"
)

// Parity is how the baseline's decisions in the window compare with the ones a
// live run recorded for the same window, keyed as Changes are (order, action,
// rule, episode).
type Parity struct {
	Recorded int `json:"recorded"` // recorded decisions in the window
	Replayed int `json:"replayed"` // the baseline's decisions in the window
	Matched  int `json:"matched"`  // keys both decide alike
	// AtOtherMoment counts the matched keys decided at another moment
	// (replayed minus recorded), by a median of MedianShift minutes.
	AtOtherMoment int      `json:"at_other_moment"`
	MedianShift   *float64 `json:"median_shift_minutes"`
	OnlyRecorded  int      `json:"only_recorded"`
	OnlyReplayed  int      `json:"only_replayed"`
	Differing     int      `json:"differing"`
	// Reasons counts the differences by the reasons named for them (a
	// difference may have several).
	Reasons map[string]int `json:"reasons"`
	Listed  int            `json:"listed"`
	List    []ParityDiff   `json:"list"`
}

// Mismatched is the number of keys that do not match.
func (p *Parity) Mismatched() int { return p.OnlyRecorded + p.OnlyReplayed + p.Differing }

// ParityDiff is one key the baseline and the recorded run decide differently.
type ParityDiff struct {
	Kind     string   `json:"kind"`
	OrderID  string   `json:"order_id"`
	Action   string   `json:"action"`
	RuleID   string   `json:"rule_id"`
	Episode  int      `json:"episode"`
	Recorded *Side    `json:"recorded,omitempty"`
	Replayed *Side    `json:"replayed,omitempty"`
	Reasons  []string `json:"reasons"`
}

// recordedFields are the fields of a recorded decision parity reads beyond
// decisionFields.
type recordedFields struct {
	PolicyVersion string `json:"policy_version"`
}

// collectRecorded reads the recorded decisions in w as Records, sorted by key,
// and the ids of those made under another policy version than version.
func collectRecorded(ctx context.Context, src Recorded, w Window, names *Names, max int, version string) ([]Record, map[string]string, error) {
	var (
		recs  []Record
		other = map[string]string{}
		seen  = map[string]bool{}
	)
	err := src(ctx, w.From, func(raw []byte) error {
		var d decisionFields
		var p recordedFields
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("whatif: a recorded decision does not decode: %w", err)
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("whatif: recorded decision %s: %w", d.ID, err)
		}
		if !w.contains(d.At.UnixNano()) || seen[d.ID] {
			return nil
		}
		seen[d.ID] = true
		if max > 0 && len(recs) >= max {
			return fmt.Errorf("%w: over %d recorded; narrow the window or raise --max-decisions", ErrTooManyDecisions, max)
		}
		r, err := record(&d, names)
		if err != nil {
			return err
		}
		if p.PolicyVersion != version {
			other[d.ID] = p.PolicyVersion
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	SortRecords(recs, names)
	return recs, other, nil
}

// compareParity merges the recorded decisions (rec, all in w) with the
// baseline's (base, sorted by key; only those in w count), and names the
// reasons of each difference it can.
func compareParity(rec, base []Record, otherPolicy map[string]string, names *Names, w Window, list int) Parity {
	n := names.all()
	var inWin []Record
	for i := range base {
		if w.contains(base[i].At) {
			inWin = append(inWin, base[i])
		}
	}
	p := Parity{Recorded: len(rec), Replayed: len(inWin), Reasons: map[string]int{}, Listed: list, List: []ParityDiff{}}
	var (
		diffs  []ParityDiff
		ats    []int64
		shifts []float64
	)
	// sameRule reports whether a and b are of the same order, action and rule.
	sameRule := func(a, b *Record) bool { return a.Order == b.Order && a.Action == b.Action && a.Rule == b.Rule }
	// episodeElsewhere reports whether other holds a decision of r's order,
	// action and rule in another episode.
	episodeElsewhere := func(r *Record, other []Record) bool {
		i, _ := slices.BinarySearchFunc(other, r, func(o Record, r *Record) int {
			if c := strings.Compare(o.Order, r.Order); c != 0 {
				return c
			}
			if c := strings.Compare(n[o.Action], n[r.Action]); c != 0 {
				return c
			}
			return strings.Compare(n[o.Rule], n[r.Rule])
		})
		return i < len(other) && sameRule(&other[i], r)
	}
	add := func(kind string, r, b *Record) {
		d := ParityDiff{Kind: kind}
		var at int64
		if r != nil {
			d.Recorded = side(r, n)
			d.OrderID, d.Action, d.RuleID, d.Episode, at = r.Order, n[r.Action], n[r.Rule], int(r.Episode), r.At
			if _, ok := otherPolicy[r.decisionID()]; ok {
				d.Reasons = append(d.Reasons, ReasonPolicyVersion)
			}
		}
		if b != nil {
			d.Replayed = side(b, n)
			d.OrderID, d.Action, d.RuleID, d.Episode = b.Order, n[b.Action], n[b.Rule], int(b.Episode)
			if r == nil {
				at = b.At
			}
		}
		if r != nil && b != nil {
			if r.Model != b.Model {
				d.Reasons = append(d.Reasons, ReasonModel)
			}
			if r.At != b.At {
				d.Reasons = append(d.Reasons, ReasonMoment)
			}
		}
		for _, s := range []*Side{d.Recorded, d.Replayed} {
			if s != nil && strings.HasPrefix(s.SuppressedBy, "kill_switch") && !slices.Contains(d.Reasons, ReasonKillSwitch) {
				d.Reasons = append(d.Reasons, ReasonKillSwitch)
			}
		}
		if r != nil && b != nil && governed(d.Recorded.SuppressedBy) != governed(d.Replayed.SuppressedBy) {
			d.Reasons = append(d.Reasons, ReasonGovernance)
		}
		if (r == nil && episodeElsewhere(b, rec)) || (b == nil && episodeElsewhere(r, inWin)) {
			d.Reasons = append(d.Reasons, ReasonEpisode)
		}
		if len(d.Reasons) == 0 {
			d.Reasons = append(d.Reasons, ReasonUnexplained)
		}
		for _, why := range d.Reasons {
			p.Reasons[why]++
		}
		diffs, ats = append(diffs, d), append(ats, at)
	}
	i, j := 0, 0
	for i < len(rec) || j < len(inWin) {
		var k int
		switch {
		case i == len(rec):
			k = 1
		case j == len(inWin):
			k = -1
		default:
			k = compareKeys(&rec[i], &inWin[j], n)
		}
		switch k {
		case -1:
			p.OnlyRecorded++
			add(ParityOnlyRecorded, &rec[i], nil)
			i++
		case 1:
			p.OnlyReplayed++
			add(ParityOnlyReplayed, nil, &inWin[j])
			j++
		default:
			r, b := &rec[i], &inWin[j]
			if r.Status != b.Status || r.Reason != b.Reason || r.Target != b.Target || r.Team != b.Team {
				p.Differing++
				add(ParityDiffering, r, b)
			} else {
				p.Matched++
				if r.At != b.At {
					p.AtOtherMoment++
					shifts = append(shifts, float64(b.At-r.At)/float64(time.Minute))
				}
			}
			i++
			j++
		}
	}
	if len(shifts) > 0 {
		slices.Sort(shifts)
		m := round(percentile(shifts, 0.5), 1)
		p.MedianShift = &m
	}
	idx := make([]int, len(diffs))
	for k := range idx {
		idx[k] = k
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ats[a], ats[b]) })
	per := map[string]int{}
	for _, k := range idx {
		d := diffs[k]
		if per[d.Kind] >= list {
			continue
		}
		per[d.Kind]++
		p.List = append(p.List, d)
	}
	kinds := []string{ParityOnlyRecorded, ParityOnlyReplayed, ParityDiffering}
	slices.SortStableFunc(p.List, func(a, b ParityDiff) int {
		return cmp.Compare(slices.Index(kinds, a.Kind), slices.Index(kinds, b.Kind))
	})
	return p
}

// governed reports whether a suppression reason is a cooldown or a rate limit.
func governed(reason string) bool {
	return reason == "cooldown" || strings.HasPrefix(reason, "rate_limit:")
}
