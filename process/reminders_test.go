package process

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// TestRemindersWriteNothing (issue 20, decision 2): the reminders of an
// overdue exception are counted in orderwatch_exception_reminders_total when
// they come due, but write neither the exception (X/) nor the order record
// (o/); the exception still reads with its reminders and the last one's time.
func TestRemindersWriteNothing(t *testing.T) {
	const h, m = time.Hour, time.Minute
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRun(t, eventTime, store.Options{})
			// released-not-picked is due at 2h and reminds every 30m.
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", h}, step{"", "", 2*h + m})
			before := r.st.Writes()
			looks := []step{{"", "", 2*h + 31*m}, {"", "", 3*h + m}, {"", "", 3*h + 31*m}, {"", "", 3*h + 45*m}}
			r.run(looks...)
			after := r.st.Writes()
			// On event time each look is an event of another order, which
			// writes that order's record: one o/ a look.
			wantO := uint64(0)
			if eventTime {
				wantO = uint64(len(looks))
			}
			if d := after["X/"] - before["X/"]; d != 0 {
				t.Errorf("three reminders wrote %d exception records (X/), want none", d)
			}
			if d := after["o/"] - before["o/"]; d != wantO {
				t.Errorf("three reminders wrote %d order records (o/), want %d", d, wantO)
			}
			if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("warehouse")); got != 3 {
				t.Errorf("orderwatch_exception_reminders_total{owner=warehouse} = %v, want 3", got)
			}
			xs := r.exceptions("SO-1")
			if len(xs) != 1 || xs[0].Reminders != 3 || !xs[0].RemindedAt.Equal(t0.Add(3*h+30*m)) || !xs[0].Open {
				t.Fatalf("after three reminders: %+v, want it open with 3 reminders, the last at 3h30", xs)
			}
		})
	}
}

// TestRemindersAfterRestart: a processor restarted in the middle of a
// series of reminders (a new one on the same store) reads the same
// reminders, has the same next reminder due, and counts the reminders that
// come due after the restart once each, live and on event time.
func TestRemindersAfterRestart(t *testing.T) {
	const h, m = time.Hour, time.Minute
	k := watchKey{"SO-1", "released-not-picked"}
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			steps := []step{{"order.created", "SO-1", 0}, {"pick.released", "SO-1", h}, {"", "", 2*h + m},
				{"", "", 2*h + 31*m}, {"", "", 3*h + m}}
			straight := newDeadlineRun(t, eventTime, store.Options{})
			straight.run(steps...)
			restarted := newDeadlineRun(t, eventTime, store.Options{})
			restarted.run(steps...)
			restarted.p = restarted.processor(restarted.p.opts.Policy)
			for _, r := range []*deadlineRun{straight, restarted} {
				xs := r.exceptions("SO-1")
				if len(xs) != 1 || xs[0].Reminders != 2 || !xs[0].RemindedAt.Equal(t0.Add(3*h)) {
					t.Fatalf("after two reminders: %+v, want 2, the last at 3h", xs)
				}
			}
			if w := restarted.p.watches.m[k]; w == nil || !w.RemindAt.Equal(t0.Add(3*h+30*m)) || !w.Due.Equal(t0.Add(3*h+30*m)) {
				t.Fatalf("restarted: watch %+v, want the next reminder due at 3h30", w)
			}
			later := []step{{"", "", 3*h + 31*m}, {"", "", 4*h + m}}
			straight.run(later...)
			restarted.run(later...)
			if got := testutil.ToFloat64(restarted.p.book.reminders.WithLabelValues("warehouse")); got != 2 {
				t.Errorf("restarted: orderwatch_exception_reminders_total{owner=warehouse} = %v, want 2 (3h30, 4h)", got)
			}
			if a, b := straight.exceptions("SO-1"), restarted.exceptions("SO-1"); fmt.Sprint(a) != fmt.Sprint(b) || a[0].Reminders != 4 {
				t.Errorf("restarted: %+v\nwithout a restart: %+v\nwant the same, 4 reminders", b, a)
			}
		})
	}
}

// TestEarlierReleaseRemindersLoad: a store as the release that wrote each
// reminder left it (the exception with its Reminders and RemindedAt and no
// remind_every, the watch with its next RemindAt) loads: the exception reads
// as stored, the next reminder is the stored one, the exception takes its
// deadline's remind_every (written once, at start) and goes on counting from
// there, and it closes with the reminders that release would have counted.
func TestEarlierReleaseRemindersLoad(t *testing.T) {
	const h, m = time.Hour, time.Minute
	k := watchKey{"SO-1", "released-not-picked"}
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRun(t, eventTime, store.Options{})
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", h}, step{"", "", 2*h + m},
				step{"", "", 2*h + 31*m}, step{"", "", 3*h + m})
			// As the earlier release wrote them after the reminder at 3h.
			w := r.p.watches.m[k]
			old := *w.Exception
			old.Reminders, old.RemindedAt, old.RemindEvery = 2, t0.Add(3*h), 0
			v, err := json.Marshal(&old)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := r.st.Order("SO-1")
			if err != nil {
				t.Fatal(err)
			}
			var rec orderRecord
			if err := decodeRecord(raw.Record, &rec); err != nil {
				t.Fatal(err)
			}
			if !w.RemindAt.Equal(t0.Add(3*h + 30*m)) {
				t.Fatalf("watch %+v: want the next reminder at 3h30", w)
			}
			rec.watchRaw = appendWatchSection(nil, r.p.watches, "SO-1")
			enc, err := encodeRecord(nil, &rec)
			if err != nil {
				t.Fatal(err)
			}
			b := r.st.NewBatch()
			if err := b.PutException("SO-1", exceptionKey(&old), v, 0); err != nil {
				t.Fatal(err)
			}
			if err := b.PutOrder("SO-1", enc, 0); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
			if xs := r.exceptions("SO-1"); len(xs) != 1 || xs[0].Reminders != 2 || !xs[0].RemindedAt.Equal(t0.Add(3*h)) {
				t.Fatalf("as the earlier release left it: %+v, want 2 reminders, the last at 3h", xs)
			}

			r.p = r.processor(r.p.opts.Policy)
			if w := r.p.watches.m[k]; w == nil || !w.Due.Equal(t0.Add(3*h+30*m)) || w.Exception.RemindEvery.D() != 30*m {
				t.Fatalf("loaded: watch %+v, want the next reminder due at 3h30 on a 30m schedule", w)
			}
			xs := r.exceptions("SO-1")
			if len(xs) != 1 || xs[0].Reminders != 2 || !xs[0].RemindedAt.Equal(t0.Add(3*h)) || xs[0].RemindEvery.D() != 30*m {
				t.Fatalf("loaded: %+v, want 2 reminders, the last at 3h, written with remind_every 30m", xs)
			}
			r.run(step{"", "", 3*h + 31*m})
			if xs := r.exceptions("SO-1"); xs[0].Reminders != 3 || !xs[0].RemindedAt.Equal(t0.Add(3*h+30*m)) {
				t.Fatalf("at 3h31: %+v, want 3 reminders, the last at 3h30", xs)
			}
			r.run(step{"pick.confirmed", "SO-1", 3*h + 40*m}, step{"", "", 5 * h})
			xs = r.exceptions("SO-1")
			if got := summary(xs)["released-not-picked"]; got != "closed:expected reminders=3" || !xs[0].RemindedAt.Equal(t0.Add(3*h+30*m)) {
				t.Fatalf("closed: %q (%+v), want closed with 3 reminders, the last at 3h30", got, xs)
			}
			if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("warehouse")); got != 1 {
				t.Errorf("orderwatch_exception_reminders_total{owner=warehouse} after the restart = %v, want 1", got)
			}
		})
	}
}

// TestRemindersStopWithTheirDeadline: an exception whose deadline leaves the
// policy (a restart with a reloaded one) stays open, and its reminders stop where they stood when
// its watch next came due, as the metric's do, instead of reading on.
func TestRemindersStopWithTheirDeadline(t *testing.T) {
	const h, m = time.Hour, time.Minute
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRun(t, eventTime, store.Options{})
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", h}, step{"", "", 2*h + m},
				step{"", "", 2*h + 31*m})
			pol, err := actions.ParsePolicy([]byte(strings.Replace(deadlinePolicy,
				"  - {id: released-not-picked, after: pick.released, expect: pick.confirmed, within: 60m, class: warehouse_capacity, category: execution, remind_every: 30m}\n", "", 1)))
			if err != nil {
				t.Fatal(err)
			}
			r.p = r.processor(actions.NewLive(pol)) // restarted with the reloaded policy
			r.run(step{"", "", 3*h + m}, step{"", "", 6 * h})
			var x *Exception
			for _, e := range r.exceptions("SO-1") {
				if e.Deadline == "released-not-picked" {
					x = &e
				}
			}
			if x == nil || !x.Open || x.Reminders != 1 || !x.RemindedAt.Equal(t0.Add(2*h+30*m)) {
				t.Fatalf("after its deadline left the policy: %+v, want it open with the 1 reminder of 2h30", x)
			}
			if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("warehouse")); got != 0 {
				t.Errorf("orderwatch_exception_reminders_total{owner=warehouse} since the restart = %v, want 0", got)
			}
		})
	}
}
