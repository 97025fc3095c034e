package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// TestClockTimersFireInSlices: live, when the clock makes many rescoring timers
// due at once (a cluster of cutoffs, a restart after downtime), a Tick fires at
// most timerSlice of them and says that more are left, and a batch staged
// meanwhile carries at most timerSlice of them: neither holds the messages
// behind it for the whole backlog. Ticking again until none is left fires every
// one of them, once.
func TestClockTimersFireInSlices(t *testing.T) {
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	now := t0
	var timerRows int
	p, _, _ := newTestProcessor(t, store.Options{}, Options{
		Clock: func() time.Time { return now },
		OnRow: func(r *Row) {
			if r.Trigger == TriggerTimer {
				timerRows++
			}
		},
	})
	const orders = 5 * timerSlice
	var batch []*Message
	for i := range orders {
		batch = append(batch, createdMsg(i+1, fmt.Sprintf("SO-%d", i), t0))
	}
	if _, err := p.Process(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if timerRows != 0 {
		t.Fatalf("%d timer rows before the clock moved, want 0", timerRows)
	}

	// Every order's first checkpoint (4 h before its cutoff, 8 h after
	// creation) is due; the later ones are not yet.
	now = t0.Add(4*time.Hour + 30*time.Minute)
	timerRows = 0
	if _, err := p.Process(context.Background(), []*Message{createdMsg(orders+1, "SO-late", now)}); err != nil {
		t.Fatal(err)
	}
	if timerRows == 0 || timerRows > timerSlice {
		t.Fatalf("a batch staged with %d timers due fired %d of them, want 1 to %d", orders, timerRows, timerSlice)
	}
	fired, inBatch := timerRows, timerRows

	ticks := 0
	for ; ticks < 2*orders; ticks++ {
		timerRows = 0
		res, err := p.Tick()
		if err != nil {
			t.Fatal(err)
		}
		if timerRows > timerSlice {
			t.Fatalf("tick %d fired %d timers, want at most %d", ticks+1, timerRows, timerSlice)
		}
		fired += timerRows
		if !res.TimersLeft {
			break
		}
		if timerRows == 0 {
			t.Fatalf("tick %d fired nothing and says timers are left", ticks+1)
		}
	}
	if fired != orders {
		t.Errorf("%d timers fired in a batch and %d ticks, want %d: each order's due checkpoint, once", fired, ticks+1, orders)
	}
	if ticks+1 < (orders-inBatch)/timerSlice {
		t.Errorf("%d ticks fired %d timers: more than %d a tick", ticks+1, orders-inBatch, timerSlice)
	}
	timerRows = 0
	if res, err := p.Tick(); err != nil || res.Timers || timerRows != 0 {
		t.Errorf("a tick after the backlog: %+v, %v, %d timer rows; want nothing due", res, err, timerRows)
	}
}
