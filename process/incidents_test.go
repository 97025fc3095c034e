package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// incidentPolicy groups within an hour; notify adds the notification.
const incidentPolicy = `
version: incidents-test
escalation:
  warehouse: [{team: floor-lead, sla: 15m}]
exception_owners: {carrier: floor-lead}
incidents: {window: 1h%s}
rules:
  - {id: shadow-only, action: notify_customer_service, mode: shadow, when: {risk: {gte: 0.99}}}
`

// newIncidentRun is a deadlineRun under incidentPolicy with extra (the rest
// of the incidents: key).
func newIncidentRun(t *testing.T, extra string) *deadlineRun {
	t.Helper()
	pol, err := actions.ParsePolicy(fmt.Appendf(nil, incidentPolicy, extra))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &deadlineRun{t: t, st: st, eventTime: true, clock: t0}
	r.p = r.processor(actions.NewLive(pol))
	return r
}

// exOf is an open exception of order with cause, opened at t0+at.
func exOf(order, cause string, at time.Duration) *Exception {
	opened := t0.Add(at)
	return &Exception{ID: order + "/late/" + fmt.Sprint(opened.UnixNano()), Order: order, Deadline: "late", Class: "carrier",
		Category: actions.CategoryExecution, Owner: "floor-lead", OpenedAt: opened, DueAt: opened, Open: true,
		Kind: KindEvent, Cause: cause}
}

// closeEx closes x at t0+at.
func closeEx(x *Exception, at time.Duration) *Exception {
	x.Open, x.ClosedAt, x.ClosedBy = false, t0.Add(at), ClosedExpected
	return x
}

// commit stages a batch without messages in which fn joins or leaves
// incidents, and submits and waits for it, as a batch of the pipeline.
func (r *deadlineRun) commit(fn func(b *store.Batch) error) error {
	p := r.p
	p.reset(0)
	s := &Staged{st: p.batchState, batch: r.st.NewBatch()}
	if err := fn(s.batch); err != nil {
		p.Abort(s)
		return err
	}
	p.scoreRows()
	f, err := p.Submit(s)
	if err != nil {
		return err
	}
	_, err = p.Wait(f)
	return err
}

// join opens each exception as the contract says (joinIncident, then
// putException), in one batch.
func (r *deadlineRun) join(xs ...*Exception) {
	r.t.Helper()
	err := r.commit(func(b *store.Batch) error {
		for _, x := range xs {
			if err := r.p.joinIncident(b, x); err != nil {
				return err
			}
			if err := r.p.putException(b, x, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// leave writes each exception closed after leaveIncident, in one batch.
func (r *deadlineRun) leave(xs ...*Exception) {
	r.t.Helper()
	err := r.commit(func(b *store.Batch) error {
		for _, x := range xs {
			if err := r.p.leaveIncident(b, x); err != nil {
				return err
			}
			if err := r.p.putException(b, x, time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

// incidents reads the stored incidents.
func (r *deadlineRun) incidents() []Incident {
	r.t.Helper()
	out, err := Incidents(r.st)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestIncidentGrouping: exceptions of one cause within the window of the
// incident's last one join it (in one batch or several), outside it start a
// new incident, and different causes make different incidents; an order
// with two exceptions of the cause counts once.
func TestIncidentGrouping(t *testing.T) {
	const edi, carrier = "integration/edi/MAP-UOM/C-0042", "carrier/ODFL/DAL"
	for _, tc := range []struct {
		name    string
		batches [][]*Exception
		want    []Incident
		of      []int // the index of the incident each exception (in order) joined
	}{
		{
			name:    "same cause within the window is one incident",
			batches: [][]*Exception{{exOf("SO-1", edi, 0), exOf("SO-2", edi, 10*time.Minute)}, {exOf("SO-3", edi, 65*time.Minute)}},
			want: []Incident{{Cause: edi, Kind: "integration", Orders: []string{"SO-1", "SO-2", "SO-3"}, OrderCount: 3,
				Exceptions: 3, OpenExceptions: 3, FirstSeen: t0, LastSeen: t0.Add(65 * time.Minute), State: IncidentOpen}},
			of: []int{0, 0, 0},
		},
		{
			name:    "same cause past the window is two incidents",
			batches: [][]*Exception{{exOf("SO-1", edi, 0)}, {exOf("SO-2", edi, 61*time.Minute)}},
			want: []Incident{
				{Cause: edi, Kind: "integration", Orders: []string{"SO-1"}, OrderCount: 1, Exceptions: 1, OpenExceptions: 1,
					FirstSeen: t0, LastSeen: t0, State: IncidentOpen},
				{Cause: edi, Kind: "integration", Orders: []string{"SO-2"}, OrderCount: 1, Exceptions: 1, OpenExceptions: 1,
					FirstSeen: t0.Add(61 * time.Minute), LastSeen: t0.Add(61 * time.Minute), State: IncidentOpen},
			},
			of: []int{0, 1},
		},
		{
			name:    "different causes are two incidents",
			batches: [][]*Exception{{exOf("SO-1", edi, 0), exOf("SO-2", carrier, time.Minute)}},
			want: []Incident{
				{Cause: edi, Kind: "integration", Orders: []string{"SO-1"}, OrderCount: 1, Exceptions: 1, OpenExceptions: 1,
					FirstSeen: t0, LastSeen: t0, State: IncidentOpen},
				{Cause: carrier, Kind: "carrier", Orders: []string{"SO-2"}, OrderCount: 1, Exceptions: 1, OpenExceptions: 1,
					FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(time.Minute), State: IncidentOpen},
			},
			of: []int{0, 1},
		},
		{
			name:    "an order counts once",
			batches: [][]*Exception{{exOf("SO-1", edi, 0), exOf("SO-1", edi, time.Minute), exOf("SO-2", edi, 2*time.Minute)}},
			want: []Incident{{Cause: edi, Kind: "integration", Orders: []string{"SO-1", "SO-2"}, OrderCount: 2,
				Exceptions: 3, OpenExceptions: 3, FirstSeen: t0, LastSeen: t0.Add(2 * time.Minute), State: IncidentOpen}},
			of: []int{0, 0, 0},
		},
		{
			name:    "an exception without a cause is not grouped",
			batches: [][]*Exception{{exOf("SO-1", "", 0)}},
			of:      []int{-1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newIncidentRun(t, "")
			var all []*Exception
			for _, b := range tc.batches {
				r.join(b...)
				all = append(all, b...)
			}
			got := r.incidents()
			if len(got) != len(tc.want) {
				t.Fatalf("%d incidents, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.ID != incidentID(w.Cause, w.FirstSeen) || g.Owner != "floor-lead" || g.Class != "carrier" {
					t.Errorf("incident %d: id %s owner %s class %s, want id %s of the cause and the first exception's owner and class",
						i, g.ID, g.Owner, g.Class, incidentID(w.Cause, w.FirstSeen))
				}
				g.ID, g.Owner, g.Class = "", "", ""
				g.FirstSeen, g.LastSeen = g.FirstSeen.UTC(), g.LastSeen.UTC()
				if gj, wj := mustJSON(t, g), mustJSON(t, w); gj != wj {
					t.Errorf("incident %d:\n got %s\nwant %s", i, gj, wj)
				}
			}
			for i, x := range all {
				want := ""
				if tc.of[i] >= 0 {
					want = got[tc.of[i]].ID
				}
				if x.Incident != want {
					t.Errorf("exception %d joined %q, want %q", i, x.Incident, want)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIncidentCloseReopenAndMetrics: an incident closes when its last open
// exception closes (at that close's time), opens again when an exception of
// its cause joins within the window of its last one, and a new incident
// starts past it; orderwatch_open_incidents and
// orderwatch_incidents_opened_total follow the commits.
func TestIncidentCloseReopenAndMetrics(t *testing.T) {
	const cause = "warehouse/DAL"
	r := newIncidentRun(t, "")
	open := func() float64 { return testutil.ToFloat64(r.p.incMetrics.open.WithLabelValues("warehouse")) }
	opened := func() float64 { return testutil.ToFloat64(r.p.incMetrics.opened.WithLabelValues("warehouse")) }
	a, b := exOf("SO-1", cause, 0), exOf("SO-2", cause, 5*time.Minute)
	r.join(a, b)
	if open() != 1 || opened() != 1 {
		t.Fatalf("after two joins: open %v, opened %v; want 1, 1", open(), opened())
	}
	r.leave(closeEx(a, 20*time.Minute))
	if inc := r.incidents()[0]; inc.State != IncidentOpen || inc.OpenExceptions != 1 {
		t.Fatalf("one of two closed: %+v, want open with 1 open exception", inc)
	}
	r.leave(closeEx(b, 30*time.Minute))
	inc := r.incidents()[0]
	if inc.State != IncidentClosed || inc.OpenExceptions != 0 || !inc.ClosedAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("both closed: %+v, want closed at t0+30m", inc)
	}
	if open() != 0 {
		t.Fatalf("orderwatch_open_incidents{kind=warehouse} = %v after it closed, want 0", open())
	}
	c := exOf("SO-3", cause, 50*time.Minute) // within 1h of the last, at 5m
	r.join(c)
	got := r.incidents()
	if len(got) != 1 || got[0].State != IncidentOpen || got[0].Reopened != 1 || got[0].OrderCount != 3 || !got[0].ClosedAt.IsZero() || c.Incident != got[0].ID {
		t.Fatalf("a join within the window of a closed incident: %+v, want it reopened with 3 orders", got)
	}
	if open() != 1 || opened() != 1 {
		t.Fatalf("reopened: open %v, opened %v; want 1, 1 (a reopening is not a new incident)", open(), opened())
	}
	r.leave(closeEx(c, 55*time.Minute))
	d := exOf("SO-4", cause, 3*time.Hour)
	r.join(d)
	got = r.incidents()
	if len(got) != 2 || got[0].State != IncidentClosed || got[1].State != IncidentOpen || d.Incident != got[1].ID {
		t.Fatalf("a join past the window: %+v, want the first closed and a second open", got)
	}
	if open() != 1 || opened() != 2 {
		t.Fatalf("second incident: open %v, opened %v; want 1, 2", open(), opened())
	}
	// Leaving twice, or an incident not held, changes nothing and is counted.
	r.leave(closeEx(c, 56*time.Minute))
	if n := testutil.ToFloat64(r.p.incMetrics.ungrouped.WithLabelValues("warehouse", ungroupedUnknown)); n != 1 {
		t.Fatalf("orderwatch_incidents_ungrouped_total{reason=unknown} = %v, want 1", n)
	}
	if got2 := r.incidents(); mustJSON(t, got2) != mustJSON(t, got) {
		t.Fatalf("a second leave changed the incidents:\n%+v\n%+v", got2, got)
	}
}

// TestIncidentsSurviveRestart: a Processor opened again on the store holds
// the incidents as committed: an exception of the cause joins the same
// incident, one leaving closes it, and the open gauge starts from them.
func TestIncidentsSurviveRestart(t *testing.T) {
	const cause = "carrier/ODFL/DAL"
	r := newIncidentRun(t, "")
	a, b := exOf("SO-1", cause, 0), exOf("SO-2", cause, time.Minute)
	r.join(a, b)
	r.join(exOf("SO-9", "price_contract/C-1", 0))
	r.leave(closeEx(b, 2*time.Minute))
	live := r.p.opts.Policy
	r.p = r.processor(live) // restart
	if n := testutil.ToFloat64(r.p.incMetrics.open.WithLabelValues("carrier")); n != 1 {
		t.Fatalf("orderwatch_open_incidents{kind=carrier} after a restart = %v, want 1", n)
	}
	c := exOf("SO-3", cause, 30*time.Minute)
	r.join(c)
	if c.Incident != a.Incident {
		t.Fatalf("after a restart the exception joined %q, want the incident %q", c.Incident, a.Incident)
	}
	r.leave(closeEx(a, 40*time.Minute), closeEx(c, 41*time.Minute))
	got := r.incidents()
	if len(got) != 2 {
		t.Fatalf("%d incidents, want 2: %+v", len(got), got)
	}
	inc := got[0]
	if inc.Cause != cause || inc.State != IncidentClosed || inc.OrderCount != 3 || inc.Exceptions != 3 || !slices.Equal(inc.Orders, []string{"SO-1", "SO-2", "SO-3"}) {
		t.Fatalf("incident after the restart: %+v, want closed with SO-1..3", inc)
	}
}

// TestIncidentAbortedBatch: an incident a failed batch changed is read again
// from the store: its membership is not kept without its commit.
func TestIncidentAbortedBatch(t *testing.T) {
	r := newIncidentRun(t, "")
	const cause = "warehouse/DAL"
	r.join(exOf("SO-1", cause, 0))
	boom := errors.New("boom")
	x := exOf("SO-2", cause, time.Minute)
	err := r.commit(func(b *store.Batch) error {
		if err := r.p.joinIncident(b, x); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if inc := r.p.incidents.byCause[cause]; inc.OrderCount != 1 || inc.OpenExceptions != 1 {
		t.Fatalf("after an aborted batch the incident in memory is %+v, want 1 order as committed", inc)
	}
	r.join(exOf("SO-3", cause, 2*time.Minute))
	if inc := r.incidents()[0]; !slices.Equal(inc.Orders, []string{"SO-1", "SO-3"}) {
		t.Fatalf("orders %v, want SO-1 and SO-3", inc.Orders)
	}
}

// TestIncidentMaxOpen: past max_open open incidents, an exception of a new
// cause is not grouped but counted; one of a cause already open still joins.
func TestIncidentMaxOpen(t *testing.T) {
	r := newIncidentRun(t, ", max_open: 2")
	r.join(exOf("SO-1", "warehouse/A", 0), exOf("SO-2", "warehouse/B", 0))
	c, a := exOf("SO-3", "warehouse/C", time.Minute), exOf("SO-4", "warehouse/A", time.Minute)
	r.join(c, a)
	if c.Incident != "" || a.Incident == "" {
		t.Fatalf("past max_open: new cause joined %q (want none), open cause %q (want its incident)", c.Incident, a.Incident)
	}
	if n := testutil.ToFloat64(r.p.incMetrics.ungrouped.WithLabelValues("warehouse", ungroupedMaxOpen)); n != 1 {
		t.Fatalf("orderwatch_incidents_ungrouped_total{reason=max_open} = %v, want 1", n)
	}
	if got := r.incidents(); len(got) != 2 {
		t.Fatalf("%d incidents, want 2", len(got))
	}
}

// TestIncidentNotify: once an incident affects min_orders orders, one
// notification lists them: a decision of rule incidents.notify under the
// order that made it, and one outbox entry keyed by the incident; more
// orders do not send another.
func TestIncidentNotify(t *testing.T) {
	const cause = "integration/edi/MAP-UOM/C-0042"
	r := newIncidentRun(t, ", notify: {action: notify_customer_service, min_orders: 3}")
	r.join(exOf("SO-1", cause, 0), exOf("SO-2", cause, time.Minute))
	if out, err := r.st.OutboxPage("", 10); err != nil || len(out) != 0 {
		t.Fatalf("two orders: outbox %d entries (%v), want none", len(out), err)
	}
	r.join(exOf("SO-3", cause, 2*time.Minute))
	r.join(exOf("SO-4", cause, 3*time.Minute))
	out, err := r.st.OutboxPage("", 10)
	if err != nil || len(out) != 1 {
		t.Fatalf("outbox %d entries (%v), want 1", len(out), err)
	}
	var job struct {
		Target  string                  `json:"target"`
		MsgID   string                  `json:"msg_id"`
		Command actions.IncidentCommand `json:"command"`
	}
	if err := json.Unmarshal(out[0].Command, &job); err != nil {
		t.Fatal(err)
	}
	inc := r.incidents()[0]
	cmd := job.Command
	if cmd.Incident != inc.ID || !slices.Equal(cmd.Orders, []string{"SO-1", "SO-2", "SO-3"}) || cmd.OrderCount != 3 ||
		cmd.OrderID != "SO-3" || cmd.Action != actions.ActionNotifyCS || job.MsgID != actions.IncidentKey(inc.ID) || cmd.Cause != cause {
		t.Fatalf("command %+v (msg id %s), want incident %s listing SO-1..3 under SO-3", cmd, job.MsgID, inc.ID)
	}
	if inc.Notification != cmd.DecisionID || out[0].DecisionID != cmd.DecisionID {
		t.Fatalf("incident's notification %q, outbox entry %q, command's decision %q: want one", inc.Notification, out[0].DecisionID, cmd.DecisionID)
	}
	v, err := r.st.Decision(cmd.DecisionID)
	if err != nil {
		t.Fatal(err)
	}
	var d actions.Decision
	if err := json.Unmarshal(v.Record, &d); err != nil {
		t.Fatal(err)
	}
	if d.RuleID != actions.RuleIncidentNotify || d.Status != actions.StatusQueued || d.OrderID != "SO-3" || d.TriggerEvent != inc.ID {
		t.Fatalf("decision %+v, want queued by incidents.notify for SO-3", d)
	}
	decs, err := r.st.FindDecisions(store.DecisionsQuery{Order: "SO-3"})
	if err != nil || len(decs) != 1 {
		t.Fatalf("SO-3 lists %d decisions (%v), want its incident's notification", len(decs), err)
	}
}

// TestIncidentNotifyShadow: a notification in shadow mode is recorded, its
// command never queued.
func TestIncidentNotifyShadow(t *testing.T) {
	r := newIncidentRun(t, ", notify: {action: notify_customer_service, min_orders: 1, mode: shadow}")
	x := exOf("SO-1", "warehouse/DAL", 0)
	r.join(x)
	if out, _ := r.st.OutboxPage("", 10); len(out) != 0 {
		t.Fatalf("shadow notification put %d entries in the outbox, want none", len(out))
	}
	if inc := r.incidents()[0]; inc.Notification == "" {
		t.Fatal("shadow notification not recorded")
	}
}

// BenchmarkIncidentJoin: an exception joining the open incident of its
// cause, in memory (the write is once per incident and batch): its order is
// looked up in the incident's list, full at 1000 orders.
func BenchmarkIncidentJoin(b *testing.B) {
	pol, err := actions.ParsePolicy(fmt.Appendf(nil, incidentPolicy, ""))
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	p, err := New(Options{Store: st, Policy: actions.NewLive(pol), EventTime: true,
		DeadLetter: func(context.Context, *Message, string, string) error { return errors.New("unexpected dead letter") }})
	if err != nil {
		b.Fatal(err)
	}
	const cause = "carrier/ODFL/DAL"
	xs := make([]*Exception, 2*MaxIncidentOrders)
	for i := range xs {
		xs[i] = exOf(fmt.Sprintf("SO-%d", i), cause, time.Duration(i)*time.Second)
	}
	batch := st.NewBatch()
	defer batch.Discard()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := xs[i%len(xs)]
		x.Incident = ""
		if err := p.joinIncident(batch, x); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIncidentPartitionDropped: the open exceptions of orders whose
// partition left this instance leave their incidents, at once with
// dropIncidents (DropPartition) and, after a restart, from the exception
// records that store.DropPartition deleted; an incident left without any
// closes, and the next batch writes it.
func TestIncidentPartitionDropped(t *testing.T) {
	const a, b = "warehouse/DAL", "carrier/ODFL/DAL"
	r := newIncidentRun(t, "")
	r.join(exOf("SO-1", a, 0), exOf("SO-2", a, time.Minute), exOf("SO-3", b, 0), exOf("SO-4", b, 0))

	// drop is what DropPartition does: the store forgets the orders' records,
	// the incidents their exceptions.
	drop := func(orders ...string) {
		t.Helper()
		set := map[string]bool{}
		for _, o := range orders {
			set[o] = true
		}
		if err := r.st.DropPartition(0, set, false); err != nil {
			t.Fatal(err)
		}
		r.p.dropIncidents(set)
	}
	// At once: SO-1 and SO-3 go.
	drop("SO-1", "SO-3")
	r.join() // the next batch
	got := r.incidents()
	if got[0].OpenExceptions != 1 || got[0].State != IncidentOpen || got[1].OpenExceptions != 1 || got[1].State != IncidentOpen {
		t.Fatalf("after dropping SO-1 and SO-3: %+v, want both open with one exception", got)
	}
	drop("SO-2")
	r.join()
	if got := r.incidents(); got[0].State != IncidentClosed || got[0].OpenExceptions != 0 || !got[0].ClosedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after dropping SO-2: %+v, want %s closed at its last_seen", got[0], a)
	}

	// After a restart: the store dropped SO-4's records, the incident had not
	// been told.
	if err := r.st.DropPartition(0, map[string]bool{"SO-4": true}, false); err != nil {
		t.Fatal(err)
	}
	r.p = r.processor(r.p.opts.Policy)
	if n := testutil.ToFloat64(r.p.incMetrics.open.WithLabelValues("carrier")); n != 0 {
		t.Fatalf("orderwatch_open_incidents{kind=carrier} after the restart = %v, want 0", n)
	}
	r.join()
	if got := r.incidents(); got[1].State != IncidentClosed || got[1].OpenExceptions != 0 {
		t.Fatalf("after the restart: %+v, want %s closed", got[1], b)
	}
}
