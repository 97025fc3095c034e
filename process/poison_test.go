package process

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// counterValue is the sum of a metric's series whose labels include the pairs
// given; a vector without series yet is 0.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() != labels[i+1] {
						continue next
					}
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// damage stores a record that does not decode for order, with a rescoring timer
// at due when due is not zero.
func damage(t *testing.T, st *store.Store, order string, due time.Time) {
	t.Helper()
	b := st.NewBatch()
	if err := b.PutOrder(order, []byte{0x7f, 0, 1}, 0); err != nil {
		t.Fatal(err)
	}
	if !due.IsZero() {
		if err := b.PutDue(due, order); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestPoisonTimerIsDropped: a rescoring timer whose order's stored record does
// not decode fails its rescoring every tick, and every batch staged behind it.
// The processor starts anyway, drops that timer (counted), and goes on: the
// tick commits and the next message is applied.
func TestPoisonTimerIsDropped(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	damage(t, st, "SO-BAD", now.Add(-time.Minute))
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := New(Options{Store: st, Policy: actions.NewLive(policy), Registerer: reg, Clock: func() time.Time { return now },
		DeadLetter: func(context.Context, *Message, string, string) error { return nil }})
	if err != nil {
		t.Fatalf("a damaged stored record stops the processor from starting: %v", err)
	}
	if _, err := p.Tick(); err != nil {
		t.Fatalf("tick with a poison timer: %v", err)
	}
	res, err := p.Process(context.Background(), []*Message{createdMsg(1, "SO-1", now)})
	if err != nil || res.Applied != 1 {
		t.Fatalf("the message after the poison timer: %+v, %v", res, err)
	}
	if n := counterValue(t, reg, "orderwatch_rescoring_timers_dropped_total"); n != 1 {
		t.Errorf("orderwatch_rescoring_timers_dropped_total = %v, want 1", n)
	}
	if _, err := p.Tick(); err != nil {
		t.Fatalf("a later tick: %v", err)
	}
	dues, err := st.Dues()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dues {
		if d.Order == "SO-BAD" {
			t.Errorf("the poison timer is still stored: %+v", d)
		}
	}
}

// nanScorer scores every row NaN, as a broken model may, without saying so.
type nanScorer struct{}

func (nanScorer) Score(_ []float32, _ [][]string, risk, _ []float32) (Scored, error) {
	for i := range risk {
		risk[i] = float32(math.NaN())
	}
	return Scored{Risk: actions.ModelRef{Name: "cutoff_risk", Version: "9.9.9"}, Threshold: 0.5}, nil
}

// TestNonFiniteRiskDoesNotStickTheBatch: a scorer that returns NaN for a row it
// does not mark degraded must not fail the batch for ever: the row falls back to
// the rules (degraded) and every message is applied.
func TestNonFiniteRiskDoesNotStickTheBatch(t *testing.T) {
	p, st, dead := newTestProcessor(t, store.Options{}, Options{Scorer: nanScorer{}})
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	res, err := p.Process(context.Background(), []*Message{createdMsg(1, "SO-1", at), createdMsg(2, "SO-2", at)})
	if err != nil || res.Applied != 2 {
		t.Fatalf("batch scored NaN: %+v, %v; want both applied", res, err)
	}
	if *dead != 0 {
		t.Errorf("%d dead letters, want none: a bad score is the model's fault, not the event's", *dead)
	}
	v, err := st.Order("SO-1")
	if err != nil {
		t.Fatal(err)
	}
	var rec orderRecord
	if err := decodeRecord(v.Record, &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Degraded || rec.Risk == nil || math.IsNaN(*rec.Risk) {
		t.Errorf("SO-1 degraded %v, risk %v; want the rules fallback's finite risk, degraded", rec.Degraded, rec.Risk)
	}
}

// TestDamagedContextRecordIsSkipped: a stored context aggregate that does not
// decode stopped the processor from starting (and from reloading after any
// failed batch). It is left out, counted, and rebuilt by the next event.
func TestDamagedContextRecordIsSkipped(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := st.NewBatch()
	if err := b.PutContext(features.KindCarrier, "UPS", []byte(`{"on_time":`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p, err := New(Options{Store: st, Policy: actions.NewLive(policy), Registerer: reg, EventTime: true,
		DeadLetter: func(context.Context, *Message, string, string) error { return nil }})
	if err != nil {
		t.Fatalf("a damaged context record stops the processor from starting: %v", err)
	}
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	perf := &Message{Seq: 2, Subject: "orders.carrier.performance", Data: fmt.Appendf(nil,
		`{"id":"cp-1","type":"carrier.performance","schema":1,"occurred_at":%q,"source":"tms","data":{"carrier":"UPS","on_time_share":0.9}}`, at.Format(time.RFC3339))}
	if res, err := p.Process(context.Background(), []*Message{createdMsg(1, "SO-1", at), perf}); err != nil || res.Applied != 2 {
		t.Fatalf("%+v, %v; want both applied", res, err)
	}
	if n := counterValue(t, reg, "orderwatch_stored_records_unreadable_total", "kind", features.KindCarrier); n != 1 {
		t.Errorf("orderwatch_stored_records_unreadable_total{kind=carrier} = %v, want 1", n)
	}
}
