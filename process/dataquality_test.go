package process

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// dataQualityPolicy runs the four data-quality checks, and no deadline: the
// checks do not depend on them.
const dataQualityPolicy = `
version: data-quality-test
escalation:
  integration: [{team: integration-desk, sla: 30m}]
data_quality: [invoiced_before_shipped, shipped_without_pick, activity_after_cancel, picked_before_released]
rules:
  - id: shadow-only
    action: notify_customer_service
    mode: shadow
    when: {risk: {gte: 0.99}}
`

func newDataQualityRun(t *testing.T, eventTime bool, policy string) *deadlineRun {
	t.Helper()
	pol, err := actions.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &deadlineRun{t: t, st: st, eventTime: eventTime, clock: t0}
	r.p = r.processor(actions.NewLive(pol))
	return r
}

// TestDataQualityChecks: each check opens its exception when the events of
// the order disagree on the order of its milestones, opens none when they
// agree or when the bus only delivered them out of order, and closes when the
// missing event arrives (late_delivery when it happened before the event
// that opened it), when the order is cancelled or when its watch ends; live
// and on event time.
func TestDataQualityChecks(t *testing.T) {
	const h, m = time.Hour, time.Minute
	created := step{"order.created", "SO-1", 0}
	cases := []struct {
		name  string
		steps []step
		want  map[string]string
	}{
		{"milestones in order", []step{created, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}, {"pack.confirmed", "SO-1", 3 * h},
			{"shipment.confirmed", "SO-1", 4 * h}, {"invoice.created", "SO-1", 5 * h}},
			map[string]string{}},
		{"invoiced before shipped", []step{created, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}, {"invoice.created", "SO-1", 3 * h}},
			map[string]string{"data_quality/invoiced_before_shipped": "open"}},
		{"invoiced, shipped an hour later", []step{created, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}, {"invoice.created", "SO-1", 3 * h},
			{"shipment.confirmed", "SO-1", 4 * h}},
			map[string]string{"data_quality/invoiced_before_shipped": "closed:expected"}},
		{"shipment delivered after the invoice", []step{created, {"pick.released", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}, {"invoice.created", "SO-1", 5 * h},
			{"shipment.confirmed", "SO-1", 4 * h}},
			map[string]string{"data_quality/invoiced_before_shipped": "closed:late_delivery"}},
		{"invoiced before shipped, then cancelled", []step{created, {"invoice.created", "SO-1", 3 * h}, {"order.cancelled", "SO-1", 4 * h}},
			map[string]string{"data_quality/invoiced_before_shipped": "closed:cancelled"}},
		{"shipped without a pick", []step{created, {"pick.released", "SO-1", h}, {"shipment.confirmed", "SO-1", 2 * h}},
			map[string]string{"data_quality/shipped_without_pick": "open"}},
		{"shipped after a pack, no pick", []step{created, {"pick.released", "SO-1", h}, {"pack.confirmed", "SO-1", 90 * m}, {"shipment.confirmed", "SO-1", 2 * h}},
			map[string]string{}},
		{"shipped, picked afterwards", []step{created, {"pick.released", "SO-1", h}, {"shipment.confirmed", "SO-1", 2 * h}, {"pick.confirmed", "SO-1", 3 * h}},
			map[string]string{"data_quality/shipped_without_pick": "closed:expected"}},
		{"pick delivered after the shipment", []step{created, {"pick.released", "SO-1", h}, {"shipment.confirmed", "SO-1", 2 * h}, {"pick.confirmed", "SO-1", 90 * m}},
			map[string]string{"data_quality/shipped_without_pick": "closed:late_delivery"}},
		{"shipped without a pick, invoiced", []step{created, {"pick.released", "SO-1", h}, {"shipment.confirmed", "SO-1", 2 * h}, {"invoice.created", "SO-1", 3 * h}},
			map[string]string{"data_quality/shipped_without_pick": "closed:watch_ended"}},
		{"picked before released", []step{created, {"pick.confirmed", "SO-1", h}},
			map[string]string{"data_quality/picked_before_released": "open"}},
		{"release delivered after the pick", []step{created, {"pick.confirmed", "SO-1", h}, {"pick.released", "SO-1", 30 * m}},
			map[string]string{"data_quality/picked_before_released": "closed:late_delivery"}},
		{"picked after cancellation", []step{created, {"order.cancelled", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h}},
			map[string]string{"data_quality/activity_after_cancel": "open"}},
		{"invoiced after cancellation", []step{created, {"order.cancelled", "SO-1", h}, {"invoice.created", "SO-1", 2 * h}, {"note.added", "SO-1", 3 * h}},
			map[string]string{"data_quality/activity_after_cancel": "open"}},
		{"pick delivered after the cancellation it preceded", []step{created, {"pick.released", "SO-1", 30 * m}, {"order.cancelled", "SO-1", 2 * h}, {"pick.confirmed", "SO-1", h}},
			map[string]string{}},
		{"cancellation delivered after a later pick", []step{created, {"pick.released", "SO-1", 30 * m}, {"pick.confirmed", "SO-1", 2 * h}, {"order.cancelled", "SO-1", h}},
			map[string]string{"data_quality/activity_after_cancel": "open"}},
		{"cancelled before any activity", []step{created, {"pick.released", "SO-1", 30 * m}, {"order.cancelled", "SO-1", h}, {"note.added", "SO-1", 2 * h}},
			map[string]string{}},
		{"cancelled, then picked, shipped and invoiced", []step{created, {"order.cancelled", "SO-1", h}, {"pick.confirmed", "SO-1", 2 * h},
			{"shipment.confirmed", "SO-1", 3 * h}, {"invoice.created", "SO-1", 4 * h}, {"invoice.created", "SO-1", 5 * h}},
			map[string]string{"data_quality/activity_after_cancel": "closed:watch_ended"}},
		{"shipped without a pick, cancelled", []step{created, {"shipment.confirmed", "SO-1", 2 * h}, {"order.cancelled", "SO-1", 3 * h}},
			map[string]string{"data_quality/shipped_without_pick": "closed:cancelled"}},
	}
	for _, eventTime := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("event_time=%v/%s", eventTime, c.name), func(t *testing.T) {
				r := newDataQualityRun(t, eventTime, dataQualityPolicy)
				r.run(c.steps...)
				got := summary(r.exceptions("SO-1"))
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Errorf("exceptions %v, want %v", got, c.want)
				}
			})
		}
	}
}

// TestDataQualityChecksOff: a policy that lists no check opens no
// data-quality exception, and one that lists some opens only theirs.
func TestDataQualityChecksOff(t *testing.T) {
	steps := []step{{"order.created", "SO-1", 0}, {"shipment.confirmed", "SO-1", time.Hour}, {"invoice.created", "SO-1", 2 * time.Hour},
		{"order.created", "SO-2", 0}, {"invoice.created", "SO-2", time.Hour}}
	r := newDataQualityRun(t, true, strings.Replace(dataQualityPolicy, "data_quality: [invoiced_before_shipped, shipped_without_pick, activity_after_cancel, picked_before_released]", "", 1))
	r.run(steps...)
	for _, o := range []string{"SO-1", "SO-2"} {
		if got := summary(r.exceptions(o)); len(got) != 0 {
			t.Errorf("no checks, %s: %v, want none", o, got)
		}
	}
	r = newDataQualityRun(t, true, strings.Replace(dataQualityPolicy, "shipped_without_pick, ", "", 1))
	r.run(steps...)
	if got := summary(r.exceptions("SO-1")); len(got) != 0 {
		t.Errorf("without shipped_without_pick, SO-1: %v, want none", got)
	}
	if got := fmt.Sprint(summary(r.exceptions("SO-2"))); got != "map[data_quality/invoiced_before_shipped:open]" {
		t.Errorf("SO-2: %v, want invoiced_before_shipped open", got)
	}
}

// TestDataQualityException: the record of a data-quality exception says what
// opened it, is owned by the policy's data_quality_owner (default
// integration), has class and category data_quality and no cause, is counted
// by the exception metrics, and is still open after a restart.
func TestDataQualityException(t *testing.T) {
	r := newDataQualityRun(t, false, dataQualityPolicy)
	r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour}, step{"shipment.confirmed", "SO-1", 2 * time.Hour})
	xs := r.exceptions("SO-1")
	if len(xs) != 1 {
		t.Fatalf("exceptions %+v, want one", xs)
	}
	x := xs[0]
	if x.Kind != KindDataQuality || x.Class != ClassDataQuality || x.Category != actions.CategoryDataQuality || x.Owner != "integration" ||
		x.Cause != "" || x.Incident != "" || !x.Open || x.OpenEvent != "e-3" || x.StartEvent != "e-3" || x.Source != "test" ||
		!x.OpenedAt.Equal(t0.Add(2*time.Hour)) || x.Warehouse != "DAL" || x.Customer != "C-1" || x.ID != "SO-1/"+exceptionKey(&x) {
		t.Errorf("exception %+v: want a data-quality exception owned by integration, opened by e-3 at 2 h, no cause", x)
	}
	if n := testutil.ToFloat64(gaugeOf(t, r.reg, "integration", ClassDataQuality)); n != 1 {
		t.Errorf("orderwatch_open_exceptions{owner=integration,class=data_quality} = %v, want 1", n)
	}
	// A restart loads it open; the pick closes it.
	r.p = r.processor(r.p.opts.Policy)
	if n := testutil.ToFloat64(gaugeOf(t, r.reg, "integration", ClassDataQuality)); n != 1 {
		t.Errorf("after a restart: open data-quality exceptions %v, want 1", n)
	}
	r.run(step{"pick.confirmed", "SO-1", 3 * time.Hour})
	if got := fmt.Sprint(summary(r.exceptions("SO-1"))); got != "map[data_quality/shipped_without_pick:closed:expected]" {
		t.Errorf("after the pick: %v, want closed:expected", got)
	}
	if n := testutil.ToFloat64(gaugeOf(t, r.reg, "integration", ClassDataQuality)); n != 0 {
		t.Errorf("after the pick: open data-quality exceptions %v, want 0", n)
	}
}

// TestReplayDataQuality: process.Replay (what `orderwatch replay` runs) opens
// and closes data-quality exceptions: an order invoiced before it shipped
// opens one that its later shipment closes; a shipment the stream delivers
// after the invoice it preceded closes it as late_delivery; an order whose
// events agree opens none.
func TestReplayDataQuality(t *testing.T) {
	pol, err := actions.ParsePolicy([]byte(dataQualityPolicy))
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
	for _, o := range []string{"SO-OK", "SO-EARLY", "SO-LATE"} {
		line("order.created", o, 0)
		line("pick.released", o, time.Hour)
		line("pick.confirmed", o, 2*time.Hour)
	}
	line("shipment.confirmed", "SO-OK", 3*time.Hour)
	line("invoice.created", "SO-EARLY", 3*time.Hour)
	line("invoice.created", "SO-OK", 4*time.Hour)
	line("invoice.created", "SO-LATE", 5*time.Hour)
	line("shipment.confirmed", "SO-LATE", 4*time.Hour) // delivered after the invoice
	line("shipment.confirmed", "SO-EARLY", 6*time.Hour)
	if _, err := Replay(context.Background(), strings.NewReader(lines.String()), ReplayOptions{Store: st, Policy: actions.NewLive(pol), BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	r := &deadlineRun{t: t, st: st}
	for o, want := range map[string]string{
		"SO-OK":    "map[]",
		"SO-EARLY": "map[data_quality/invoiced_before_shipped:closed:expected]",
		"SO-LATE":  "map[data_quality/invoiced_before_shipped:closed:late_delivery]",
	} {
		if got := fmt.Sprint(summary(r.exceptions(o))); got != want {
			t.Errorf("%s: %v, want %s", o, got, want)
		}
	}
}

// TestLateDeliveryClosesWhenItArrives: an exception that a late delivery
// opened closes as late_delivery when the late event arrives (at the
// watermark then), not at the late event's own time, before it opened.
func TestLateDeliveryClosesWhenItArrives(t *testing.T) {
	for _, eventTime := range []bool{false, true} {
		t.Run(fmt.Sprintf("event_time=%v", eventTime), func(t *testing.T) {
			r := newDataQualityRun(t, eventTime, dataQualityPolicy)
			r.run(step{"order.created", "SO-1", 0}, step{"pick.released", "SO-1", time.Hour}, step{"pick.confirmed", "SO-1", 2 * time.Hour},
				step{"invoice.created", "SO-1", 5 * time.Hour}, step{"note.added", "SO-2", 6 * time.Hour}, step{"shipment.confirmed", "SO-1", 4 * time.Hour})
			xs := r.exceptions("SO-1")
			if len(xs) != 1 || xs[0].ClosedBy != ClosedLateDelivery || !xs[0].OpenedAt.Equal(t0.Add(5*time.Hour)) || !xs[0].ClosedAt.Equal(t0.Add(6*time.Hour)) {
				t.Errorf("exceptions %+v, want invoiced_before_shipped opened at 5 h, closed as late_delivery at 6 h", xs)
			}
		})
	}
}

// TestDataQualityAllocatesNothingInOrder: on the per-event path, an event
// whose milestones agree (and one of a type no check looks at) costs the
// checks no allocation.
func TestDataQualityAllocatesNothingInOrder(t *testing.T) {
	r := newDataQualityRun(t, true, dataQualityPolicy)
	rec := &orderRecord{State: features.OrderState{OrderID: "SO-1", Known: true, Milestone: features.MilestonePicked,
		MilestoneAt: t0, ShippedAt: t0.Add(time.Hour), LastEventAt: t0.Add(2 * time.Hour)}}
	evs := []features.Event{
		{ID: "e-1", Type: features.TypePickConfirmed, OrderID: "SO-1", OccurredAt: t0},
		{ID: "e-2", Type: features.TypeShipmentConfirmed, OrderID: "SO-1", OccurredAt: t0.Add(time.Hour)},
		{ID: "e-3", Type: features.TypeInvoiceCreated, OrderID: "SO-1", OccurredAt: t0.Add(2 * time.Hour)},
		{ID: "e-4", Type: features.TypeNoteAdded, OrderID: "SO-1", OccurredAt: t0.Add(2 * time.Hour)},
	}
	was := []string{features.MilestoneReleased, features.MilestonePicked, features.MilestoneShipped, features.MilestoneShipped}
	allocs := testing.AllocsPerRun(100, func() {
		for i := range evs {
			if err := r.p.dataQualityEvent(nil, rec, &evs[i], was[i]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of four agreeing events, want 0", allocs)
	}
	if len(r.p.watches.m) != 0 {
		t.Errorf("watches %v, want none: nothing disagrees", r.p.watches.m)
	}
}

// TestDataQualityRebuilt: a partition taken over is rebuilt from its events
// (ModeRebuild, without scoring): its data-quality exceptions open and close
// as the previous owner had them.
func TestDataQualityRebuilt(t *testing.T) {
	r := newDataQualityRun(t, false, dataQualityPolicy)
	var msgs []*Message
	for _, s := range []step{{"order.created", "SO-1", 0}, {"shipment.confirmed", "SO-1", time.Hour},
		{"order.created", "SO-2", 0}, {"invoice.created", "SO-2", time.Hour}, {"shipment.confirmed", "SO-2", 2 * time.Hour}} {
		m := r.msg(s.typ, s.order, t0.Add(s.at))
		m.Mode = ModeRebuild
		msgs = append(msgs, m)
	}
	if _, err := r.p.Process(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	for o, want := range map[string]string{
		"SO-1": "map[data_quality/shipped_without_pick:open]",
		"SO-2": "map[data_quality/invoiced_before_shipped:closed:expected]",
	} {
		if got := fmt.Sprint(summary(r.exceptions(o))); got != want {
			t.Errorf("%s rebuilt: %v, want %s", o, got, want)
		}
	}
}
