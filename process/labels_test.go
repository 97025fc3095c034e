package process

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// TestWarehouseLabelsAreBounded: warehouse ids come from producers; each one
// a series of the per-warehouse gauges would grow /metrics without bound (500
// events with 40 KB names made it 20 MB; the decoder now refuses such names).
// Past the cap, and for a name with odd characters, orders count under
// "other"; the totals stay right.
func TestWarehouseLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := newTestProcessor(t, store.Options{}, Options{Registerer: reg})
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	const orders = 500
	var msgs []*Message
	for i := range orders {
		wh := fmt.Sprintf("WH-%d", i)
		if i%50 == 0 {
			// Within the decoder's bounds (64 bytes, no control characters),
			// not a label: non-ASCII.
			wh = strings.Repeat("é", 25) + wh
		}
		msgs = append(msgs, &Message{Seq: uint64(i + 1), Subject: storedSubject("order.created", fmt.Sprint("SO-", i)), Data: fmt.Appendf(nil,
			`{"id":"e-%d","type":"order.created","schema":1,"occurred_at":%q,"source":"erp","order_id":"SO-%d","data":{"warehouse":%q,"ship_cutoff":%q}}`,
			i, at.Format(time.RFC3339), i, wh, at.Add(8*time.Hour).Format(time.RFC3339))})
	}
	res, err := p.Process(context.Background(), msgs)
	if err != nil || res.Applied != orders {
		t.Fatalf("%+v, %v", res, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderwatch_open_orders_by_warehouse" {
			continue
		}
		var sum float64
		var other bool
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue()
			for _, lp := range m.GetLabel() {
				if len(lp.GetValue()) > maxLabelBytes {
					t.Errorf("a warehouse label of %d bytes", len(lp.GetValue()))
				}
				other = other || lp.GetValue() == labelOther
			}
		}
		if n := len(mf.GetMetric()); n > maxWarehouseLabels+1 {
			t.Errorf("%d warehouse series, want at most %d and other", n, maxWarehouseLabels)
		}
		if sum != orders || !other {
			t.Errorf("open orders by warehouse sum to %v (other %v), want %d with an other series", sum, other, orders)
		}
		return
	}
	t.Fatal("no orderwatch_open_orders_by_warehouse")
}

// TestFailureStagesStartAtZero: alerts and the dashboard read
// orderwatch_batch_failures_total by stage; each stage is there, at 0, before
// the first failure.
func TestFailureStagesStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	newTestProcessor(t, store.Options{}, Options{Registerer: reg})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "orderwatch_batch_failures_total" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = true
			}
		}
	}
	for _, stage := range []string{stageDLQPublish, stageCommit, stageScore, stagePoison} {
		if !got[stage] {
			t.Errorf("orderwatch_batch_failures_total{stage=%q} missing before the first failure", stage)
		}
	}
}
