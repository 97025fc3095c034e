package cluster

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUnownedSeconds checks, on a fixed clock, how long each partition has been
// without a live holder as Status and the gauges tell it.
func TestUnownedSeconds(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(time.Minute)
	met, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Group: "g", Member: "me", Partitions: 6, LeaseTTL: 10 * time.Second, Guard: 3 * time.Second, Clock: func() time.Time { return now }}
	m := &Membership{opts: o, met: met, watchSince: start, members: map[string]*observed{},
		leases: []observed{
			{}, // 0: never had a lease: since the watch started, 60s
			{rev: 2, seen: now.Add(-5 * time.Second), present: true, lease: leaseRecord{ReleasedBy: "x", Epoch: 1}}, // 1: released 5s ago
			{rev: 3, seen: now.Add(-1 * time.Second), present: true, lease: leaseRecord{Holder: "x", Epoch: 1}},     // 2: alive
			{rev: 4, seen: now.Add(-12 * time.Second), present: true, lease: leaseRecord{Holder: "x", Epoch: 1}},    // 3: expired 2s ago
			{rev: 5, seen: now.Add(-1 * time.Second), present: true, lease: leaseRecord{Holder: "me", Epoch: 1}},    // 4: ours, held
			{rev: 6, seen: now.Add(-20 * time.Second), present: false},                                              // 5: deleted 20s ago
		},
		held: make([]*holding, 6),
	}
	m.held[4] = &holding{epoch: 1, rev: 5, validUntil: now.Add(time.Second)}
	want := []struct {
		alive   bool
		unowned float64
	}{{false, 60}, {false, 5}, {true, 0}, {false, 2}, {true, 0}, {false, 20}}
	for _, l := range m.Status().Leases {
		if w := want[l.Partition]; l.Alive != w.alive || l.UnownedFor != w.unowned {
			t.Errorf("partition %d: alive %v unowned %vs, want %v %vs", l.Partition, l.Alive, l.UnownedFor, w.alive, w.unowned)
		}
	}
	(&loop{m: m}).updateMetrics()
	if got := testutil.ToFloat64(met.unowned); got != 4 {
		t.Errorf("partitions_unowned = %v, want 4", got)
	}
	if got := testutil.ToFloat64(met.unownedLongest); got != 60 {
		t.Errorf("partition_unowned_seconds = %v, want 60", got)
	}
	if got := testutil.ToFloat64(met.owned); got != 1 {
		t.Errorf("partitions_owned = %v, want 1", got)
	}
	// Once our lease runs out locally it counts as unowned too.
	now = now.Add(2 * time.Second)
	if l := m.Status().Leases[4]; l.Alive {
		t.Errorf("partition 4 after its validity: %+v, want not alive", l)
	}
}

// TestOwnsDoesNotAllocate: Owns is on the per-event path.
func TestOwnsDoesNotAllocate(t *testing.T) {
	now := time.Now()
	m := &Membership{opts: Options{Clock: func() time.Time { return now }}, held: make([]*holding, 4)}
	m.held[1] = &holding{validUntil: now.Add(time.Second)}
	if !m.Owns(1) || m.Owns(2) || m.Owns(-1) || m.Owns(4) {
		t.Fatalf("Owns = %v %v %v %v, want true false false false", m.Owns(1), m.Owns(2), m.Owns(-1), m.Owns(4))
	}
	if n := testing.AllocsPerRun(100, func() { m.Owns(1) }); n != 0 {
		t.Errorf("Owns allocates %v times, want 0", n)
	}
}
