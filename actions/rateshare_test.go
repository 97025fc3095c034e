package actions

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/store"
)

const rateSharePolicy = "version: v1\nrules:\n- {id: r, action: notify_customer_service, mode: auto, limits: {warehouse: 3}, when: {risk: {gte: 0.7}}}\n"

// rateMember is one member of a group in a rate-share test: its own Badger, its
// own policy, the group's bucket.
type rateMember struct {
	st   *store.Store
	p    *Policy
	rs   *RateShare
	stop func()
}

// startRateMember opens member name on a store in dir and runs its RateShare.
func startRateMember(t *testing.T, kv jetstream.KeyValue, name, dir string, now time.Time) *rateMember {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy([]byte(rateSharePolicy))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs, err := OpenRateShare(ctx, RateShareOptions{Bucket: kv, Member: name, Store: st,
		Interval: 10 * time.Millisecond, Clock: func() time.Time { return now }})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	p.UseRateShare(rs)
	rctx, stopRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := rs.Run(rctx); err != nil {
			t.Errorf("member %s: rate share run: %v", name, err)
		}
	})
	var once sync.Once
	m := &rateMember{st: st, p: p, rs: rs}
	m.stop = func() {
		once.Do(func() {
			stopRun()
			wg.Wait()
			st.Close()
		})
	}
	t.Cleanup(m.stop)
	return m
}

// waitCount waits (10 s at most) until m counts want of the other members' times
// for warehouse wh after from.
func waitCount(t *testing.T, m *rateMember, wh string, from time.Time, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := m.rs.count(ActionNotifyCS, ScopeWarehouse, wh, from.UnixNano())
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member counts %d of the others' times for %s, want %d (not shared within 10s)", got, wh, want)
		}
	}
}

// TestRateLimitsAreTheGroups: a limit counts every member's decisions, also
// those of a member that stopped, and of a member's earlier life on another data
// dir; times older than the hour do not count.
func TestRateLimitsAreTheGroups(t *testing.T) {
	ns := natstest.Start(t, nil)
	kv, err := cluster.StateBucket(context.Background(), natstest.JetStream(t, ns.ClientURL()), "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	now := t0.Add(30 * time.Minute)
	hot := func(order string, at time.Duration) step {
		return step{order: order, warehouse: "W", customer: "C-" + order, carrier: "ODFL", risk: 0.9, at: at}
	}
	decide := func(m *rateMember, s step) string {
		t.Helper()
		ds := decideCommit(t, m.st, m.p, s.input(t0), Memory{})
		if len(ds) != 1 {
			t.Fatalf("order %s: %d decisions, want 1", s.order, len(ds))
		}
		return statuses(ds)[0]
	}
	want := func(m *rateMember, s step, status string) {
		t.Helper()
		if got := decide(m, s); got != status {
			t.Errorf("order %s at +%s: %s, want %s", s.order, s.at, got, status)
		}
	}

	a := startRateMember(t, kv, "a", t.TempDir(), now)
	b := startRateMember(t, kv, "b", t.TempDir(), now)
	want(a, hot("A1", 0), "queued")
	want(a, hot("A2", time.Minute), "queued")
	waitCount(t, b, "W", t0.Add(-rateWindow), 2)
	want(b, hot("B1", 2*time.Minute), "queued")
	s := hot("B2", 3*time.Minute)
	ds := decideCommit(t, b.st, b.p, s.input(t0), Memory{})
	if got := statuses(ds); len(got) != 1 || got[0] != "suppressed/"+SuppressedRateWarehouse {
		t.Errorf("b's second decision for W, after a's two and its own one: %v, want suppressed/%s (a limit of 3 over the group)", got, SuppressedRateWarehouse)
	} else if !strings.Contains(ds[0].SuppressedNote, "2 by other members") {
		t.Errorf("suppressed note %q does not say how many were the other members'", ds[0].SuppressedNote)
	}

	// a stops; c starts after, on its own data dir: it counts a's two and b's one.
	waitCount(t, a, "W", t0.Add(-rateWindow), 1)
	a.stop()
	c := startRateMember(t, kv, "c", t.TempDir(), now)
	want(c, hot("C1", 4*time.Minute), "suppressed/"+SuppressedRateWarehouse)

	// a comes back on a fresh data dir: it reads its own two back.
	a2 := startRateMember(t, kv, "a", t.TempDir(), now)
	rb := a2.st.NewBatch()
	times, err := rb.RateWindow(ActionNotifyCS, ScopeWarehouse, "W")
	rb.Discard()
	if err != nil || len(times) != 2 {
		t.Errorf("a on a fresh data dir holds %d times of its window for W (%v), want its 2 read back from the bucket", len(times), err)
	}
	want(a2, hot("A3", 5*time.Minute), "suppressed/"+SuppressedRateWarehouse)

	// An hour after a's: only b's one at +2m is in the hour before +61m30s.
	want(b, hot("B3", 61*time.Minute+30*time.Second), "queued")
}

// TestRateShareSkipsDiscardedBatch: a window is published once the batch that
// changed it commits, as committed; the times of a batch that did not commit are
// never published.
func TestRateShareSkipsDiscardedBatch(t *testing.T) {
	ns := natstest.Start(t, nil)
	kv, err := cluster.StateBucket(context.Background(), natstest.JetStream(t, ns.ClientURL()), "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	rs, err := OpenRateShare(ctx, RateShareOptions{Bucket: kv, Member: "a", Store: st, Clock: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy([]byte(rateSharePolicy))
	if err != nil {
		t.Fatal(err)
	}
	p.UseRateShare(rs)
	key := rateBucketKey("a", ActionNotifyCS, ScopeWarehouse, "W")
	published := func() []int64 {
		t.Helper()
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var v rateEntry
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			t.Fatal(err)
		}
		return v.Times
	}
	decide := func(order string, at time.Duration) *store.Batch {
		b := st.NewBatch()
		in := step{order: order, warehouse: "W", risk: 0.9, at: at}.input(t0)
		if ds, err := p.Decide(b, in, Memory{}, nil); err != nil || len(ds) != 1 || ds[0].Status != StatusQueued {
			t.Fatalf("decide %s: %v %v", order, statuses(ds), err)
		}
		return b
	}

	b := decide("A1", 0)
	for range rateGiveUp + 1 {
		rs.publish(ctx, false)
	}
	b.Discard() // the batch failed
	rs.publish(ctx, false)
	if got := published(); got != nil {
		t.Errorf("after a discarded batch the bucket holds %v, want nothing", got)
	}

	b = decide("A2", time.Minute)
	rs.publish(ctx, false) // not committed yet: waits
	if got := published(); got != nil {
		t.Errorf("before the batch committed the bucket holds %v, want nothing", got)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	rs.publish(ctx, false)
	if got, want := published(), t0.Add(time.Minute).UnixNano(); len(got) != 1 || got[0] != want {
		t.Errorf("after the commit the bucket holds %v, want only the committed decision's [%d]", got, want)
	}
}

// TestReloadKeepsRateShare: a reloaded policy counts the group's windows too.
func TestReloadKeepsRateShare(t *testing.T) {
	p, err := ParsePolicy([]byte(rateSharePolicy))
	if err != nil {
		t.Fatal(err)
	}
	rs := &RateShare{}
	p.UseRateShare(rs)
	l := NewLive(p)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(strings.Replace(rateSharePolicy, "v1", "v2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	np, err := l.Reload(file, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if np.RateShare() != rs {
		t.Errorf("the reloaded policy's rate share is %p, want the one in force %p", np.RateShare(), rs)
	}
}

// TestRateShareHotPathDoesNotAllocate: what Decide asks of a RateShare, counting
// the others' times and marking a window it changed again, allocates nothing.
func TestRateShareHotPathDoesNotAllocate(t *testing.T) {
	rs := newRateShare(RateShareOptions{})
	rs.peers[rateKey{ActionNotifyCS, ScopeWarehouse, "W"}] = []peerWindow{{key: "k", times: []int64{1, 2, 3}}}
	wh := strings.Repeat("W", 1) // not a constant: as Decide has it from the order's state
	rs.changed(ActionNotifyCS, ScopeWarehouse, wh, 3)
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		n = rs.count(ActionNotifyCS, ScopeWarehouse, wh, 1)
		rs.changed(ActionNotifyCS, ScopeWarehouse, wh, 4)
	})
	if n != 2 || allocs != 0 {
		t.Errorf("count = %d (want 2) with %v allocations per call (want 0)", n, allocs)
	}
}

// TestRateShareSweepsWindowsOutOfTheHour: a window whose times have all left the
// hour is forgotten and deleted from the bucket, whether another member holds it
// in memory or finds it stale when it starts; one still in the hour stays.
func TestRateShareSweepsWindowsOutOfTheHour(t *testing.T) {
	ns := natstest.Start(t, nil)
	kv, err := cluster.StateBucket(context.Background(), natstest.JetStream(t, ns.ClientURL()), "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	put := func(member, wh string, at time.Time) string {
		key := rateBucketKey(member, ActionNotifyCS, ScopeWarehouse, wh)
		v, _ := json.Marshal(rateEntry{Action: ActionNotifyCS, Scope: ScopeWarehouse, Value: wh, Times: []int64{at.UnixNano()}})
		if _, err := kv.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
		return key
	}
	held := put("a", "W", t0)                     // in b's memory, then out of the hour
	stale := put("a", "X", t0.Add(-2*time.Hour))  // out of the hour when b starts
	kept := put("a", "Y", t0.Add(50*time.Minute)) // in the hour throughout
	now := t0.Add(30 * time.Minute)
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := OpenRateShare(ctx, RateShareOptions{Bucket: kv, Member: "b", Store: st, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.count(ActionNotifyCS, ScopeWarehouse, "W", t0.Add(-time.Hour).UnixNano()); n != 1 {
		t.Fatalf("b counts %d of a's times for W, want 1", n)
	}
	now = t0.Add(90 * time.Minute)
	b.sweep(ctx)
	for key, want := range map[string]bool{held: false, stale: false, kept: true} {
		_, err := kv.Get(ctx, key)
		if got := err == nil; got != want || (err != nil && !errors.Is(err, jetstream.ErrKeyNotFound)) {
			t.Errorf("after the sweep key %s in the bucket: %v (%v), want %v", key, got, err, want)
		}
	}
	if n := b.count(ActionNotifyCS, ScopeWarehouse, "W", 0); n != 0 {
		t.Errorf("b still holds %d of a's times for W after the sweep", n)
	}
	if n := b.count(ActionNotifyCS, ScopeWarehouse, "Y", 0); n != 1 {
		t.Errorf("b holds %d of a's times for Y, want 1", n)
	}
}
