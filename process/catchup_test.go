package process

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/store"
)

// TestCatchUpScoresHistoryOnItsTime: the history before Options.CatchUpBefore
// (the demo's backlog, issue 17) that arrives at once is scored on its own
// time: each event at the moment it happened, the rescoring checkpoints among
// it as its time passes them (the one 2 h before the cutoff included), so the
// order's outcome is judged on the score it had while there was time to act.
// On the wall clock alone (the live pipeline before, and without the option)
// every row of that history is scored now, close to the cutoff, and the
// outcome is unjudged. The first event at or after the cut ends the catch-up:
// it and what follows are scored on the clock, and timers follow it again.
func TestCatchUpScoresHistoryOnItsTime(t *testing.T) {
	cut := time.Date(2026, 6, 1, 15, 0, 0, 0, time.UTC)
	cutoff := cut.Add(10 * time.Minute)
	history := func(seq *int) []*Message {
		ev := func(typ string, at time.Time, data string) *Message {
			*seq++
			return &Message{Seq: uint64(*seq), Subject: storedSubject(typ, "SO-OLD"), Data: fmt.Appendf(nil,
				`{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,"source":"erp","order_id":"SO-OLD","data":{%s}}`,
				*seq, typ, at.Format(time.RFC3339), data)}
		}
		return []*Message{
			ev("order.created", cutoff.Add(-5*time.Hour), fmt.Sprintf(`"warehouse":"DAL","customer_id":"C-1","ship_cutoff":%q,"lines":1,"units":1,"value":10`,
				cutoff.Format(time.RFC3339))),
			ev("credit.hold", cutoff.Add(-3*time.Hour), `"reason":"limit"`),
			ev("note.added", cutoff.Add(-30*time.Minute), `"text":"still on hold"`),
		}
	}
	for _, catchUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("catch_up=%v", catchUp), func(t *testing.T) {
			clock := cut.Add(20 * time.Second)
			reg := prometheus.NewRegistry()
			type moment struct {
				trigger string
				at      time.Time
			}
			var rows []moment
			opts := Options{Registerer: reg, Scorer: spreadScorer{}, Clock: func() time.Time { return clock },
				OnRow: func(r *Row) { rows = append(rows, moment{r.Trigger, r.Moment}) }}
			if catchUp {
				opts.CatchUpBefore = cut
			}
			p, _, _ := newTestProcessor(t, store.Options{}, opts)
			seq := 0
			if _, err := p.Process(context.Background(), history(&seq)); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Tick(); err != nil {
				t.Fatal(err)
			}
			// Live: the order is still unshipped; its cutoff passes.
			clock = cutoff.Add(time.Minute)
			seq++
			live := &Message{Seq: uint64(seq), Subject: storedSubject("note.added", "SO-NEW"), Data: fmt.Appendf(nil,
				`{"id":"e-%d","type":"note.added","schema":1,"occurred_at":%q,"source":"crm","order_id":"SO-NEW","data":{"text":"hi"}}`,
				seq, clock.Format(time.RFC3339))}
			if _, err := p.Process(context.Background(), []*Message{live}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Tick(); err != nil {
				t.Fatal(err)
			}

			judged := testutil.CollectAndCount(reg, "orderwatch_model_outcomes_total")
			unjudged := testutil.ToFloat64(p.m.unjudged)
			var seen []string
			for _, r := range rows {
				seen = append(seen, r.trigger+"@"+r.at.Format("15:04:05"))
			}
			t.Logf("rows %v; judged series %d, unjudged %v", seen, judged, unjudged)
			if !catchUp {
				// The wall clock: the history's three events scored at once,
				// within the 2 h, so its miss is unjudged.
				for _, r := range rows {
					if r.at.Before(cut) {
						t.Errorf("rows %v, want the history scored on the clock, none before %v", rows, cut)
						break
					}
				}
				if judged != 0 || unjudged != 1 {
					t.Errorf("judged series %d, unjudged %v; want 0 and 1 on the wall clock", judged, unjudged)
				}
				return
			}
			var events, early int
			for _, r := range rows {
				if r.trigger == TriggerEvent && r.at.Before(cut) {
					events++
				}
				if r.trigger == TriggerTimer && !r.at.After(cutoff.Add(-evalHorizon)) {
					early++
				}
			}
			if events != 3 || !rows[0].at.Equal(cutoff.Add(-5*time.Hour)) {
				t.Errorf("rows %v, want the three history events scored at their own times, the first at %v", rows, cutoff.Add(-5*time.Hour))
			}
			if early == 0 {
				t.Errorf("rows %v, want a rescoring at a checkpoint 2 h or more before the cutoff %v", rows, cutoff)
			}
			if judged != 1 || unjudged != 0 {
				t.Errorf("judged series %d, unjudged %v; want the miss judged (1 series) and none unjudged", judged, unjudged)
			}
			if got := testutil.ToFloat64(p.m.outcomes.WithLabelValues("cutoff_risk", "t1", roleLive, "flagged", "missed")) +
				testutil.ToFloat64(p.m.outcomes.WithLabelValues("cutoff_risk", "t1", roleLive, "not_flagged", "missed")); got != 1 {
				t.Errorf("missed outcomes judged = %v, want 1", got)
			}
		})
	}
}

// TestCatchUpWaitsStartOnTheClock: a decision the history asks a person for
// (the demo's backlog) is dated when its events happened, but its wait starts
// when people can see it, on the clock: its SLA runs from then. Dated by the
// history's time, every such wait of the demo's backlog was overdue and escalated
// in its first minute (about 300 of them).
func TestCatchUpWaitsStartOnTheClock(t *testing.T) {
	cut := time.Date(2026, 6, 1, 15, 0, 0, 0, time.UTC)
	cutoff := cut.Add(20 * time.Minute)
	clock := cut.Add(20 * time.Second)
	p, st, _ := newTestProcessor(t, store.Options{}, Options{Registerer: prometheus.NewRegistry(), Scorer: spreadScorer{},
		Clock: func() time.Time { return clock }, CatchUpBefore: cut})
	msg := func(seq int, typ string, at time.Time, data string) *Message {
		return &Message{Seq: uint64(seq), Subject: storedSubject(typ, "SO-HOLD"), Data: fmt.Appendf(nil,
			`{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,"source":"erp","order_id":"SO-HOLD","data":{%s}}`,
			seq, typ, at.Format(time.RFC3339), data)}
	}
	held := cutoff.Add(-3 * time.Hour)
	if _, err := p.Process(context.Background(), []*Message{
		msg(1, "order.created", cutoff.Add(-6*time.Hour), fmt.Sprintf(`"warehouse":"DAL","customer_id":"C-1","ship_cutoff":%q,"lines":1,"units":1,"value":10`,
			cutoff.Format(time.RFC3339))),
		msg(2, "credit.hold", held, `"reason":"limit"`),
	}); err != nil {
		t.Fatal(err)
	}
	items, err := st.OpenItems()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) == 0 {
		t.Fatal("no open item: want the credit hold near its cutoff waiting for finance's approval")
	}
	for _, it := range items {
		var open struct {
			Since, Due time.Time
			RuleID     string `json:"rule_id"`
		}
		if err := json.Unmarshal(it.Value, &open); err != nil {
			t.Fatal(err)
		}
		if !open.Since.Equal(clock) || !open.Due.After(clock) {
			t.Errorf("wait of %s since %v due %v; want it since the clock %v and due after it", open.RuleID, open.Since, open.Due, clock)
		}
	}
}
