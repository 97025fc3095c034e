package process

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// orderMsg is message seq of ORDERS: an event of type typ on order at when,
// with data (JSON members).
func orderMsg(seq int, typ, order string, when time.Time, data string) *Message {
	return &Message{Seq: uint64(seq), Subject: storedSubject(typ, order), Data: fmt.Appendf(nil,
		`{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{%s}}`,
		seq, typ, when.Format(time.RFC3339), order, data)}
}

func createdData(cutoff time.Time) string {
	return fmt.Sprintf(`"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-1","lines":1,"units":1,"value":10`, cutoff.Format(time.RFC3339))
}

// TestDecidesOnTheLatestState: within a batch each touched order is scored
// and decided once, at its latest event (issue 20, decision 1): the rows of
// its earlier events, superseded in the same batch, are neither scored nor
// decided, and counted. Every row here is at risk 0.75, so
// high-risk-notify-cs decides once per order, on the row it sees first:
// before, that was each order's first event of the batch.
func TestDecidesOnTheLatestState(t *testing.T) {
	base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	sc := &scriptedScorer{risks: []float32{0.75}}
	reg := prometheus.NewRegistry()
	p, st, _ := newTestProcessor(t, store.Options{}, Options{Scorer: sc, Registerer: reg, Clock: func() time.Time { return base }})
	cutoff := base.Add(24 * time.Hour)
	batch := []*Message{
		orderMsg(1, "order.created", "SO-A", base, createdData(cutoff)),
		orderMsg(2, "order.created", "SO-B", base, createdData(cutoff)),
		orderMsg(3, "note.added", "SO-A", base.Add(time.Minute), `"text":"call first"`),
		orderMsg(4, "note.added", "SO-A", base.Add(2*time.Minute), `"text":"call again"`),
		orderMsg(5, "note.added", "SO-B", base.Add(3*time.Minute), `"text":"call first"`),
		orderMsg(6, "order.created", "SO-C", base, createdData(cutoff)),
	}
	if _, err := p.Process(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if sc.rows != 3 {
		t.Errorf("%d rows scored for 6 events on 3 orders, want 3: one per order, at its latest event", sc.rows)
	}
	if got := testutil.ToFloat64(p.m.superseded); got != 3 {
		t.Errorf("orderwatch_rows_superseded_total = %v, want 3", got)
	}
	want := map[string]string{"SO-A": "e-4", "SO-B": "e-5", "SO-C": "e-6"}
	for order, ev := range want {
		v, err := st.Order(order)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Decisions) != 1 {
			t.Errorf("%s: %d decisions, want 1", order, len(v.Decisions))
			continue
		}
		var d actions.Decision
		if err := json.Unmarshal(v.Decisions[0], &d); err != nil {
			t.Fatal(err)
		}
		if d.TriggerEvent != ev || d.RuleID != "high-risk-notify-cs" {
			t.Errorf("%s decided %s on %s, want high-risk-notify-cs on its latest event %s", order, d.RuleID, d.TriggerEvent, ev)
		}
	}
}

// TestSupersededRowKeepsTheEval: an order's outcome is judged on its last
// score at least evalHorizon before its cutoff. A batch that straddles that
// moment holds the row it is judged on (here the rescoring timer's, 2 h
// before the cutoff) before the order's latest row (an event 1 h before it,
// which decides): that superseded row is still scored, for the eval alone,
// so the eval is the one a batch per event gives. Compared with a run that
// exports (and so scores) every row.
func TestSupersededRowKeepsTheEval(t *testing.T) {
	base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	cutoff := base.Add(6 * time.Hour)
	first := []*Message{orderMsg(1, "order.created", "SO-E", base, createdData(cutoff))}
	// One batch: the timers due before the note (4 h, 2 h before the
	// cutoff...) fire in it, on the way to the note an hour before.
	second := []*Message{orderMsg(2, "note.added", "SO-E", cutoff.Add(-time.Hour), `"text":"late truck"`)}

	run := func(onRow func(*Row)) (*Processor, *store.Store, *countingScorer) {
		sc := &countingScorer{}
		p, st, _ := newTestProcessor(t, store.Options{}, Options{Scorer: sc, EventTime: true, OnRow: onRow})
		for _, b := range [][]*Message{first, second} {
			if _, err := p.Process(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		return p, st, sc
	}
	var rows []Row
	_, _, all := run(func(r *Row) { rows = append(rows, *r) })
	_, st, latest := run(nil)

	horizon := cutoff.Add(-evalHorizon)
	var want *Row
	for i := range rows {
		if !rows[i].Moment.After(horizon) {
			want = &rows[i]
		}
	}
	if want == nil || want.Trigger != TriggerTimer {
		t.Fatalf("exported rows %+v: want a timer row at or before %s", rows, horizon)
	}
	if latest.rows >= all.rows {
		t.Errorf("%d rows scored without the export, %d with it: want fewer", latest.rows, all.rows)
	}
	v, err := st.Order("SO-E")
	if err != nil {
		t.Fatal(err)
	}
	var rec orderRecord
	if err := decodeRecord(v.Record, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Eval == nil || rec.Eval.Risk != want.Risk {
		t.Fatalf("eval %+v, want the risk %v of the %s row at %s, the last at least %s before the cutoff", rec.Eval, want.Risk, want.Trigger, want.Moment, evalHorizon)
	}
}

// countingScorer is spreadScorer, counting the rows it scores.
type countingScorer struct {
	spreadScorer
	rows int
}

func (s *countingScorer) Score(rows []float32, texts [][]string, risk, classes []float32) (Scored, error) {
	s.rows += len(risk)
	return s.spreadScorer.Score(rows, texts, risk, classes)
}
