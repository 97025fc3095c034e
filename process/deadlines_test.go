package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// deadlinePolicy is a policy with the four deadlines of issue 18.
const deadlinePolicy = `
version: deadlines-test
escalation:
  warehouse: [{team: floor-lead, sla: 15m}]
  finance: [{team: credit-desk, sla: 10m}]
exception_owners: {warehouse_capacity: warehouse, credit: credit-desk, invoicing: finance, carrier: floor-lead}
deadlines:
  - {id: released-not-picked, after: pick.released, expect: pick.confirmed, within: 60m, class: warehouse_capacity, category: execution, remind_every: 30m}
  - {id: credit-hold-open, after: credit.hold, expect: credit.released, within: 4h, class: credit, category: policy}
  - {id: shipped-not-invoiced, after: shipment.confirmed, expect: invoice.created, within: 24h, class: invoicing, category: execution}
  - {id: past-cutoff-unshipped, after: cutoff, expect: shipment.confirmed, within: 0m, class: carrier, category: execution}
rules:
  - id: shadow-only
    action: notify_customer_service
    mode: shadow
    when: {risk: {gte: 0.99}}
`

var t0 = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

// step is an event of an order at t0+at, or, with typ "", a look at the
// exceptions at t0+at: the clock (live) or the watermark (replay) moves there
// first.
type step struct {
	typ, order string
	at         time.Duration
}

// deadlineRun drives a Processor live (a fake clock, Tick) or on event time
// (as Replay does), over a Badger store in a temp dir.
type deadlineRun struct {
	t         *testing.T
	p         *Processor
	st        *store.Store
	reg       *prometheus.Registry
	eventTime bool
	clock     time.Time
	seq       int
	// owns, when set, is Options.Owns of the processors the run opens.
	owns func(int) bool
	// data, when set, is the data of the events of a type other than
	// order.created ("{}" otherwise).
	data map[string]string
}

func newDeadlineRun(t *testing.T, eventTime bool, so store.Options) *deadlineRun {
	t.Helper()
	return newDeadlineRunWith(t, eventTime, so, deadlinePolicy)
}

// newDeadlineRunWith is newDeadlineRun with another policy.
func newDeadlineRunWith(t *testing.T, eventTime bool, so store.Options, policy string) *deadlineRun {
	t.Helper()
	pol, err := actions.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	so.Dir = t.TempDir()
	st, err := store.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &deadlineRun{t: t, st: st, eventTime: eventTime, clock: t0}
	r.p = r.processor(actions.NewLive(pol))
	return r
}

// processor opens a Processor on the run's store, as a restart would.
func (r *deadlineRun) processor(live *actions.Live) *Processor {
	r.reg = prometheus.NewRegistry()
	p, err := New(Options{Store: r.st, Policy: live, EventTime: r.eventTime, Registerer: r.reg,
		Clock: func() time.Time { return r.clock }, Owns: r.owns,
		DeadLetter: func(context.Context, *Message, string, string) error { return errors.New("unexpected dead letter") }})
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *deadlineRun) msg(typ, order string, at time.Time) *Message {
	r.seq++
	data := "{}"
	if d, ok := r.data[typ]; ok {
		data = d
	}
	if typ == "order.created" {
		data = fmt.Sprintf(`{"warehouse":"DAL","customer_id":"C-1","carrier":"UPS","ship_cutoff":%q,"lines":1,"units":1,"value":10}`,
			t0.Add(8*time.Hour).Format(time.RFC3339))
	}
	return &Message{Seq: uint64(r.seq), Subject: storedSubject(typ, order),
		Data: fmt.Appendf(nil, `{"id":"e-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`,
			r.seq, typ, order, at.UTC().Format(time.RFC3339Nano), data)}
}

// do takes a step: an event is processed; a look moves the clock (live, then
// a Tick) or the watermark (an event of another order).
func (r *deadlineRun) do(s step) error {
	r.t.Helper()
	at := t0.Add(s.at)
	if s.typ == "" {
		if r.eventTime {
			_, err := r.p.Process(context.Background(), []*Message{r.msg("note.added", "SO-CLOCK", at)})
			return err
		}
		r.clock = at
		_, err := r.p.Tick()
		return err
	}
	if !r.eventTime {
		r.clock = at
	}
	_, err := r.p.Process(context.Background(), []*Message{r.msg(s.typ, s.order, at)})
	return err
}

func (r *deadlineRun) run(steps ...step) {
	r.t.Helper()
	for _, s := range steps {
		if err := r.do(s); err != nil {
			r.t.Fatalf("step %+v: %v", s, err)
		}
	}
}

// now is the run's time: the clock live, the watermark on event time.
func (r *deadlineRun) now() time.Time {
	if r.eventTime && r.p != nil {
		return r.p.Watermark()
	}
	return r.clock
}

// exceptions returns the stored exceptions of an order, read as the API
// reads them: their reminders as of the run's time (ExceptionAt).
func (r *deadlineRun) exceptions(order string) []Exception {
	r.t.Helper()
	raws, err := r.st.OrderExceptions(order)
	if err != nil {
		r.t.Fatal(err)
	}
	out := make([]Exception, len(raws))
	for i, raw := range raws {
		raw, err := ExceptionAt(raw, r.now())
		if err != nil {
			r.t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			r.t.Fatal(err)
		}
	}
	return out
}

// summary says, per deadline, what its exceptions of the order are:
// "open" or "closed:<how>", with the reminders when there are some.
func summary(xs []Exception) map[string]string {
	out := map[string]string{}
	for _, x := range xs {
		s := "open"
		if !x.Open {
			s = "closed:" + x.ClosedBy
		}
		if x.Reminders > 0 {
			s += fmt.Sprintf(" reminders=%d", x.Reminders)
		}
		out[x.Deadline] = s
	}
	return out
}

// TestDeadlinesFireAndNot: each deadline of the policy opens its exception
// when its expected event is late or missing, and opens none when it comes in
// time, live on the wall clock and in replay on event time.
func TestDeadlinesFireAndNot(t *testing.T) {
	const h, m = time.Hour, time.Minute
	cases := []struct {
		name  string
		steps []step
		want  map[string]string
	}{
		{"picked in time", []step{{"order.created", "SO-1", 0}, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", h + 59*m}, {"", "", 3 * h}},
			map[string]string{}},
		{"picked late", []step{{"order.created", "SO-1", 0}, {"pick.released", "SO-1", h}, {"", "", 2*h + m}},
			map[string]string{"released-not-picked": "open"}},
		{"picked at the deadline itself", []step{{"order.created", "SO-1", 0}, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}, {"", "", 3 * h}},
			map[string]string{}},
		{"credit released in time", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"credit.released", "SO-1", 4 * h}, {"", "", 5 * h}},
			map[string]string{}},
		{"credit hold open too long", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", 4*h + 11*m}},
			map[string]string{"credit-hold-open": "open"}},
		{"credit released late", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", 4*h + 11*m}, {"credit.released", "SO-1", 4*h + 20*m}},
			map[string]string{"credit-hold-open": "closed:expected"}},
		{"shipped before the cutoff", []step{{"order.created", "SO-1", 0}, {"shipment.confirmed", "SO-1", 7 * h}, {"", "", 9 * h}},
			map[string]string{}},
		{"past the cutoff unshipped", []step{{"order.created", "SO-1", 0}, {"", "", 8*h + m}},
			map[string]string{"past-cutoff-unshipped": "open"}},
		{"invoiced in time", []step{{"order.created", "SO-1", 0}, {"shipment.confirmed", "SO-1", 7 * h}, {"invoice.created", "SO-1", 30 * h}, {"", "", 40 * h}},
			map[string]string{}},
		{"shipped, never invoiced", []step{{"order.created", "SO-1", 0}, {"shipment.confirmed", "SO-1", 7 * h}, {"", "", 31*h + m}},
			map[string]string{"shipped-not-invoiced": "open"}},
		{"cancelled with an exception open", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", 5 * h}, {"order.cancelled", "SO-1", 6 * h}, {"", "", 30 * h}},
			map[string]string{"credit-hold-open": "closed:cancelled"}},
	}
	for _, eventTime := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("event_time=%v/%s", eventTime, c.name), func(t *testing.T) {
				r := newDeadlineRun(t, eventTime, store.Options{})
				r.run(c.steps...)
				got := summary(r.exceptions("SO-1"))
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Errorf("exceptions %v, want %v", got, c.want)
				}
			})
		}
	}
}

// TestInvoicedLateOpensAndCloses: a shipped order (closed for scoring) stays
// watched: invoiced a day and three hours after shipment, its
// shipped-not-invoiced exception opens when the 24 h pass, owned by finance,
// and closes when the invoice comes; the record says when and by what.
func TestInvoicedLateOpensAndCloses(t *testing.T) {
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRun(t, eventTime, store.Options{})
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour},
				step{"pick.confirmed", "SO-1", 90 * time.Minute}, step{"shipment.confirmed", "SO-1", 2 * time.Hour},
				step{"", "", 26*time.Hour + time.Minute})
			xs := r.exceptions("SO-1")
			if len(xs) != 1 || !xs[0].Open || xs[0].Deadline != "shipped-not-invoiced" {
				t.Fatalf("after 24 h uninvoiced: %+v, want the shipped-not-invoiced exception open", xs)
			}
			x := xs[0]
			if x.Owner != "finance" || x.Class != "invoicing" || x.Category != "execution" || !x.OpenedAt.Equal(t0.Add(26*time.Hour)) ||
				!x.StartedAt.Equal(t0.Add(2*time.Hour)) || x.Warehouse != "DAL" || x.Carrier != "UPS" || x.Customer != "C-1" {
				t.Errorf("open exception %+v: want owner finance, class invoicing, opened at the deadline, and the order's warehouse, carrier, customer", x)
			}
			r.run(step{"invoice.created", "SO-1", 27 * time.Hour}, step{"", "", 60 * time.Hour})
			xs = r.exceptions("SO-1")
			if len(xs) != 1 || xs[0].Open || xs[0].ClosedBy != ClosedExpected || !xs[0].ClosedAt.Equal(t0.Add(27*time.Hour)) || xs[0].CloseEvent == "" {
				t.Fatalf("after the invoice: %+v, want it closed by the expected event at its time", xs)
			}
			if xs[0].ID != x.ID {
				t.Errorf("closed exception id %q, opened as %q", xs[0].ID, x.ID)
			}
		})
	}
}

// TestRemindersRepeatUntilClosed: an open exception is reminded every
// remind_every while it is open, and no more once it is closed.
func TestRemindersRepeatUntilClosed(t *testing.T) {
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRun(t, eventTime, store.Options{})
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour}, step{"", "", 2*time.Hour + time.Minute})
			if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "open" {
				t.Fatalf("at the deadline: %q, want open without reminders", got)
			}
			r.run(step{"", "", 2*time.Hour + 31*time.Minute}, step{"", "", 3*time.Hour + time.Minute})
			if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "open reminders=2" {
				t.Fatalf("an hour later: %q, want open with 2 reminders", got)
			}
			r.run(step{"pick.confirmed", "SO-1", 3*time.Hour + 10*time.Minute}, step{"", "", 10 * time.Hour})
			xs := r.exceptions("SO-1")
			if got := summary(xs)["released-not-picked"]; got != "closed:expected reminders=2" {
				t.Fatalf("after the pick: %q, want closed with the 2 reminders", got)
			}
			for _, x := range xs {
				if x.Deadline == "released-not-picked" && !x.RemindedAt.Equal(t0.Add(3*time.Hour)) {
					t.Errorf("last reminder at %v, want %v", x.RemindedAt, t0.Add(3*time.Hour))
				}
			}
			if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("warehouse")); got != 2 {
				t.Errorf("orderwatch_exception_reminders_total{owner=warehouse} = %v, want 2", got)
			}
		})
	}
}

// TestExceptionMetrics: orderwatch_open_exceptions counts the open exceptions
// by owner and class, orderwatch_oldest_open_exception_age_seconds the age of
// each owner's oldest, and both go to zero when they close.
func TestExceptionMetrics(t *testing.T) {
	r := newDeadlineRun(t, false, store.Options{})
	r.run(step{"order.created", "SO-1", 0}, step{"order.created", "SO-2", 0}, step{"order.created", "SO-3", 0},
		step{"pick.released", "SO-1", time.Hour}, step{"pick.released", "SO-2", 90 * time.Minute},
		step{"credit.hold", "SO-3", 0}, step{"", "", 4*time.Hour + 30*time.Minute})
	want := `
# HELP orderwatch_oldest_open_exception_age_seconds Age of the oldest open exception of each owner team (since it opened); replay measures it on event time.
# TYPE orderwatch_oldest_open_exception_age_seconds gauge
orderwatch_oldest_open_exception_age_seconds{owner="credit-desk"} 1800
orderwatch_oldest_open_exception_age_seconds{owner="finance"} 0
orderwatch_oldest_open_exception_age_seconds{owner="floor-lead"} 0
orderwatch_oldest_open_exception_age_seconds{owner="warehouse"} 9000
# HELP orderwatch_open_exceptions Exceptions open now (a policy deadline passed, or an event showed trouble), by the owner team they sit with now and class.
# TYPE orderwatch_open_exceptions gauge
orderwatch_open_exceptions{class="carrier",owner="floor-lead"} 0
orderwatch_open_exceptions{class="credit",owner="credit-desk"} 1
orderwatch_open_exceptions{class="invoicing",owner="finance"} 0
orderwatch_open_exceptions{class="warehouse_capacity",owner="warehouse"} 2
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "orderwatch_open_exceptions", "orderwatch_oldest_open_exception_age_seconds"); err != nil {
		t.Fatal(err)
	}
	r.run(step{"pick.confirmed", "SO-1", 5 * time.Hour}, step{"pick.confirmed", "SO-2", 5 * time.Hour}, step{"credit.released", "SO-3", 5 * time.Hour})
	want = strings.NewReplacer(" 1800", " 0", " 9000", " 0", "} 1\n", "} 0\n", "} 2\n", "} 0\n").Replace(want)
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "orderwatch_open_exceptions", "orderwatch_oldest_open_exception_age_seconds"); err != nil {
		t.Fatal(err)
	}
	// A restart counts the open exceptions from the store.
	r.run(step{"order.created", "SO-4", 6 * time.Hour}, step{"pick.released", "SO-4", 6 * time.Hour}, step{"", "", 7*time.Hour + time.Minute})
	r.p = r.processor(r.p.opts.Policy)
	if got := testutil.ToFloat64(gaugeOf(t, r.reg, "warehouse", "warehouse_capacity")); got != 1 {
		t.Errorf("after a restart: %v open, want 1", got)
	}
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, owner, class string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderwatch_open_exceptions" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var o, c string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "owner":
					o = l.GetValue()
				case "class":
					c = l.GetValue()
				}
			}
			if o == owner && c == class {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g"})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no orderwatch_open_exceptions{owner=%q,class=%q}", owner, class)
	return nil
}

// TestDeadlineWatchCommitsWithItsEvent: the watch a deadline starts and the
// exception an event closes are written in the commit of that event: a batch
// whose commit fails leaves neither (the deadline does not fire, the
// exception stays open), and a restart finds what committed.
func TestDeadlineWatchCommitsWithItsEvent(t *testing.T) {
	var calls, failAt int
	so := store.Options{CheckSpace: func() error {
		if calls++; calls == failAt {
			return errors.New("disk full (test)")
		}
		return nil
	}}
	r := newDeadlineRun(t, false, so)
	r.run(step{"order.created", "SO-1", 0})
	// The release's commit fails (the store is asked at staging, then at the
	// commit): no clock starts.
	failAt = calls + 2
	if err := r.do(step{"pick.released", "SO-1", time.Hour}); err == nil {
		t.Fatal("the release's batch committed, want its commit to fail")
	}
	r.run(step{"", "", 3 * time.Hour})
	if xs := r.exceptions("SO-1"); len(xs) != 0 {
		t.Fatalf("a release that did not commit opened %+v", xs)
	}
	// Released again, committed; a restart before the deadline fires it.
	r.run(step{"pick.released", "SO-1", 4 * time.Hour})
	r.p = r.processor(r.p.opts.Policy)
	r.run(step{"", "", 5*time.Hour + time.Minute})
	if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "open" {
		t.Fatalf("after a restart past the deadline: %q, want open", got)
	}
	// The pick's commit fails: the exception stays open, and the redelivered
	// pick closes it.
	failAt = calls + 2
	if err := r.do(step{"pick.confirmed", "SO-1", 5*time.Hour + 5*time.Minute}); err == nil {
		t.Fatal("the pick's batch committed, want its commit to fail")
	}
	if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "open" {
		t.Fatalf("after a pick that did not commit: %q, want open", got)
	}
	r.seq--
	r.run(step{"pick.confirmed", "SO-1", 5*time.Hour + 5*time.Minute}, step{"", "", 8 * time.Hour})
	if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "closed:expected" {
		t.Fatalf("after the redelivered pick: %q, want closed:expected", got)
	}
}

// TestDroppedPartitionTakesItsExceptions: a partition another member owns now
// takes its watches and exception records with it, and its open exceptions
// leave the gauges; the new owner rebuilds them from the events.
func TestDroppedPartitionTakesItsExceptions(t *testing.T) {
	r := newDeadlineRun(t, false, store.Options{})
	r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour}, step{"", "", 2*time.Hour + time.Minute})
	if got := testutil.ToFloat64(gaugeOf(t, r.reg, "warehouse", "warehouse_capacity")); got != 1 {
		t.Fatalf("before the drop: %v open, want 1", got)
	}
	if _, err := r.p.DropPartition(0); err != nil {
		t.Fatal(err)
	}
	if xs := r.exceptions("SO-1"); len(xs) != 0 {
		t.Errorf("after the drop the store still has %+v", xs)
	}
	if got := testutil.ToFloat64(gaugeOf(t, r.reg, "warehouse", "warehouse_capacity")); got != 0 {
		t.Errorf("after the drop: %v open, want 0", got)
	}
	var n int
	if err := r.st.Watches(func([]byte) error { n++; return nil }); err != nil || n != 0 || len(r.p.watches.m) != 0 {
		t.Errorf("after the drop: %d stored watches (%v), %d in memory; want none", n, err, len(r.p.watches.m))
	}
}

// TestReplayOpensAndClosesExceptions: process.Replay (what `orderwatch
// replay` runs) fires the deadlines on event time: an order invoiced 25 h
// after shipment opens its shipped-not-invoiced exception at 24 h and closes
// it with the invoice; one invoiced in time opens none.
func TestReplayOpensAndClosesExceptions(t *testing.T) {
	pol, err := actions.ParsePolicy([]byte(deadlinePolicy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var lines strings.Builder
	n := 0
	line := func(typ, order string, at time.Duration) {
		n++
		data := "{}"
		if typ == "order.created" {
			data = fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(8*time.Hour).Format(time.RFC3339))
		}
		fmt.Fprintf(&lines, `{"id":"e-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`+"\n",
			n, typ, order, t0.Add(at).Format(time.RFC3339), data)
	}
	line("order.created", "SO-LATE", 0)
	line("order.created", "SO-OK", 0)
	line("shipment.confirmed", "SO-LATE", 2*time.Hour)
	line("shipment.confirmed", "SO-OK", 2*time.Hour)
	line("invoice.created", "SO-OK", 20*time.Hour)
	line("invoice.created", "SO-LATE", 27*time.Hour)
	if _, err := Replay(context.Background(), strings.NewReader(lines.String()), ReplayOptions{Store: st, Policy: actions.NewLive(pol), BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	r := &deadlineRun{t: t, st: st}
	if got := summary(r.exceptions("SO-OK")); len(got) != 0 {
		t.Errorf("SO-OK, invoiced in time: %v, want none", got)
	}
	xs := r.exceptions("SO-LATE")
	if len(xs) != 1 || xs[0].Deadline != "shipped-not-invoiced" || xs[0].Open || xs[0].ClosedBy != ClosedExpected ||
		!xs[0].OpenedAt.Equal(t0.Add(26*time.Hour)) || !xs[0].ClosedAt.Equal(t0.Add(27*time.Hour)) {
		t.Errorf("SO-LATE, invoiced 25 h after shipment: %+v, want shipped-not-invoiced opened at 26 h and closed by the invoice at 27 h", xs)
	}
}

// TestMissedRemindersAreOne: an exception found long overdue (history, or
// after downtime) fires one reminder for the time nothing ran, not one per
// remind_every missed: a year-old deadline must not make 17,000 firings. Its
// record, which derives its reminders, reads the elapsed count.
func TestMissedRemindersAreOne(t *testing.T) {
	r := newDeadlineRun(t, false, store.Options{})
	r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour}, step{"", "", 2*time.Hour + time.Minute},
		step{"", "", 400 * 24 * time.Hour})
	if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("warehouse")); got != 1 {
		t.Errorf("orderwatch_exception_reminders_total{owner=warehouse} after 400 days without a tick: %v, want 1", got)
	}
	// Due at 2h, every 30m, read at 400 days: every 30m from 2h30 on.
	want := int((400*24*time.Hour - 2*time.Hour - 1) / (30 * time.Minute))
	for _, x := range r.exceptions("SO-1") {
		if x.Deadline == "released-not-picked" && x.Reminders != want {
			t.Errorf("reminders read after 400 days: %d, want %d (one each 30m since the deadline)", x.Reminders, want)
		}
	}
}

// TestTickSkipsPartitionsNotOwned: a Tick that finds due timers (a deadline
// watch and a rescoring timer) only of a partition this instance does not own
// now (a lease lapsed under load, before the partition is dropped) returns
// without firing them, instead of looping on them: the loop that waits in
// Tick is the one that would run the partition's drop, and the lease renewal
// starves beside it. Once the partition is owned again they fire.
func TestTickSkipsPartitionsNotOwned(t *testing.T) {
	owned := true
	var refused int
	r := newDeadlineRun(t, false, store.Options{})
	r.owns = func(int) bool {
		if owned {
			return true
		}
		// Bounded: a Tick that asks again and again is the bug; give up
		// refusing so that the test ends and says so.
		if refused++; refused > 1000 {
			return true
		}
		return false
	}
	r.p = r.processor(r.p.opts.Policy)
	r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour})
	owned = false
	r.clock = t0.Add(7 * time.Hour)
	if _, err := r.p.Tick(); err != nil {
		t.Fatal(err)
	}
	if refused > 1000 {
		t.Fatalf("Tick asked %d times whether the partition is owned: it loops on timers it does not own", refused)
	}
	if xs := r.exceptions("SO-1"); len(xs) != 0 {
		t.Fatalf("a partition not owned fired %+v", xs)
	}
	owned = true
	if _, err := r.p.Tick(); err != nil {
		t.Fatal(err)
	}
	// Due at 2h, read at 7h: reminded each 30m from 2h30 to 6h30.
	if got := summary(r.exceptions("SO-1"))["released-not-picked"]; got != "open reminders=9" {
		t.Fatalf("owned again: %q, want released-not-picked open, 9 reminders", got)
	}
}

// eventPolicy has deadlines that open at their start event, with an expect
// list, next_milestone and codes, and a three-tier ladder.
const eventPolicy = `
version: event-deadlines-test
escalation:
  finance:
    - {team: credit-desk, sla: 10m}
    - {team: finance-controller, sla: 30m}
    - {team: cfo-office, sla: 2h}
  operations: [{team: order-desk, sla: 15m}]
exception_owners: {credit: finance, edi_mapping: operations, carrier: order-desk, warehouse_capacity: credit-desk}
deadlines:
  - {id: credit-hold-open, after: credit.hold, open: start, expect: [credit.released, order.changed], within: 1h, class: credit, category: policy, remind_every: 1h}
  - {id: integration-error-open, after: integration.error, open: start, expect: next_milestone, within: 2h, class: edi_mapping, category: integration}
  - {id: carrier-no-show, after: carrier.status, codes: [NO_SHOW], open: start, expect: shipment.confirmed, within: 2h, class: carrier, category: execution}
  - {id: released-not-picked, after: pick.released, expect: pick.confirmed, within: 60m, class: warehouse_capacity, category: execution}
rules:
  - id: shadow-only
    action: notify_customer_service
    mode: shadow
    when: {risk: {gte: 0.99}}
`

// TestExceptionsOpenedByEvents: a deadline with open: start opens its
// exception with its after event (KindEvent, the event's id and source),
// makes it overdue when within passes, and any of its expected events closes
// it; next_milestone is met by the next milestone event, not by any event.
// Live and on event time.
func TestExceptionsOpenedByEvents(t *testing.T) {
	const h, m = time.Hour, time.Minute
	cases := []struct {
		name  string
		steps []step
		want  string // the order's exceptions as summary, then overdue
	}{
		{"credit hold released in time", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", 20 * m}},
			"map[credit-hold-open:open] overdue=false"},
		{"credit hold released in time, closed", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"credit.released", "SO-1", h}, {"", "", 5 * h}},
			"map[credit-hold-open:closed:expected] overdue=false"},
		{"credit hold closed by the second expected type", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"order.changed", "SO-1", h}, {"", "", 5 * h}},
			"map[credit-hold-open:closed:expected] overdue=false"},
		{"credit hold past its deadline", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", h + 11*m}},
			"map[credit-hold-open:open] overdue=true"},
		{"credit hold released late", []step{{"order.created", "SO-1", 0}, {"credit.hold", "SO-1", 10 * m}, {"", "", 2 * h}, {"credit.released", "SO-1", 3 * h}},
			"map[credit-hold-open:closed:expected reminders=1] overdue=true"},
		{"integration error, a note does not resolve it", []step{{"order.created", "SO-1", 0}, {"integration.error", "SO-1", 10 * m}, {"note.added", "SO-1", 20 * m}, {"", "", 30 * m}},
			"map[integration-error-open:open] overdue=false"},
		{"integration error resolved by the next milestone", []step{{"order.created", "SO-1", 0}, {"integration.error", "SO-1", 10 * m}, {"inventory.allocated", "SO-1", h}, {"", "", 5 * h}},
			"map[integration-error-open:closed:expected] overdue=false"},
		{"carrier status without a listed code", []step{{"order.created", "SO-1", 0}, {"carrier.status", "SO-1", 10 * m}, {"", "", 5 * h}},
			"map[] overdue=false"},
	}
	for _, eventTime := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("event_time=%v/%s", eventTime, c.name), func(t *testing.T) {
				r := newDeadlineRunWith(t, eventTime, store.Options{}, eventPolicy)
				r.data = map[string]string{"carrier.status": `{"carrier":"UPS","code":"ON_TIME"}`}
				r.run(c.steps...)
				xs := r.exceptions("SO-1")
				overdue := false
				for _, x := range xs {
					overdue = overdue || x.Overdue
					if x.Kind != KindEvent || x.OpenEvent != "e-2" || x.Source != "test" || !x.OpenedAt.Equal(t0.Add(10*m)) || x.StartEvent != "e-2" {
						t.Errorf("exception %+v: want kind event, opened by e-2 from source test at its time", x)
					}
				}
				if got := fmt.Sprintf("%v overdue=%v", summary(xs), overdue); got != c.want {
					t.Errorf("got %s, want %s", got, c.want)
				}
			})
		}
	}
}

// TestDeadlineCodes: a deadline with codes starts its clock only for an after
// event whose code (causeOf) is one of them.
func TestDeadlineCodes(t *testing.T) {
	for _, c := range []struct {
		data string
		want string
	}{
		{`{"carrier":"UPS","code":"ROLLED"}`, "map[]"},
		{`{"carrier":"UPS","code":"NO_SHOW"}`, "map[carrier-no-show:open]"},
	} {
		r := newDeadlineRunWith(t, true, store.Options{}, eventPolicy)
		r.data = map[string]string{"carrier.status": c.data}
		var ev features.Event
		if err := features.Decode(r.msg("carrier.status", "SO-1", t0).Data, &ev); err != nil {
			t.Fatal(err)
		}
		r.seq = 0
		if _, code, _ := causeOf(&ev, &features.OrderState{}); c.want != "map[]" && code == "" {
			t.Skipf("causeOf gives no carrier.status code yet (process/causes.go, the causes part of issue 18): the code %s cannot start a clock", c.data)
		}
		r.run(step{"order.created", "SO-1", 0}, step{"carrier.status", "SO-1", 10 * time.Minute})
		if got := fmt.Sprint(summary(r.exceptions("SO-1"))); got != c.want {
			t.Errorf("carrier.status %s: %s, want %s", c.data, got, c.want)
		}
	}
}

// TestEscalation: an exception that sits past its deadline moves one tier up
// its owner's ladder each SLA of the tier it is at, counted by the team it
// moves to, keeps being reminded, and stops at the ladder's end; one resolved
// in time never escalates. Live and on event time.
func TestEscalation(t *testing.T) {
	const h, m = time.Hour, time.Minute
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRunWith(t, eventTime, store.Options{}, eventPolicy)
			// Due at 1h; finance's first tier has 10m, the second 30m.
			r.run(step{"order.created", "SO-1", 0}, step{"credit.hold", "SO-1", 0}, step{"order.created", "SO-2", 0},
				step{"credit.hold", "SO-2", 0}, step{"credit.released", "SO-2", 50 * m})
			look := func(at time.Duration) Exception {
				t.Helper()
				r.run(step{"", "", at})
				xs := r.exceptions("SO-1")
				if len(xs) != 1 {
					t.Fatalf("at %v: %+v, want one exception", at, xs)
				}
				return xs[0]
			}
			type got struct {
				Owner       string
				Escalations int
				At          time.Duration
			}
			check := func(at time.Duration, want got) {
				t.Helper()
				x := look(at)
				g := got{x.Owner, x.Escalations, x.EscalatedAt.Sub(t0)}
				if x.EscalatedAt.IsZero() {
					g.At = 0
				}
				if g != want || x.FirstOwner != "finance" {
					t.Errorf("at %v: %+v (first owner %q), want %+v, first owner finance", at, g, x.FirstOwner, want)
				}
			}
			check(h+m, got{"finance", 0, 0})
			check(h+9*m, got{"finance", 0, 0})
			check(h+11*m, got{"finance-controller", 1, h + 10*m})
			check(h+39*m, got{"finance-controller", 1, h + 10*m})
			check(h+41*m, got{"cfo-office", 2, h + 40*m})
			check(2*h+m, got{"cfo-office", 2, h + 40*m})
			check(3*h+m, got{"cfo-office", 2, h + 40*m})
			check(30*h, got{"cfo-office", 2, h + 40*m})
			// Due at 1h, every hour: 2h to 29h; fired at 2h, 3h and once
			// for the hours no look came.
			if x := look(30 * h); x.Reminders != 28 || !x.RemindedAt.Equal(t0.Add(29*h)) || !x.Open {
				t.Errorf("at the ladder's end: %+v, want it open and reminded still, 28 times, the last at 29h", x)
			}
			if got := testutil.ToFloat64(r.p.book.reminders.WithLabelValues("cfo-office")); got != 3 {
				t.Errorf("orderwatch_exception_reminders_total{owner=cfo-office} = %v, want 3", got)
			}
			for owner, want := range map[string]float64{"finance-controller": 1, "cfo-office": 1} {
				if got := testutil.ToFloat64(r.p.book.escalations.WithLabelValues(owner)); got != want {
					t.Errorf("orderwatch_exception_escalations_total{owner=%q} = %v, want %v", owner, got, want)
				}
			}
			if got := testutil.ToFloat64(gaugeOf(t, r.reg, "cfo-office", "credit")); got != 1 {
				t.Errorf("orderwatch_open_exceptions{owner=cfo-office,class=credit} = %v, want 1", got)
			}
			xs := r.exceptions("SO-2")
			if len(xs) != 1 || xs[0].Open || xs[0].Escalations != 0 || xs[0].Owner != "finance" || xs[0].Overdue {
				t.Errorf("SO-2, released before its deadline: %+v, want closed, never overdue nor escalated", xs)
			}
		})
	}
}

// TestEscalationAfterDowntime: an exception found overdue long after its
// deadline (downtime, history) is at the tier it would have reached, with one
// escalation counted per tier.
func TestEscalationAfterDowntime(t *testing.T) {
	r := newDeadlineRunWith(t, false, store.Options{}, eventPolicy)
	r.run(step{"order.created", "SO-1", 0}, step{"credit.hold", "SO-1", 0}, step{"", "", 50 * time.Hour})
	xs := r.exceptions("SO-1")
	if len(xs) != 1 || xs[0].Owner != "cfo-office" || xs[0].Escalations != 2 || !xs[0].Overdue {
		t.Fatalf("50 h after a 1 h deadline, in one tick: %+v, want it overdue and escalated twice to cfo-office", xs)
	}
}

// TestWatchSection: the watches an order record carries read back as they
// were, in the order they started, each with the key of its exception; a
// section this release does not know the form of is an error.
func TestWatchSection(t *testing.T) {
	x := &Exception{ID: "SO-1/d/1", Order: "SO-1", Deadline: "d", Owner: "finance", Open: true, Kind: KindEvent, DueAt: t0, OpenedAt: t0}
	ws := newWatches()
	in := []*watch{
		{Order: "SO-1", Deadline: "released-not-picked", Started: t0},
		{Order: "SO-1", Deadline: "d", Started: t0.Add(time.Nanosecond), StartEvent: "e-1", Due: t0.Add(90 * time.Minute),
			Warehouse: "DAL", Carrier: "UPS", Customer: "C-1", Milestone: "picked", Exception: x, Passed: true,
			RemindAt: t0.Add(2 * time.Hour), EscalateAt: t0.Add(90 * time.Minute)},
		{Order: "SO-2", Deadline: "d", Started: t0},
	}
	for _, w := range in {
		ws.put(w)
	}
	raw := appendWatchSection(nil, ws, "SO-1")
	got, err := parseWatchSection("SO-1", raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("read %d watches, want 2", len(got))
	}
	for i, sw := range got {
		want := *in[i]
		want.Exception = nil
		if fmt.Sprint(*sw.w) != fmt.Sprint(want) {
			t.Errorf("watch %d read back as\n%+v\nwant\n%+v", i, *sw.w, want)
		}
	}
	if got[0].ex != "" || got[1].ex != "d/1" {
		t.Errorf("exception keys %q, %q; want none, then d/1", got[0].ex, got[1].ex)
	}
	if raw := appendWatchSection(nil, ws, "SO-3"); len(raw) != 0 {
		t.Errorf("an order without watches has a section of %d bytes", len(raw))
	}
	if _, err := parseWatchSection("SO-1", append([]byte{4}, raw[1:]...)); !errors.Is(err, errWatchSection) {
		t.Errorf("a section of form 2: %v, want errWatchSection", err)
	}
	if _, err := parseWatchSection("SO-1", raw[:len(raw)-1]); err == nil {
		t.Error("a truncated section read without error")
	}
}

// TestWatchHeap: the written-out heap pops in time, then order and deadline
// order.
func TestWatchHeap(t *testing.T) {
	var h watchHeap
	for i, at := range []int{5, 3, 9, 1, 3, 7, 0, 3, 8, 2} {
		h.push(watchEntry{t0.Add(time.Duration(at) * time.Minute), watchKey{fmt.Sprintf("SO-%d", 9-i), "d"}})
	}
	var got []string
	for len(h) > 0 {
		got = append(got, fmt.Sprintf("%v/%s", h[0].at.Sub(t0), h[0].key.order))
		h.pop()
	}
	want := "[0s/SO-3 1m0s/SO-6 2m0s/SO-0 3m0s/SO-2 3m0s/SO-5 3m0s/SO-8 5m0s/SO-9 7m0s/SO-4 8m0s/SO-1 9m0s/SO-7]"
	if fmt.Sprint(got) != want {
		t.Errorf("popped %v, want %s", got, want)
	}
}

// TestShippedPolicyExceptions: with the shipped policy, a credit hold opens
// its exception at once, owned by finance; unreleased after 4 h it is
// overdue, and 10 minutes later (credit-desk's SLA) it is with
// finance-controller; a pick released and not confirmed, and an order past
// its cutoff unshipped, open theirs, owned by warehouse, with site-manager
// after floor-lead's 15 minutes.
func TestShippedPolicyExceptions(t *testing.T) {
	const h, m = time.Hour, time.Minute
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDeadlineRunWith(t, eventTime, store.Options{}, string(actions.DefaultPolicy()))
			r.run(step{"order.created", "SO-1", 0}, step{"credit.hold", "SO-1", m})
			if xs := r.exceptions("SO-1"); len(xs) != 1 || xs[0].Deadline != "credit-hold-open" || xs[0].Owner != "finance" || !xs[0].Open || xs[0].Overdue {
				t.Fatalf("after the hold: %+v, want credit-hold-open open, owned by finance, not overdue", xs)
			}
			r.run(step{"", "", 4*h + 2*m}, step{"credit.released", "SO-1", 4*h + 5*m}, step{"pick.released", "SO-1", 5 * h},
				step{"order.created", "SO-2", 5 * h}, step{"credit.hold", "SO-2", 5 * h}, step{"", "", 9*h + 11*m})
			got := map[string]string{}
			for _, o := range []string{"SO-1", "SO-2"} {
				for _, x := range r.exceptions(o) {
					got[o+" "+x.Deadline] = fmt.Sprintf("open=%v overdue=%v owner=%s", x.Open, x.Overdue, x.Owner)
				}
			}
			want := map[string]string{
				"SO-1 credit-hold-open":      "open=false overdue=true owner=finance",
				"SO-1 released-not-picked":   "open=true overdue=true owner=site-manager",
				"SO-1 past-cutoff-unshipped": "open=true overdue=true owner=site-manager",
				"SO-2 credit-hold-open":      "open=true overdue=true owner=finance-controller",
				"SO-2 past-cutoff-unshipped": "open=true overdue=true owner=site-manager",
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("exceptions\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// TestWatchKeepsTheLatestException: the exception a watch embeds (what a
// restart reads back) is the record as last written in the batch, whoever
// wrote it.
func TestWatchKeepsTheLatestException(t *testing.T) {
	r := newDeadlineRunWith(t, false, store.Options{}, eventPolicy)
	r.run(step{"order.created", "SO-1", 0}, step{"credit.hold", "SO-1", 0}, step{"", "", time.Hour + 11*time.Minute})
	// Another part changes the open exception and writes it (putException).
	w := r.p.watches.m[watchKey{"SO-1", "credit-hold-open"}]
	b := r.st.NewBatch()
	w.Exception.Incident = "inc-1"
	if err := r.p.putException(b, w.Exception, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.p.flushWatches(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	r.p = r.processor(r.p.opts.Policy)
	got := r.p.watches.m[watchKey{"SO-1", "credit-hold-open"}].Exception
	xs := r.exceptions("SO-1")
	if len(xs) != 1 || got == nil || fmt.Sprint(*got) != fmt.Sprint(xs[0]) || got.Incident != "inc-1" || got.Owner != "finance-controller" {
		t.Errorf("after a restart the watch holds %+v, the record is %+v: want the same, with the incident and the escalation", got, xs)
	}
}

// TestEscalationLadderInACircle: a ladder that names a team twice does not
// climb in a circle (the team escalates from its last place): long after the
// deadline the exception has climbed the ladder once, not once per SLA since.
func TestEscalationLadderInACircle(t *testing.T) {
	policy := strings.Replace(eventPolicy, "    - {team: cfo-office, sla: 2h}\n", "    - {team: credit-desk, sla: 10m}\n", 1)
	r := newDeadlineRunWith(t, false, store.Options{}, policy)
	r.run(step{"order.created", "SO-1", 0}, step{"credit.hold", "SO-1", 0}, step{"", "", 400 * 24 * time.Hour})
	xs := r.exceptions("SO-1")
	if len(xs) != 1 || xs[0].Escalations != 2 || xs[0].Owner != "credit-desk" {
		t.Fatalf("400 days after the deadline, in one tick: %+v, want 2 escalations, to credit-desk at the ladder's end", xs)
	}
}
