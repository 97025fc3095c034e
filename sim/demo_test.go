package sim

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Etc zones on any machine

	"github.com/orderwatch/orderwatch/features"
)

type message struct {
	subject, id string
	data        []byte
}

// collector is a PublishFunc target that records what it was sent.
type collector struct {
	mu   sync.Mutex
	msgs []message
	fail int // fail this many calls before succeeding; negative: always
	err  error
	stop func(n int) // called with the count after each message
}

func (c *collector) publish(ctx context.Context, subject, id string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != 0 {
		c.fail--
		return c.err
	}
	c.msgs = append(c.msgs, message{subject, id, bytes.Clone(data)})
	if c.stop != nil {
		c.stop(len(c.msgs))
	}
	return nil
}

func (c *collector) messages() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.msgs...)
}

// runDemo runs a demo until the collector has n messages.
func runDemo(t *testing.T, opts DemoOptions, n int) []message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := &collector{stop: func(k int) {
		if k >= n {
			cancel()
		}
	}}
	if err := NewDemo(opts).Run(ctx, c.publish); err != nil {
		t.Fatalf("Run = %v", err)
	}
	msgs := c.messages()
	if len(msgs) < n {
		t.Fatalf("demo published %d messages before the timeout, want %d", len(msgs), n)
	}
	return msgs
}

// The backlog: recent history first, every event valid, times in the past, and
// orders at risk among them (holds and shortfalls near their cutoffs).
func TestDemoBacklog(t *testing.T) {
	now := time.Now()
	msgs := runDemo(t, DemoOptions{Seed: 99, Rate: 40, BacklogRate: 1e6, Clock: func() time.Time { return now }}, 3000)
	types := make(map[string]int)
	ids := make(map[string]bool)
	created := make(map[string]time.Time)
	var atRisk int
	for _, m := range msgs {
		var ev features.Event
		if err := features.Decode(m.data, &ev); err != nil {
			t.Fatalf("demo event %s does not decode: %v", m.id, err)
		}
		if ev.ID != m.id || m.subject != features.Subject(ev.Type, ev.OrderID) {
			t.Fatalf("message %s: subject %s for %s", m.id, m.subject, ev.ID)
		}
		if ev.OccurredAt.After(now) {
			t.Fatalf("backlog event %s occurred at %v, after the start %v", ev.ID, ev.OccurredAt, now)
		}
		ids[ev.ID] = true
		types[ev.Type]++
		if ev.Type == features.TypeOrderCreated {
			created[ev.OrderID] = *ev.Data.ShipCutoff
		}
		if ev.Type == features.TypeCreditHold || ev.Type == features.TypeAllocationShort {
			if c, ok := created[ev.OrderID]; ok && c.Sub(now) < 6*time.Hour {
				atRisk++
			}
		}
	}
	if len(ids) < 2900 || types[features.TypeOrderCreated] < 100 || types[features.TypeWarehouseLoad] == 0 {
		t.Errorf("backlog of %d distinct events, types %v", len(ids), types)
	}
	if atRisk == 0 {
		t.Errorf("no hold or shortfall within 6 h of its cutoff in the backlog; types %v", types)
	}
}

func TestDemoBadEvery(t *testing.T) {
	msgs := runDemo(t, DemoOptions{Seed: 3, BadEvery: 7, BacklogRate: 1e6}, 700)
	reasons := make(map[string]int)
	for i, m := range msgs[:700] {
		var ev features.Event
		err := features.Decode(m.data, &ev)
		if (i+1)%7 != 0 {
			if err != nil {
				t.Fatalf("message %d (%s) should be valid: %v", i+1, m.id, err)
			}
			continue
		}
		var de *features.DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("message %d (%s) should fail to decode, got %v: %s", i+1, m.id, err, m.data)
		}
		reasons[de.Reason]++
		want := map[string]string{
			features.ReasonBadJSON:     "orders.order.created.SO-000000",
			features.ReasonUnknownType: "orders.bogus.type.SO-000000",
			features.ReasonOutOfRange:  "orders.carrier.performance",
			features.ReasonAbsurdTime:  "orders.order.changed.SO-000000",
		}[de.Reason]
		if m.subject != want {
			t.Errorf("bad message %d (%s): subject %q, want %q", i+1, de.Reason, m.subject, want)
		}
	}
	want := map[string]int{features.ReasonBadJSON: 25, features.ReasonUnknownType: 25,
		features.ReasonOutOfRange: 25, features.ReasonAbsurdTime: 25}
	if !maps.Equal(reasons, want) {
		t.Errorf("bad messages by reason = %v, want %v", reasons, want)
	}
}

// Live: after the backlog, each event is published once the clock reaches it.
func TestDemoReleasesOnTheClock(t *testing.T) {
	var mu sync.Mutex
	// A fixed late morning (11:30 Central): the demo's volume follows the time of
	// day, and started on the wall clock this test failed in the evening lull
	// (22 events/s at 21:30 Central, 40/s from morning to afternoon).
	now := time.Date(2026, 11, 23, 17, 30, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d := NewDemo(DemoOptions{Seed: 5, Rate: 200, BacklogRate: 1e6, Clock: clock})
	var slept time.Duration
	d.sleep = func(ctx context.Context, dt time.Duration) error { // advance the fake clock instead
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(dt)
		slept += dt
		return ctx.Err()
	}
	start := now
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var live int
	c := &collector{}
	c.stop = func(int) {
		m := c.msgs[len(c.msgs)-1]
		var ev features.Event
		if err := features.Decode(m.data, &ev); err != nil {
			t.Errorf("event %s: %v", m.id, err)
			cancel()
			return
		}
		if ev.OccurredAt.After(start) {
			live++
			if ev.OccurredAt.After(now) {
				t.Errorf("event %s at %v published at %v, before its time", ev.ID, ev.OccurredAt, now)
			}
		}
		if now.Sub(start) > 10*time.Minute {
			cancel()
		}
	}
	if err := d.Run(ctx, c.publish); err != nil {
		t.Fatal(err)
	}
	// 200 events/s around midday once published orders have aged, a fifth to a third
	// of it in the first minutes (see Demo).
	if rate := float64(live) / now.Sub(start).Seconds(); rate < 20 || rate > 400 {
		t.Errorf("%d live events in %v: %.0f/s, want about 200/s", live, now.Sub(start), rate)
	}
}

func TestDemoRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	c := &collector{}
	if err := NewDemo(DemoOptions{Rate: 200}).Run(ctx, c.publish); err != nil {
		t.Fatalf("Run = %v, want nil on cancellation", err)
	}
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Errorf("Run took %v to stop after a 300ms timeout", elapsed)
	}
}

func TestDemoRunRetriesTransientFailures(t *testing.T) {
	c := &collector{fail: 2, err: errors.New("nats: timeout")}
	d := NewDemo(DemoOptions{Rate: 1000, BacklogRate: 1e6})
	d.backoff = time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	c.stop = func(n int) {
		if n >= 10 {
			cancel()
		}
	}
	if err := d.Run(ctx, c.publish); err != nil {
		t.Fatalf("Run = %v, want nil: two failures are transient", err)
	}
	if got := c.messages()[0].id; got != "e-1-1" {
		t.Errorf("first published id = %s, want the retried e-1-1", got)
	}
}

func TestDemoRunFailsOnPersistentError(t *testing.T) {
	errDown := errors.New("nats: no responders")
	c := &collector{fail: -1, err: errDown}
	d := NewDemo(DemoOptions{Rate: 1000})
	d.backoff = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := d.Run(ctx, c.publish)
	if !errors.Is(err, errDown) {
		t.Fatalf("Run = %v, want it to wrap %v", err, errDown)
	}
	if ctx.Err() != nil {
		t.Fatal("Run gave up only when the context ended")
	}
}

func TestNewDemoDefaults(t *testing.T) {
	d := NewDemo(DemoOptions{})
	if d.seed != 1 || d.rate != 40 || d.clock == nil || d.log == nil || d.badEvery != 0 ||
		d.warmup != 6*time.Hour || d.backlogRate != 2000 || d.faults != DefaultFaults || d.scenario != Normal {
		t.Errorf("defaults: %+v", d)
	}
	if d := NewDemo(DemoOptions{Rate: 400}); d.warmup != time.Hour {
		t.Errorf("warm-up at 400/s = %v, want 1h", d.warmup)
	}
}

func TestLocalShift(t *testing.T) {
	for h := range 2 * 7 * 24 {
		now := time.Date(2026, 5, 17, h, 30, 0, 0, time.UTC) // summer time, then winter time
		if h >= 7*24 {
			now = time.Date(2026, 12, 6, h-7*24, 30, 0, 0, time.UTC)
		}
		shift, days := localShift(now)
		z := zoneCentral
		z.shift, z.days = shift.Milliseconds(), int64(days)
		_, wd, ms := z.local(now.UnixMilli())
		// The afternoon, when the trucks come: 15:00 where the offsets allow, else
		// up to 18:00.
		if local := ms / msHour; local < demoLocalHour || local > 18 || wd == 0 || wd == 6 {
			t.Errorf("at %v the shifted HQ time is weekday %d hour %d", now, wd, local)
		}
		for _, wz := range []zone{zoneEastern, zonePacific, zoneMountain, zoneCentral} {
			wz.shift = shift.Milliseconds()
			off := wz.offset(now.UnixMilli())
			if off < -12*msHour || off > 12*msHour {
				t.Errorf("at %v zone %s offset %v", now, wz.name, time.Duration(off)*time.Millisecond)
			}
			loc, err := time.LoadLocation(wz.tzName(now.UnixMilli()))
			if err != nil {
				t.Fatal(err)
			}
			if _, o := now.In(loc).Zone(); int64(o)*1000 != off {
				t.Errorf("at %v zone %s shifted by %v: %s has offset %ds, want %dms", now, wz.name, shift, wz.tzName(now.UnixMilli()), o, off)
			}
		}
	}
}

// TestDrillOpensTheLiveStreamWithAnOutage: with a drill the first thing published
// at the start is a warehouse.load reporting an outage; before it the stream is
// the same as without the drill, which draws no random numbers.
func TestDrillOpensTheLiveStreamWithAnOutage(t *testing.T) {
	start := time.Date(2026, 11, 17, 16, 0, 0, 0, time.UTC) // a Tuesday, 10:00 at HQ
	stop := errors.New("enough")
	run := func(drill time.Duration) (before [][]byte, atStart []*Emitted) {
		s, err := New(Options{Seed: 5, Start: start, Warmup: 2 * time.Hour, Scale: 2})
		if err != nil {
			t.Fatal(err)
		}
		s.drillFor = drill.Milliseconds()
		err = s.Run(context.Background(), func(em *Emitted) error {
			switch {
			case em.EmittedAt.Before(start):
				before = append(before, bytes.Clone(em.Data))
			case em.EmittedAt.Equal(start):
				c := *em
				c.Data = bytes.Clone(em.Data)
				atStart = append(atStart, &c)
			default:
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("run: %v", err)
		}
		return before, atStart
	}
	plainBefore, _ := run(0)
	drillBefore, atStart := run(45 * time.Minute)
	if len(plainBefore) == 0 || len(plainBefore) != len(drillBefore) {
		t.Fatalf("%d events before the start with the drill, %d without", len(drillBefore), len(plainBefore))
	}
	for i := range plainBefore {
		if !bytes.Equal(plainBefore[i], drillBefore[i]) {
			t.Fatalf("event %d before the start differs with the drill:\n%s\n%s", i, drillBefore[i], plainBefore[i])
		}
	}
	var outage bool
	for _, em := range atStart {
		outage = outage || em.Type == features.TypeWarehouseLoad && bytes.Contains(em.Data, []byte(`"outage":true`))
	}
	if !outage {
		t.Fatalf("no warehouse.load with an outage among the %d events at the start", len(atStart))
	}
}
