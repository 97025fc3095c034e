package sim

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

var start = time.Date(2026, 5, 21, 14, 0, 0, 0, time.UTC)

// fakeClock returns a clock that advances by step on every call.
func fakeClock(step time.Duration) func() time.Time {
	now := start
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

type message struct {
	subject, id string
	data        []byte
}

// generate runs the generator core on a clock ticking at 50 events/s until it has n
// messages.
func generate(opts DemoOptions, n int) []message {
	d := NewDemo(opts)
	clock := fakeClock(20 * time.Millisecond)
	msgs := make([]message, 0, n)
	for len(msgs) < n {
		if subject, id, data, ok := d.next(clock()); ok {
			msgs = append(msgs, message{subject, id, data})
		}
	}
	return msgs
}

var orderID = regexp.MustCompile(`^SO-[0-9a-z]+-\d{6,}$`)

var millis = regexp.MustCompile(`"occurred_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`)

func TestDemoEventsValid(t *testing.T) {
	d := NewDemo(DemoOptions{Seed: 7})
	clock := fakeClock(20 * time.Millisecond)
	const n = 20000
	ids := make(map[string]bool, n)
	seen := make(map[string]int)
	orders := make(map[string][]string) // order id → event types in order
	for len(ids) < n {
		subject, id, data, ok := d.next(clock())
		if !ok {
			continue
		}
		var ev features.Event
		if err := features.Decode(data, &ev); err != nil {
			t.Fatalf("event %s does not decode: %v\n%s", id, err, data)
		}
		if ev.ID != id || ids[id] {
			t.Fatalf("event id %q (msg id %q) is not unique or does not match", ev.ID, id)
		}
		ids[id] = true
		if want := features.Subject(ev.Type); subject != want {
			t.Fatalf("event %s: subject %q, want %q", id, subject, want)
		}
		if !millis.Match(data) {
			t.Fatalf("event %s: occurred_at is not RFC 3339 with milliseconds: %s", id, data)
		}
		if features.IsContext(ev.Type) != (ev.OrderID == "") || ev.OrderID != "" && !orderID.MatchString(ev.OrderID) {
			t.Fatalf("event %s: order_id %q for type %s", id, ev.OrderID, ev.Type)
		}
		if ev.Source == "" || ev.Actor == "" {
			t.Fatalf("event %s has no source or actor: %s", id, data)
		}
		seen[ev.Type]++
		if ev.OrderID != "" {
			orders[ev.OrderID] = append(orders[ev.OrderID], ev.Type)
		}
	}
	for _, typ := range features.Types {
		if seen[typ] == 0 {
			t.Errorf("type %s never generated in %d events", typ, n)
		}
	}
	// Every order starts with order.created; a complete one ends with its invoice.
	complete := 0
	for id, types := range orders {
		if types[0] != features.TypeOrderCreated {
			t.Fatalf("order %s starts with %s", id, types[0])
		}
		if types[len(types)-1] == features.TypeInvoiceCreated {
			complete++
		}
	}
	if complete < len(orders)/2 {
		t.Errorf("only %d of %d orders completed their lifecycle", complete, len(orders))
	}
	t.Logf("%d orders (%d complete), types: %v", len(orders), complete, seen)
}

// At a rate the network cannot sustain with real-time lifecycles, the generator
// keeps the rate by pulling steps forward and keeps memory bounded.
func TestDemoFullNetwork(t *testing.T) {
	const rate = 2000
	d := NewDemo(DemoOptions{Seed: 5, Rate: rate})
	clock := fakeClock(time.Second / rate)
	sent := 0
	for range 30 * rate {
		if _, _, _, ok := d.next(clock()); ok {
			sent++
		}
		if len(d.open) > maxOpen {
			t.Fatalf("%d open orders in memory, cap %d", len(d.open), maxOpen)
		}
	}
	if len(d.open) < busyOpen || sent < 20*rate {
		t.Errorf("%d events in 30 s at %d/s with %d open orders; want the network full and the rate kept", sent, rate, len(d.open))
	}
}

func TestDemoBadEvery(t *testing.T) {
	msgs := generate(DemoOptions{Seed: 3, BadEvery: 7}, 700)
	reasons := make(map[string]int)
	for i, m := range msgs {
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
			features.ReasonBadJSON:     features.Subject(features.TypeOrderCreated),
			features.ReasonUnknownType: "orders.bogus.type",
		}[de.Reason]
		if m.subject != want {
			t.Errorf("bad message %d (%s): subject %q, want %q", i+1, de.Reason, m.subject, want)
		}
	}
	if reasons[features.ReasonBadJSON] != 50 || reasons[features.ReasonUnknownType] != 50 {
		t.Errorf("bad messages by reason = %v, want 50 bad_json and 50 unknown_type", reasons)
	}
}

func TestDemoDeterministic(t *testing.T) {
	a := generate(DemoOptions{Seed: 42, BadEvery: 100}, 5000)
	b := generate(DemoOptions{Seed: 42, BadEvery: 100}, 5000)
	for i := range a {
		if a[i].subject != b[i].subject || a[i].id != b[i].id || !bytes.Equal(a[i].data, b[i].data) {
			t.Fatalf("message %d differs between runs with the same seed:\n%s\n%s", i, a[i].data, b[i].data)
		}
	}
	c := generate(DemoOptions{Seed: 43, BadEvery: 100}, 5000)
	same := 0
	for i := range c {
		if c[i].subject == a[i].subject {
			same++
		}
	}
	if same == len(c) {
		t.Error("seeds 42 and 43 generate the same sequence of event types")
	}
}

// collector is a PublishFunc target that records what it was sent.
type collector struct {
	mu   sync.Mutex
	msgs []message
	fail int // fail this many calls before succeeding; negative: always
	err  error
}

func (c *collector) publish(ctx context.Context, subject, id string, data []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != 0 { // negative: fail forever
		c.fail--
		return c.err
	}
	c.msgs = append(c.msgs, message{subject, id, data})
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func TestDemoRunStopsOnCancel(t *testing.T) {
	const rate, runFor = 200, 300 * time.Millisecond
	c := &collector{}
	ctx, cancel := context.WithTimeout(t.Context(), runFor)
	defer cancel()
	began := time.Now()
	if err := NewDemo(DemoOptions{Rate: rate, Clock: fakeClock(time.Millisecond)}).Run(ctx, c.publish); err != nil {
		t.Fatalf("Run = %v, want nil on cancellation", err)
	}
	elapsed := time.Since(began)
	if elapsed > runFor+2*time.Second {
		t.Errorf("Run took %v to stop after a %v timeout", elapsed, runFor)
	}
	n := c.len()
	if limit := int(rate*elapsed.Seconds()) + 10; n > limit {
		t.Errorf("published %d events in %v, more than %d at %d/s", n, elapsed, limit, rate)
	}
	if n == 0 {
		t.Fatal("published nothing")
	}
	var ev features.Event
	if err := features.Decode(c.msgs[0].data, &ev); err != nil || !ev.OccurredAt.Equal(start.Add(time.Millisecond)) {
		t.Errorf("first event: %v, occurred_at %v, want the injected clock's %v", err, ev.OccurredAt, start.Add(time.Millisecond))
	}
}

func TestDemoRunRetriesTransientFailures(t *testing.T) {
	c := &collector{fail: 2, err: errors.New("nats: timeout")}
	d := NewDemo(DemoOptions{Rate: 1000})
	d.backoff = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := d.Run(ctx, c.publish); err != nil {
		t.Fatalf("Run = %v, want nil: two failures are transient", err)
	}
	if c.len() == 0 {
		t.Fatal("nothing published after the transient failures")
	}
	if got := c.msgs[0].id; got != "e-1-1" {
		t.Errorf("first published id = %s, want the retried e-1-1", got)
	}
}

func TestDemoRunFailsOnPersistentError(t *testing.T) {
	errDown := errors.New("nats: no responders")
	c := &collector{fail: -1, err: errDown}
	d := NewDemo(DemoOptions{Rate: 1000})
	d.backoff = time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
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
	if d.seed != 1 || d.rate != 50 || d.clock == nil || d.log == nil || d.badEvery != 0 {
		t.Errorf("defaults: seed %d rate %v badEvery %d", d.seed, d.rate, d.badEvery)
	}
	if len(d.customers) != 40 {
		t.Errorf("%d customers, want 40", len(d.customers))
	}
}
