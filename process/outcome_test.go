package process_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// TestOutcomesFromTheEvents: a replayed stream's orders get the outcome their
// own events show at the stream's end: late and timely shipments, an order
// unshipped past its cutoff, cancellations after and before the cutoff (the
// later one with events after it, so its time comes from the timeline), an
// order whose only carrier message came after its shipment (no exception: only
// what happened by the outcome explains it), an open
// order whose cutoff is still ahead (no outcome yet) and an order never created
// (no cutoff, no outcome). The rows exported without labels then get exactly
// these labels from JoinLabels, empty for the orders without an outcome.
func TestOutcomesFromTheEvents(t *testing.T) {
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	n := 0
	ev := func(typ, order string, d time.Duration, data string) []byte {
		n++
		return event(fmt.Sprintf("e-%d", n), typ, order, at(d), data)
	}
	created := func(order string, d, cutoff time.Duration) []byte {
		return ev("order.created", order, d, fmt.Sprintf(`{"warehouse":"DAL","customer_id":"C-1","lines":1,"units":1,"value":10,"ship_cutoff":%q}`,
			at(cutoff).Format(time.RFC3339)))
	}
	lines := [][]byte{
		created("LATE", 0, 2*time.Hour),
		created("TIMELY", 0, 2*time.Hour),
		created("UNSHIPPED", 0, time.Hour),
		created("CANCEL-AFTER", 0, time.Hour),
		created("CANCEL-BEFORE", 0, time.Hour),
		created("OPEN", 0, 10*time.Hour),
		created("SCANNED", 0, 2*time.Hour),
		ev("shipment.confirmed", "SCANNED", 60*time.Minute, `{}`),
		ev("carrier.status", "SCANNED", 70*time.Minute, `{"text":"Picked up, PRO 123"}`),
		ev("credit.hold", "LATE", 10*time.Minute, `{"reason":"limit"}`),
		ev("carrier.status", "LATE", 20*time.Minute, `{"text":"truck delayed"}`),
		ev("credit.released", "LATE", 30*time.Minute, `{}`),
		ev("carrier.status", "TIMELY", 25*time.Minute, `{"text":"truck delayed"}`),
		ev("order.cancelled", "CANCEL-BEFORE", 30*time.Minute, `{"reason":"customer_request"}`),
		ev("shipment.confirmed", "TIMELY", 90*time.Minute, `{}`),
		ev("note.added", "NEVER-CREATED", 100*time.Minute, `{"text":"who is this"}`),
		ev("order.cancelled", "CANCEL-AFTER", 2*time.Hour, `{"reason":"customer_request"}`),
		ev("shipment.confirmed", "LATE", 3*time.Hour+30*time.Second, `{}`),
		ev("note.added", "CANCEL-AFTER", 3*time.Hour+30*time.Minute, `{"text":"customer called"}`),
		ev("note.added", "OPEN", 4*time.Hour, `{"text":"waiting"}`), // the stream's end
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, _ := actions.LoadPolicy("")
	var rows bytes.Buffer
	exp := process.NewExporter(&rows, nil, nil)
	stats, err := process.Replay(context.Background(), bytes.NewReader(bytes.Join(lines, []byte("\n"))), process.ReplayOptions{
		Store: st, Policy: actions.NewLive(policy), BatchSize: 4, OnRow: exp.Row,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Flush(); err != nil {
		t.Fatal(err)
	}
	if stats.DeadLettered != 0 {
		t.Fatalf("dead-lettered %v", stats.Reasons)
	}

	labels, ost, err := process.Outcomes(st)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]process.Label{
		"LATE":          {MissedCutoff: true, MinutesLate: 61, ExceptionClass: features.ExceptionCredit},
		"TIMELY":        {ExceptionClass: features.ExceptionCarrier},
		"UNSHIPPED":     {MissedCutoff: true, MinutesLate: 180, ExceptionClass: features.ExceptionWarehouseCapacity},
		"CANCEL-AFTER":  {MissedCutoff: true, MinutesLate: 60, ExceptionClass: features.ExceptionWarehouseCapacity},
		"CANCEL-BEFORE": {ExceptionClass: features.ExceptionNone},
		"SCANNED":       {ExceptionClass: features.ExceptionNone},
	}
	for id, w := range want {
		if g, ok := labels[id]; !ok || g != w {
			t.Errorf("%s: outcome %+v (%v), want %+v", id, g, ok, w)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("outcomes of %d orders, want %d: %v", len(labels), len(want), labels)
	}
	wantStats := process.OutcomeStats{End: at(4 * time.Hour), Orders: 8, Labelled: 6, Missed: 3, NoOutcome: 1, Unknown: 1, Refolded: 2}
	if !ost.End.Equal(wantStats.End) {
		t.Errorf("stream end %v, want %v", ost.End, wantStats.End)
	}
	ost.End = wantStats.End
	if ost != wantStats {
		t.Errorf("stats %+v, want %+v", ost, wantStats)
	}

	var joined bytes.Buffer
	js, err := process.JoinLabels(&joined, bytes.NewReader(rows.Bytes()), labels)
	if err != nil {
		t.Fatal(err)
	}
	// The joined file is what an Exporter given the same labels writes.
	var direct bytes.Buffer
	exp2 := process.NewExporter(&direct, labels, nil)
	st2, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, err := process.Replay(context.Background(), bytes.NewReader(bytes.Join(lines, []byte("\n"))), process.ReplayOptions{
		Store: st2, Policy: actions.NewLive(policy), BatchSize: 4, OnRow: exp2.Row,
	}); err != nil {
		t.Fatal(err)
	}
	if err := exp2.Flush(); err != nil {
		t.Fatal(err)
	}
	if joined.String() != direct.String() {
		t.Errorf("joined rows differ from rows exported with the labels:\n%s\nwant\n%s", joined.String(), direct.String())
	}
	open := 0
	for _, l := range strings.Split(strings.TrimSpace(joined.String()), "\n")[1:] {
		if strings.HasPrefix(l, "OPEN,") {
			open++
			if !strings.HasSuffix(l, ",,,") {
				t.Errorf("a row of the open order has a label: %s", l)
			}
		}
	}
	if open == 0 || js.Unlabeled != open || js.Rows != stats.Rows {
		t.Errorf("join: %+v, want %d rows of which %d (the open order's) unlabelled", js, stats.Rows, open)
	}
}

// TestJoinLabelsRefusesLabelledRows: rows that already have label columns are
// not joined again.
func TestJoinLabelsRefusesLabelledRows(t *testing.T) {
	var rows bytes.Buffer
	exp := process.NewExporter(&rows, map[string]process.Label{}, nil)
	if err := exp.Flush(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := process.JoinLabels(&out, &rows, nil); err == nil || !strings.Contains(err.Error(), "without labels") {
		t.Errorf("join of labelled rows: %v", err)
	}
}
