package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// run simulates opts and returns the NDJSON bytes, the labels and the stats.
func run(t testing.TB, opts Options) ([]byte, []Label, Stats) {
	t.Helper()
	var labels []Label
	opts.Labels = func(l Label) { labels = append(labels, l) }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = s.Run(context.Background(), func(ev *Emitted) error {
		buf.Write(ev.Data)
		return buf.WriteByte('\n')
	})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), labels, s.Stats()
}

func TestDeterministic(t *testing.T) {
	opts := Options{Orders: 1500, Seed: 42, Faults: DefaultFaults, Scenario: Peak}
	a, la, _ := run(t, opts)
	b, lb, _ := run(t, opts)
	if !bytes.Equal(a, b) {
		t.Fatal("the same options gave different bytes")
	}
	if fmt.Sprint(la) != fmt.Sprint(lb) {
		t.Fatal("the same options gave different labels")
	}
	opts.Seed = 43
	c, _, _ := run(t, opts)
	if bytes.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same bytes")
	}
	// Faults draw from their own stream: without them the network is the same, only
	// deliveries differ.
	opts.Seed, opts.Faults = 42, Faults{}
	d, ld, _ := run(t, opts)
	if fmt.Sprint(la) != fmt.Sprint(ld) {
		t.Error("fault rates changed the simulated network (labels differ)")
	}
	if bytes.Count(d, []byte{'\n'}) >= bytes.Count(a, []byte{'\n'}) {
		t.Error("without duplicates the stream should be shorter")
	}
}

// Every event decodes with features.Decode; ids are unique but for duplicates;
// context events carry no order id; every type of the taxonomy occurs; each order's
// order.created comes first in event time.
func TestEventsValid(t *testing.T) {
	s, err := New(Options{Orders: 4000, Seed: 3, Faults: Faults{Duplicates: 0.01, OutOfOrder: 0.02, Late: 0.01}, Scenario: CarrierDisruption})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	types := make(map[string]int)
	created := make(map[string]time.Time)
	first := make(map[string]time.Time) // earliest event time per order
	var n int
	err = s.Run(context.Background(), func(em *Emitted) error {
		n++
		var ev features.Event
		if err := features.Decode(em.Data, &ev); err != nil {
			return fmt.Errorf("event %d does not decode: %v\n%s", n, err, em.Data)
		}
		if ev.ID != em.ID() || ev.Type != em.Type || em.Subject() != features.Subject(ev.Type, ev.OrderID) {
			return fmt.Errorf("event %s: id %q type %q subject %q", ev.ID, em.ID(), em.Type, em.Subject())
		}
		if !ev.OccurredAt.Equal(em.OccurredAt) || em.EmittedAt.Before(em.OccurredAt) {
			return fmt.Errorf("event %s: occurred_at %v, Emitted %v / %v", ev.ID, ev.OccurredAt, em.OccurredAt, em.EmittedAt)
		}
		if seen[ev.ID] != (em.Fault == FaultDuplicate) {
			return fmt.Errorf("event %s: seen before %v, fault %v", ev.ID, seen[ev.ID], em.Fault)
		}
		seen[ev.ID] = true
		if features.IsContext(ev.Type) != (ev.OrderID == "") {
			return fmt.Errorf("event %s: type %s with order_id %q", ev.ID, ev.Type, ev.OrderID)
		}
		if ev.Source == "" || ev.Actor == "" {
			return fmt.Errorf("event %s has no source or actor", ev.ID)
		}
		types[ev.Type]++
		if ev.OrderID == "" {
			return nil
		}
		if ev.Type == features.TypeOrderCreated {
			created[ev.OrderID] = ev.OccurredAt
		}
		if f, ok := first[ev.OrderID]; !ok || ev.OccurredAt.Before(f) {
			first[ev.OrderID] = ev.OccurredAt
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range features.Types {
		if types[typ] == 0 {
			t.Errorf("type %s never generated", typ)
		}
	}
	if len(created) != 4000 || len(first) != 4000 {
		t.Fatalf("%d orders created, %d with events, want 4000", len(created), len(first))
	}
	for id, f := range first {
		if c, ok := created[id]; !ok || c.After(f) {
			t.Fatalf("order %s: created %v, but an event at %v", id, c, f)
		}
	}
	t.Logf("%d events, types %v", n, types)
}

func TestFaultRates(t *testing.T) {
	f := Faults{Duplicates: 0.01, OutOfOrder: 0.03, Late: 0.01}
	s, err := New(Options{Orders: 3000, Seed: 5, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	var counts [4]int
	var fresh int
	var lastFresh time.Time
	inverted := 0
	err = s.Run(context.Background(), func(em *Emitted) error {
		counts[em.Fault]++
		if em.Fault != FaultDuplicate {
			fresh++
		}
		switch em.Fault {
		case FaultNone:
			if em.OccurredAt.Before(lastFresh) {
				return fmt.Errorf("undisturbed events out of event-time order: %v after %v", em.OccurredAt, lastFresh)
			}
			lastFresh = em.OccurredAt
		case FaultOutOfOrder:
			if em.OccurredAt.Before(lastFresh) {
				inverted++
			}
		case FaultLate:
			if d := em.EmittedAt.Sub(em.OccurredAt); d < 10*time.Minute {
				return fmt.Errorf("late event delivered %v after it happened", d)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Duplicates != int64(counts[FaultDuplicate]) || st.OutOfOrder != int64(counts[FaultOutOfOrder]) || st.Late != int64(counts[FaultLate]) {
		t.Errorf("stats %+v disagree with the faults seen %v", st, counts)
	}
	for _, c := range []struct {
		name string
		got  int
		rate float64
	}{{"duplicates", counts[FaultDuplicate], f.Duplicates}, {"out of order", counts[FaultOutOfOrder], f.OutOfOrder}, {"late", counts[FaultLate], f.Late}} {
		want := c.rate * float64(fresh)
		if float64(c.got) < 0.8*want || float64(c.got) > 1.2*want {
			t.Errorf("%s: %d of %d events, want about %.0f", c.name, c.got, fresh, want)
		}
	}
	if inverted < counts[FaultOutOfOrder]/2 {
		t.Errorf("only %d of %d out-of-order events came after a later one", inverted, counts[FaultOutOfOrder])
	}
}

func TestLabelsCoverEveryOrder(t *testing.T) {
	data, labels, st := run(t, Options{Orders: 2500, Seed: 9, Faults: DefaultFaults})
	orders := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var ev features.Event
		if err := features.Decode(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == features.TypeOrderCreated {
			orders[ev.OrderID] = true
		}
	}
	classes := make(map[string]bool)
	for _, c := range features.ExceptionClasses {
		classes[c] = true
	}
	got := make(map[string]bool)
	for _, l := range labels {
		if got[l.OrderID] {
			t.Fatalf("order %s labelled twice", l.OrderID)
		}
		got[l.OrderID] = true
		if !orders[l.OrderID] {
			t.Fatalf("label for unknown order %s", l.OrderID)
		}
		if !classes[l.Class] {
			t.Fatalf("order %s: class %q not in the taxonomy", l.OrderID, l.Class)
		}
		if l.Missed != (l.MinutesLate > 0) {
			t.Fatalf("order %s: missed %v but %d minutes late", l.OrderID, l.Missed, l.MinutesLate)
		}
		if l.Missed && (l.Class == features.ExceptionNone || l.Class == features.ExceptionInvoicing) {
			t.Fatalf("order %s missed its cutoff, class %s", l.OrderID, l.Class)
		}
	}
	if len(got) != len(orders) || int64(len(got)) != st.Labelled || st.Labelled != st.Orders {
		t.Fatalf("%d labels, %d orders, stats %+v", len(got), len(orders), st)
	}

	var csv bytes.Buffer
	lw := NewLabelWriter(&csv)
	for _, l := range labels[:3] {
		lw.Write(l)
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(csv.String()), "\n")
	if len(lines) != 4 || lines[0] != "order_id,missed_cutoff,minutes_late,exception_class" {
		t.Fatalf("CSV = %q", csv.String())
	}
	l := labels[0]
	if want := fmt.Sprintf("%s,%d,%d,%s", l.OrderID, map[bool]int{false: 0, true: 1}[l.Missed], l.MinutesLate, l.Class); lines[1] != want {
		t.Errorf("row %q, want %q", lines[1], want)
	}
}

// A normal week misses 4% to 15% of cutoffs; the disruption scenarios clearly more.
// The causes show: every exception class occurs, and misses have causes.
func TestBaseRates(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 4 x 12000 orders")
	}
	share := make(map[Scenario]float64)
	for _, sc := range Scenarios {
		_, labels, st := run(t, Options{Orders: 12000, Seed: 7, Scenario: sc, Warmup: 48 * time.Hour})
		share[sc] = float64(st.Missed) / float64(st.Labelled)
		mix := make(map[string]int)
		for _, l := range labels {
			mix[l.Class]++
		}
		t.Logf("%-18s missed %5.1f%%  classes %v", sc, 100*share[sc], mix)
		for _, c := range features.ExceptionClasses {
			if mix[c] == 0 {
				t.Errorf("%s: class %s never labelled", sc, c)
			}
		}
	}
	if s := share[Normal]; s < 0.04 || s > 0.15 {
		t.Errorf("normal misses %.1f%% of cutoffs, want 4%% to 15%%", 100*s)
	}
	for _, sc := range []Scenario{Peak, CarrierDisruption, WarehouseOutage} {
		if share[sc] < share[Normal]+0.03 {
			t.Errorf("%s misses %.1f%%, not clearly more than normal's %.1f%%", sc, 100*share[sc], 100*share[Normal])
		}
	}
}

// Memory follows the open orders: order slots and queue items stay bounded while
// the run goes on.
func TestBoundedState(t *testing.T) {
	s, err := New(Options{Orders: 40000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	maxQueue, maxSlots := 0, 0
	var n int
	err = s.Run(context.Background(), func(em *Emitted) error {
		if n++; n%1000 == 0 {
			maxQueue, maxSlots = max(maxQueue, s.q.len()), max(maxSlots, len(s.orders))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if maxSlots > 15000 || maxQueue > 60000 {
		t.Errorf("40000 orders: up to %d order slots and %d queue items; memory is not bounded by the open orders", maxSlots, maxQueue)
	}
	if s.live != 0 || len(s.free) != len(s.orders) {
		t.Errorf("after the run %d orders live, %d of %d slots free", s.live, len(s.free), len(s.orders))
	}
	t.Logf("%d events, max %d order slots, max %d queue items", n, maxSlots, maxQueue)
}

func TestRunStopsOnContextAndEmitError(t *testing.T) {
	s, err := New(Options{Seed: 1}) // unlimited
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = s.Run(ctx, func(*Emitted) error {
		if n++; n == 5000 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 6000 {
		t.Errorf("Run = %v after %d events, want context.Canceled soon after 5000", err, n)
	}
	if err := s.Run(context.Background(), func(*Emitted) error { return nil }); err == nil {
		t.Error("a second Run succeeded")
	}

	errFull := errors.New("disk full")
	s, _ = New(Options{Orders: 100, Seed: 1})
	if err := s.Run(context.Background(), func(*Emitted) error { return errFull }); !errors.Is(err, errFull) {
		t.Errorf("Run = %v, want the emit error", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, opts := range []Options{
		{Scenario: "sunny"},
		{Orders: -1},
		{Scale: 2000},
		{Faults: Faults{Duplicates: 0.9}},
		{Faults: Faults{Late: -0.1}},
		{Start: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("New(%+v) = nil error", opts)
		}
	}
	if _, err := New(Options{Scenario: "sunny"}); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("unknown scenario: %v, want ErrUnknownScenario", err)
	}
	if _, err := New(Options{Orders: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("negative orders: %v, want ErrInvalidOptions", err)
	}
}

// BenchmarkSimulate measures the simulator writing NDJSON through a buffered writer
// (to io.Discard, so the disk is not measured): events/s and allocations per event.
func BenchmarkSimulate(b *testing.B) {
	const orders = 20000
	var events int64
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for range b.N {
		s, err := New(Options{Orders: orders, Seed: 7, Faults: DefaultFaults})
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(io.Discard, 1<<20)
		if err := s.Run(context.Background(), func(ev *Emitted) error {
			w.Write(ev.Data)
			return w.WriteByte('\n')
		}); err != nil {
			b.Fatal(err)
		}
		w.Flush()
		events += s.Stats().Events
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(events), "allocs/event")
}
