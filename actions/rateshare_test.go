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
