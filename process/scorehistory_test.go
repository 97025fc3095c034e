package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// scriptedScorer gives the rows it scores the risks of its script, in turn,
// and every row the class "none": the tests of what is written per scoring
// need risks they choose, without a model.
type scriptedScorer struct {
	risks []float32
	next  int
	rows  int // rows scored, in all
}

func (s *scriptedScorer) Score(_ []float32, _ [][]string, risk, classes []float32) (Scored, error) {
	for i := range risk {
		risk[i] = s.risks[min(s.next, len(s.risks)-1)]
		s.next++
	}
	for i := range classes {
		classes[i] = 0
		if i%len(scriptLabels) == 0 {
			classes[i] = 1
		}
	}
	s.rows += len(risk)
	return Scored{Risk: actions.ModelRef{Name: "cutoff_risk", Version: "t1"}, Threshold: 0.5,
		ClassModel: &actions.ModelRef{Name: "exception_class", Version: "t1"}, ClassLabels: scriptLabels,
		Release: func() {}}, nil
}

var scriptLabels = []string{"none", "credit", "pricing", "inventory", "address", "edi_mapping", "carrier", "warehouse_capacity", "invoicing"}

// noteMsg is message seq of ORDERS: a note on order at when.
func noteMsg(seq int, order string, when time.Time) *Message {
	return &Message{Seq: uint64(seq), Subject: storedSubject("note.added", order), Data: fmt.Appendf(nil,
		`{"id":"e-%d","type":"note.added","schema":1,"occurred_at":%q,"source":"cs","order_id":%q,"data":{"text":"customer called"}}`,
		seq, when.Format(time.RFC3339), order)}
}

// TestScoreHistoryWrittenWhenItSaysSomething: a score point (v/) was written
// for every scored row, 0.99 per event, the largest share of the writes after
// the events (issue 20). A point is now written for the order's first
// scoring, when the risk moved by actions.ScoreStep or more since the last
// point, and when the scoring decided something; a risk that barely moves
// writes nothing. Each event is a batch of its own here.
func TestScoreHistoryWrittenWhenItSaysSomething(t *testing.T) {
	base := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		risk      float32
		point     bool
		decisions bool
		why       string
	}{
		{0.30, true, false, "the order's first score"},
		{0.32, false, false, "moved 0.02"},
		{0.28, false, false, "moved 0.02 the other way"},
		{0.33, false, false, "moved 0.03"},
		{0.36, true, false, "moved 0.06 since the last point (0.30)"},
		{0.67, true, false, "moved 0.31"},
		{0.69, false, false, "moved 0.02"},
		{0.71, true, true, "moved 0.04, and high-risk-notify-cs decides (risk >= 0.7)"},
		{0.72, false, false, "moved 0.01, the rule's episode goes on"},
	}
	sc := &scriptedScorer{}
	for _, s := range steps {
		sc.risks = append(sc.risks, s.risk)
	}
	clock := base
	p, st, _ := newTestProcessor(t, store.Options{}, Options{Scorer: sc, Clock: func() time.Time { return clock }})
	const order = "SO-HIST"
	msgs := []*Message{{Seq: 1, Subject: storedSubject("order.created", order), Data: fmt.Appendf(nil,
		`{"id":"e-1","type":"order.created","schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-1","lines":1,"units":1,"value":10}}`,
		base.Format(time.RFC3339), order, base.Add(24*time.Hour).Format(time.RFC3339))}}
	for i := 2; i <= len(steps); i++ {
		msgs = append(msgs, noteMsg(i, order, base.Add(time.Duration(i)*time.Minute)))
	}
	for i, m := range msgs {
		clock = base.Add(time.Duration(i+1) * time.Minute) // a point is stored by its moment
		before := st.Writes()
		if _, err := p.Process(context.Background(), []*Message{m}); err != nil {
			t.Fatal(err)
		}
		after := st.Writes()
		points, decisions := after["v/"]-before["v/"], after["d/"]-before["d/"]
		s := steps[i]
		if want := b2u(s.point); points != want {
			t.Errorf("event %d, risk %.2f (%s): %d score points written, want %d", i+1, s.risk, s.why, points, want)
		}
		if (decisions > 0) != s.decisions {
			t.Errorf("event %d, risk %.2f (%s): %d decisions, want some: %v", i+1, s.risk, s.why, decisions, s.decisions)
		}
	}
	if sc.rows != len(steps) {
		t.Fatalf("%d rows scored, want %d: one per event", sc.rows, len(steps))
	}
	pts, err := st.Scores(order)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, raw := range pts {
		var sp actions.ScorePoint
		if err := sp.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		got = append(got, float64(float32(sp.Risk)))
	}
	want := []float64{float64(float32(0.30)), float64(float32(0.36)), float64(float32(0.67)), float64(float32(0.71))}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored history %v, want %v", got, want)
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
