package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// instance is one orderwatch of a group, in this process: its own Badger, its
// membership and its pipeline, on a shared server.
type instance struct {
	st     *store.Store
	reg    *prometheus.Registry
	m      *cluster.Membership
	stopP  context.CancelFunc
	stopM  context.CancelFunc
	pDone  chan error
	mDone  chan error
	member string
}

func startInstance(t *testing.T, js jetstream.JetStream, member string, parts int) *instance {
	t.Helper()
	return startInstanceOn(t, js, member, parts, t.TempDir())
}

// startInstanceOn starts an instance on the data in dir (closed when it stops).
func startInstanceOn(t *testing.T, js jetstream.JetStream, member string, parts int, dir string) *instance {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := prometheus.NewRegistry()
	m, err := cluster.New(cluster.Options{JetStream: js, Member: member, Partitions: parts,
		LeaseTTL: 3 * time.Second, Renew: 500 * time.Millisecond, Guard: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{JetStream: js, Store: st, Policy: actions.NewLive(policy), BatchSize: 256,
		Partitions: parts, Member: member, Ownership: m, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{st: st, reg: reg, m: m, member: member, pDone: make(chan error, 1), mDone: make(chan error, 1)}
	mctx, stopM := context.WithCancel(context.Background())
	pctx, stopP := context.WithCancel(context.Background())
	in.stopM, in.stopP = stopM, stopP
	go func() { in.mDone <- m.Run(mctx) }()
	go func() { in.pDone <- p.Run(pctx) }()
	t.Cleanup(in.stop)
	return in
}

// stop stops the pipeline, then the membership, which gives the leases back.
func (in *instance) stop() {
	if in.stopP == nil {
		return
	}
	in.stopP()
	in.stopM2(in.pDone, "pipeline")
	in.stopM()
	in.stopM2(in.mDone, "membership")
	in.stopP = nil
}

// stopM2 waits, boundedly, for a part of the instance to return.
func (in *instance) stopM2(done chan error, what string) {
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		panic(what + " of instance " + in.member + " did not stop within 30s")
	}
}

func (in *instance) histogramSum(t *testing.T, name string) (float64, uint64) {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			var h *dto.Histogram = mf.GetMetric()[0].GetHistogram()
			return h.GetSampleSum(), h.GetSampleCount()
		}
	}
	return 0, 0
}

// TestTakeoverRebuildsPartition fills one partition with open orders on one
// instance, stops it, and lets another take the partition over: it rebuilds the
// orders' state from ORDERS, equal to what the first had, and reads on. With
// ORDERWATCH_TAKEOVER_ORDERS=10000 it measures the README's takeover time.
func TestTakeoverRebuildsPartition(t *testing.T) {
	orders := 600
	if v := os.Getenv("ORDERWATCH_TAKEOVER_ORDERS"); v != "" {
		var err error
		if orders, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	const parts = 4
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	// Orders of partition 0 only, each created and allocated, with its cutoff
	// days away so it stays open.
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string
	published := 0
	for i := 0; len(ids) < orders+10; i++ {
		id := fmt.Sprintf("SO-%07d", i)
		if features.Partition(features.OrderToken(id), parts) != 0 {
			continue
		}
		ids = append(ids, id)
	}
	publish := func(ids []string) {
		for _, id := range ids {
			for j, typ := range []string{features.TypeOrderCreated, features.TypeInventoryAllocated} {
				data := fmt.Sprintf(`{"warehouse":"W1","ship_cutoff":%q}`, now.Add(72*time.Hour).Format(time.RFC3339))
				if j > 0 {
					data = `{}`
				}
				body := fmt.Sprintf(`{"id":"e-%s-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":%s}`,
					id, j, typ, id, now.Add(time.Duration(j)*time.Minute).Format(time.RFC3339Nano), data)
				if _, err := js.PublishAsync(features.Subject(typ, id), []byte(body), jetstream.WithMsgID(fmt.Sprintf("e-%s-%d", id, j))); err != nil {
					t.Fatal(err)
				}
				published++
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			t.Fatal("publishes not acknowledged within 60s")
		}
	}
	first := ids[:orders]
	publish(first)

	a := startInstance(t, js, "a", parts)
	waitFor(t, "instance a to apply every event", func() bool {
		st, _ := a.st.Stats()
		return st.EventsApplied == int64(published) && st.OpenOrders == int64(len(first))
	})
	a.stop()

	b := startInstance(t, js, "b", parts)
	waitFor(t, "instance b to take partition 0 over", func() bool {
		_, n := b.histogramSum(t, "orderwatch_partition_takeover_seconds")
		return n > 0 && b.m.Owns(0)
	})
	secs, n := b.histogramSum(t, "orderwatch_partition_takeover_seconds")
	t.Logf("partition 0 with %d open orders (%d messages) taken over in %.3fs (%d partitions rebuilt)", len(first), published, secs, n)
	// The rest is read on from the first instance's ack floor.
	publish(ids[len(ids)-10:])
	waitFor(t, "instance b to hold every order", func() bool {
		st, _ := b.st.Stats()
		return st.OpenOrders == int64(len(ids)) && st.EventsApplied == int64(published)
	})
	for _, id := range first[:min(len(first), 200)] {
		want, ok := recordState(t, a.st, id)
		if !ok {
			t.Fatalf("order %s missing on a", id)
		}
		got, ok := recordState(t, b.st, id)
		if !ok {
			t.Fatalf("order %s missing on b after the takeover", id)
		}
		if string(got) != string(want) {
			t.Fatalf("order %s: b rebuilt\n%s\na had\n%s", id, got, want)
		}
	}
}

// recordState is the JSON of an order's state as stored.
func recordState(t *testing.T, st *store.Store, id string) ([]byte, bool) {
	t.Helper()
	v, err := st.Order(id)
	if err != nil {
		return nil, false
	}
	raw, err := process.RecordJSON(v.Record)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		State json.RawMessage `json:"state"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.State, true
}
