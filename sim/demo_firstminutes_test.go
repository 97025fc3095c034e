package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// demoWindow is what a demo published from its start until its clock passed the
// start by a duration: the backlog (published before the clock moved) and the live
// events, decoded, and the outcomes the stream lets a reader know by then.
type demoWindow struct {
	backlog, live map[string]int // events by type
	// orders created before the start that the stream shows again after it.
	oldCreated, oldLive int
	// Outcomes of published orders known by the end (shipped by the cutoff: met;
	// cutoff passed unshipped and not cancelled: missed), before the start and
	// during the window.
	metBefore, missedBefore, met, missed int
}

// runDemoWindow runs a demo on a fake clock from start for d of demo time.
func runDemoWindow(t *testing.T, opts DemoOptions, start time.Time, d time.Duration) demoWindow {
	t.Helper()
	var mu sync.Mutex
	now := start
	opts.Clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	opts.BacklogRate = 1e9
	dm := NewDemo(opts)
	dm.sleep = func(ctx context.Context, dt time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(dt)
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	type order struct {
		created, cutoff, shipped, cancelled time.Time
		liveSeen                            bool
	}
	orders := make(map[string]*order)
	w := demoWindow{backlog: make(map[string]int), live: make(map[string]int)}
	end := start.Add(d)
	err := dm.Run(ctx, func(_ context.Context, _, id string, data []byte) error {
		mu.Lock()
		at := now
		mu.Unlock()
		if at.After(end) {
			cancel()
			return nil
		}
		var ev features.Event
		if err := features.Decode(data, &ev); err != nil {
			t.Errorf("event %s: %v", id, err)
			cancel()
			return nil
		}
		live := at.After(start)
		if live {
			w.live[ev.Type]++
		} else {
			w.backlog[ev.Type]++
		}
		if ev.OrderID == "" {
			return nil
		}
		o := orders[ev.OrderID]
		if o == nil {
			o = &order{}
			orders[ev.OrderID] = o
		}
		if ev.Data.ShipCutoff != nil {
			o.cutoff = *ev.Data.ShipCutoff
		}
		switch ev.Type {
		case features.TypeOrderCreated:
			o.created = ev.OccurredAt
		case features.TypeShipmentConfirmed:
			if o.shipped.IsZero() {
				o.shipped = ev.OccurredAt
			}
		case features.TypeOrderCancelled:
			if o.cancelled.IsZero() {
				o.cancelled = ev.OccurredAt
			}
		}
		if live && !o.created.IsZero() && o.created.Before(start) && !o.liveSeen {
			o.liveSeen = true
			w.oldLive++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if now.Before(end) {
		t.Fatalf("demo stopped at %v, before %v", now, end)
	}
	for _, o := range orders {
		if o.created.IsZero() || o.cutoff.IsZero() {
			continue
		}
		if o.created.Before(start) {
			w.oldCreated++
		}
		var at time.Time
		missed := false
		switch {
		case !o.shipped.IsZero() && !o.shipped.After(o.cutoff):
			at = o.shipped
		case !o.cancelled.IsZero() && o.cancelled.Before(o.cutoff):
			continue
		default:
			at, missed = o.cutoff, true
		}
		switch {
		case at.After(end):
		case !at.After(start) && missed:
			w.missedBefore++
		case !at.After(start):
			w.metBefore++
		case missed:
			w.missed++
		default:
			w.met++
		}
	}
	return w
}

// TestDemoFirstMinutesShowTheLifecycle: in the demo's first ten minutes orders
// created before the start are picked and ship, and the stream lets a reader know
// cutoff outcomes of both kinds (met and missed), whatever the seed. Before the
// demo started in the afternoon and revealed older orders near their cutoffs, the
// same starts had 0 or 1 shipments against about 3,300 creations and 39 to 50 met
// outcomes in their first ten minutes.
func TestDemoFirstMinutesShowTheLifecycle(t *testing.T) {
	for i, seed := range []int64{1, 2, 3} {
		// A Tuesday, at a minute between the pickups (the hour is the demo's).
		start := time.Date(2026, 12, 8, 16, 7+20*i, 34, 0, time.UTC)
		w := runDemoWindow(t, DemoOptions{Seed: seed, Rate: 40, Drill: 45 * time.Minute}, start, 10*time.Minute)
		created, shipped := w.live[features.TypeOrderCreated], w.live[features.TypeShipmentConfirmed]
		met, missed := w.metBefore+w.met, w.missedBefore+w.missed
		t.Logf("seed %d: first 10 min: %d created, %d picked, %d shipped; outcomes known: %d met, %d missed; backlog %v",
			seed, created, w.live[features.TypePickConfirmed], shipped, met, missed, w.backlog)
		if created == 0 || shipped < created/20 {
			t.Errorf("seed %d: %d shipments in the first 10 minutes against %d orders created, want at least a twentieth", seed, shipped, created)
		}
		if w.live[features.TypePickConfirmed] < created/50 {
			t.Errorf("seed %d: %d picks in the first 10 minutes against %d orders created, want at least one in 50",
				seed, w.live[features.TypePickConfirmed], created)
		}
		if met < 200 || missed < 10 {
			t.Errorf("seed %d: outcomes known by minute 10: %d met, %d missed; want at least 200 and 10", seed, met, missed)
		}
	}
}
