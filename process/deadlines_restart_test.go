package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// restartCases are runs that start, fire, remind, escalate and stop deadline
// watches and rescoring timers, with the policy they run under and their
// orders.
var restartCases = []struct {
	name, policy string
	orders       []string
	steps        []step
}{
	{"milestones and cutoffs", deadlinePolicy, []string{"SO-1", "SO-2", "SO-3"}, []step{
		{"order.created", "SO-1", 0}, {"order.created", "SO-2", 0}, {"order.created", "SO-3", 0},
		{"credit.hold", "SO-2", 10 * time.Minute}, {"pick.released", "SO-1", time.Hour},
		{"shipment.confirmed", "SO-3", 2 * time.Hour}, {"", "", 2*time.Hour + time.Minute},
		{"", "", 2*time.Hour + 31*time.Minute}, {"pick.confirmed", "SO-1", 2*time.Hour + 40*time.Minute},
		{"", "", 4*time.Hour + 11*time.Minute}, {"", "", 6 * time.Hour}, {"", "", 8*time.Hour + time.Minute},
		{"credit.released", "SO-2", 9 * time.Hour}, {"", "", 26*time.Hour + time.Minute},
		{"invoice.created", "SO-3", 27 * time.Hour}, {"", "", 30 * time.Hour},
	}},
	{"opened at start, escalated", eventPolicy, []string{"SO-1", "SO-2"}, []step{
		{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 0}, {"order.created", "SO-2", 0},
		{"integration.error", "SO-2", 10 * time.Minute}, {"pick.released", "SO-2", 20 * time.Minute},
		{"", "", time.Hour + time.Minute}, {"", "", time.Hour + 11*time.Minute}, {"", "", time.Hour + 41*time.Minute},
		{"", "", 3 * time.Hour}, {"pick.confirmed", "SO-2", 3*time.Hour + 10*time.Minute},
		{"credit.released", "SO-1", 4 * time.Hour}, {"", "", 6 * time.Hour},
	}},
}

// runOutcome is what a run leaves of its orders: their exception records
// (JSON) and, from their order records, when they were last scored and are
// next due.
func (r *deadlineRun) outcome(orders []string) string {
	r.t.Helper()
	out := ""
	for _, id := range orders {
		xs, err := json.Marshal(r.exceptions(id))
		if err != nil {
			r.t.Fatal(err)
		}
		v, err := r.st.Order(id)
		if err != nil {
			r.t.Fatal(err)
		}
		var rec orderRecord
		if err := decodeRecord(v.Record, &rec); err != nil {
			r.t.Fatal(err)
		}
		out += fmt.Sprintf("%s scored_at=%v next_due=%v exceptions=%s\n", id, rec.ScoredAt, rec.NextDue, xs)
	}
	return out
}

// TestDeadlinesAfterRestarts: a run restarted before every step (a new
// Processor on the same store, as after a crash or a deploy) fires the same
// deadlines, reminders and escalations at the same moments, and rescores its
// orders at the same moments, as a run that never stops: live and on event
// time.
func TestDeadlinesAfterRestarts(t *testing.T) {
	for _, c := range restartCases {
		for _, eventTime := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/event_time=%v", c.name, eventTime), func(t *testing.T) {
				straight := newDeadlineRunWith(t, eventTime, store.Options{}, c.policy)
				straight.run(c.steps...)
				restarted := newDeadlineRunWith(t, eventTime, store.Options{}, c.policy)
				for _, s := range c.steps {
					restarted.p = restarted.processor(restarted.p.opts.Policy)
					restarted.run(s)
				}
				want, got := straight.outcome(c.orders), restarted.outcome(c.orders)
				if got != want {
					t.Errorf("restarted before every step:\n%s\nwithout a restart:\n%s", got, want)
				}
				if xs := straight.exceptions(c.orders[0]); len(xs) == 0 {
					t.Fatalf("the run opened no exception on %s: it tests nothing", c.orders[0])
				}
			})
		}
	}
}

// TestWatchesAndDuesWriteNoKeysOfTheirOwn (issue 20, decision 2): deadline
// watches that start, fire, remind and stop, and rescoring timers that are
// scheduled and fire, ride in the order records: the store sees no write of
// a deadline watch (Z/) nor of a rescoring index entry (u/).
func TestWatchesAndDuesWriteNoKeysOfTheirOwn(t *testing.T) {
	for _, c := range restartCases {
		for _, eventTime := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/event_time=%v", c.name, eventTime), func(t *testing.T) {
				r := newDeadlineRunWith(t, eventTime, store.Options{}, c.policy)
				r.run(c.steps...)
				w := r.st.Writes()
				if w["Z/"] != 0 || w["u/"] != 0 {
					t.Errorf("writes by kind %v: %d of deadline watches (Z/), %d of the rescoring index (u/), want none", w, w["Z/"], w["u/"])
				}
				if w["o/"] == 0 || w["X/"] == 0 {
					t.Errorf("writes by kind %v: want order records and exceptions written", w)
				}
			})
		}
	}
}

// indexes describes a processor's deadline watches and rescoring index.
func indexes(p *Processor) string {
	var ws []string
	for _, w := range p.watches.m {
		s := fmt.Sprintf("%+v", *w)
		if w.Exception != nil {
			s += fmt.Sprintf(" exception=%+v", *w.Exception)
		}
		ws = append(ws, s)
	}
	slices.Sort(ws)
	return fmt.Sprintf("watches %v\nof %v\ndues %v", ws, p.watches.of, p.dues.next)
}

// TestFailedBatchReloadsTheIndexes: after a batch whose commit fails, one
// that fired deadlines and a rescoring timer, opened and closed exceptions,
// the processor holds the deadline watches and the rescoring index a restart
// loads (what committed), and goes on from them as a run without the failure.
func TestFailedBatchReloadsTheIndexes(t *testing.T) {
	var calls, failAt int
	so := store.Options{CheckSpace: func() error {
		if calls++; calls == failAt {
			return errors.New("disk full (test)")
		}
		return nil
	}}
	steps := []step{{"order.created", "SO-1", 0}, {"order.created", "SO-2", 0}, {"credit.hold", "SO-2", 10 * time.Minute},
		{"pick.released", "SO-1", time.Hour}}
	r := newDeadlineRun(t, false, so)
	r.run(steps...)
	straight := newDeadlineRun(t, false, store.Options{})
	straight.run(steps...)
	// Stage fires released-not-picked (due 2h) and credit-hold-open (due
	// 4h10m) and the rescoring timers due by 4h11m, then the release closes
	// the credit hold's; the store is asked at staging, then at the commit.
	failAt = calls + 2
	if err := r.do(step{"credit.released", "SO-2", 4*time.Hour + 11*time.Minute}); err == nil {
		t.Fatal("the batch committed, want its commit to fail")
	}
	before := indexes(r.p)
	if got, want := before, indexes(r.processor(r.p.opts.Policy)); got != want {
		t.Errorf("after the failed batch:\n%s\nwhat a restart loads:\n%s", got, want)
	}
	rest := []step{{"credit.released", "SO-2", 4*time.Hour + 11*time.Minute}, {"", "", 9 * time.Hour}, {"pick.confirmed", "SO-1", 10 * time.Hour}}
	r.seq--
	r.run(rest...)
	straight.run(rest...)
	if got, want := r.outcome([]string{"SO-1", "SO-2"}), straight.outcome([]string{"SO-1", "SO-2"}); got != want {
		t.Errorf("after the failed batch and its redelivery:\n%s\nwithout the failure:\n%s", got, want)
	}
}

// TestShippedOrderWithClocksIsKept: a shipped order is closed for scoring
// but keeps its deadlines, which its record carries now: the record is
// written without a ttl while a clock runs, and expires after the retention
// once the last one stops.
func TestShippedOrderWithClocksIsKept(t *testing.T) {
	r := newDeadlineRun(t, false, store.Options{})
	r.run(step{"order.created", "SO-1", 0}, step{"shipment.confirmed", "SO-1", 2 * time.Hour})
	rec := r.p.cache["SO-1"]
	if rec == nil || rec.State.Open() || !rec.keepsWatches() {
		t.Fatalf("shipped: record %+v, want it cached, closed, with its shipped-not-invoiced watch", rec)
	}
	if ttl := r.p.recordTTL(rec, false); ttl != 0 {
		t.Errorf("shipped with a clock running: written with ttl %v, want none", ttl)
	}
	r.run(step{"invoice.created", "SO-1", 3 * time.Hour})
	if rec := r.p.cache["SO-1"]; rec != nil {
		t.Fatalf("invoiced: still cached")
	}
	v, err := r.st.Order("SO-1")
	if err != nil {
		t.Fatal(err)
	}
	var back orderRecord
	if err := decodeRecord(v.Record, &back); err != nil {
		t.Fatal(err)
	}
	if back.keepsWatches() || r.p.recordTTL(&back, false) != r.p.opts.Retention {
		t.Errorf("invoiced: the record carries watches %v, ttl %v; want none and the retention", back.keepsWatches(), r.p.recordTTL(&back, false))
	}
}
