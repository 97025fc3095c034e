package api

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// historyEntry is one line of an order's history: an event, a score, a decision,
// or what happened to a decision since (an answer, an escalation, a delivery
// attempt, an outcome), with who did it.
type historyEntry struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"` // event, score, decision, approved, rejected, acknowledged, escalated, ladder_exhausted, attempt, outcome
	What string    `json:"what"`
	Who  string    `json:"who,omitempty"`
	Ref  string    `json:"ref,omitempty"` // the event id, decision id or outbox entry
}

// kindRank orders entries of the same instant: the event, then its score, then
// the decision it led to, then what happened to the decision.
var kindRank = map[string]int{"event": 0, "score": 1, "decision": 2}

// history merges an order's events (those earlier releases stored whole and
// the references of its record's timeline, tl), scores, decisions and their
// trails, attempts and outcomes into one list by time. A stored event or score
// that cannot be read is not left out silently: unreadable says which and why;
// nor are the events the timeline dropped to stay bounded: an entry of kind
// "dropped" says how many, where they were.
func history(v store.OrderView, tl process.Timeline, views []actions.View) (h []historyEntry, unreadable []string) {
	for i, raw := range v.Timeline {
		var ev struct {
			ID         string    `json:"id"`
			Type       string    `json:"type"`
			OccurredAt time.Time `json:"occurred_at"`
			Source     string    `json:"source"`
			Actor      string    `json:"actor"`
			Data       struct {
				Reason, Text, Change, Warehouse string
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			unreadable = append(unreadable, fmt.Sprintf("timeline event %d of %d (%d bytes): %v", i+1, len(v.Timeline), len(raw), err))
			continue
		}
		what := ev.Type
		for _, s := range []string{ev.Data.Change, ev.Data.Reason, ev.Data.Warehouse, ev.Data.Text} {
			if s != "" {
				what += ": " + clip(s, 120)
				break
			}
		}
		h = append(h, historyEntry{At: ev.OccurredAt, Kind: "event", What: what, Who: eventWho(ev.Actor, ev.Source), Ref: ev.ID})
	}
	for i, e := range tl.Entries {
		what := e.Type
		if e.What != "" {
			what += ": " + e.What // clipped when the reference was kept
		}
		h = append(h, historyEntry{At: e.At, Kind: "event", What: what, Who: eventWho(e.Actor, e.Source), Ref: e.ID})
		if i == process.TimelineHead-1 && tl.Dropped > 0 {
			h = append(h, historyEntry{At: e.At, Kind: "dropped", Who: "orderwatch",
				What: fmt.Sprintf("%d events of this order, applied after its first %d, are left out of its timeline: an order keeps the references of at most %d events, its first %d and its latest",
					tl.Dropped, process.TimelineHead, process.MaxTimeline, process.TimelineHead)})
		}
	}
	for i, raw := range v.Scores {
		var s actions.ScorePoint
		if err := s.UnmarshalBinary(raw); err != nil { // either stored form
			unreadable = append(unreadable, fmt.Sprintf("score %d of %d (%d bytes): %v", i+1, len(v.Scores), len(raw), err))
			continue
		}
		what := fmt.Sprintf("risk %.2f", s.Risk)
		if top, p := topClass(s.Classes); top != "" {
			what += fmt.Sprintf(", likely exception %s (%.2f)", top, p)
		}
		if s.Degraded {
			what += ", degraded (rules fallback)"
		}
		ref := s.Event
		if s.Trigger == "timer" {
			what += ", rescored by timer"
			ref = ""
		}
		h = append(h, historyEntry{At: s.At, Kind: "score", What: what, Who: s.Model, Ref: ref})
	}
	for _, vw := range views {
		d := &vw.Decision
		what := fmt.Sprintf("%s %s by rule %s (%s)", d.Action, d.Status, d.RuleID, d.Mode)
		if d.SuppressedBy != "" {
			what += ": " + d.SuppressedBy + ", " + d.SuppressedNote
		}
		if d.Target != "" {
			what += ", to " + d.Target
		}
		h = append(h, historyEntry{At: d.At, Kind: "decision", What: what, Who: "policy " + d.PolicyVersion, Ref: d.ID})
		for _, t := range vw.Trail {
			what := t.Kind
			switch t.Kind {
			case actions.TrailEscalated:
				what = fmt.Sprintf("escalated to tier %d (%s) from %s", t.Tier, t.Team, t.FromTeam)
			case actions.TrailExhausted:
				what = fmt.Sprintf("escalation ladder exhausted at %s", t.Team)
			}
			if t.Reason != "" {
				what += ": " + t.Reason
			}
			who := t.By
			if who == "" {
				who = "orderwatch"
			}
			if t.OnBehalfOf != "" {
				who += " for " + t.OnBehalfOf
			}
			h = append(h, historyEntry{At: t.At, Kind: t.Kind, What: what, Who: who, Ref: d.ID})
		}
		for _, a := range vw.Attempts {
			what := fmt.Sprintf("%s attempt %d ok", a.Target, a.N)
			if !a.OK {
				what = fmt.Sprintf("%s attempt %d failed: %s", a.Target, a.N, a.Error)
			}
			h = append(h, historyEntry{At: a.At, Kind: "attempt", What: what, Who: "executor", Ref: a.Entry})
		}
		for _, o := range vw.Outcomes {
			what := o.Status
			switch {
			case o.Subject != "":
				what += " on " + o.Subject
			case o.URL != "":
				what += " to " + o.URL
			}
			if o.Error != "" {
				what += ": " + o.Error
			}
			h = append(h, historyEntry{At: o.At, Kind: "outcome", What: what, Who: "executor", Ref: o.Entry})
		}
	}
	sort.SliceStable(h, func(i, j int) bool {
		if !h[i].At.Equal(h[j].At) {
			return h[i].At.Before(h[j].At)
		}
		return rank(h[i].Kind) < rank(h[j].Kind)
	})
	if h == nil {
		h = []historyEntry{}
	}
	return h, unreadable
}

// eventWho is who an event says made it: its actor, with its source.
func eventWho(actor, source string) string {
	if source == "" {
		return actor
	}
	return strings.TrimSpace(actor + " (" + source + ")")
}

func rank(kind string) int {
	if r, ok := kindRank[kind]; ok {
		return r
	}
	return 3
}

func topClass(classes map[string]float64) (string, float64) {
	best, p := "", 0.0
	for c, v := range classes {
		if c != "none" && (v > p || (v == p && c < best)) {
			best, p = c, v
		}
	}
	return best, p
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
