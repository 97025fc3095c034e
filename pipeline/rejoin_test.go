package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestRejoinForgetsPartitionsTakenMeanwhile: a member stops, another takes its
// partitions, and it comes back on its own data. Of the partitions it does not
// get back it forgets what it had, so each order is held by one member only.
// The rebuilds of the takeovers leave no consumer behind on ORDERS.
func TestRejoinForgetsPartitionsTakenMeanwhile(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	const parts = 2
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var byPart [parts][]string
	for i := 0; len(byPart[0]) < 5 || len(byPart[1]) < 5; i++ {
		id := fmt.Sprintf("SO-%07d", i)
		if p := features.Partition(features.OrderToken(id), parts); len(byPart[p]) < 5 {
			byPart[p] = append(byPart[p], id)
		}
	}
	for _, ids := range byPart {
		for _, id := range ids {
			data := fmt.Sprintf(`{"warehouse":"W1","ship_cutoff":%q}`, now.Add(72*time.Hour).Format(time.RFC3339))
			if _, err := js.Publish(ctx, features.Subject(features.TypeOrderCreated, id),
				event("e-"+id, features.TypeOrderCreated, id, now, data), jetstream.WithMsgID("e-"+id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	applied := func(in *instance, n int64) func() bool {
		return func() bool { st, _ := in.st.Stats(); return st.EventsApplied == n }
	}

	dirA := t.TempDir()
	a := startInstanceOn(t, js, "a", parts, dirA)
	waitFor(t, "a to apply every event", applied(a, 2*5))
	a.stop()
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}
	b := startInstance(t, js, "b", parts)
	waitFor(t, "b to take both partitions over", func() bool { return b.m.Owns(0) && b.m.Owns(1) && applied(b, 2*5)() })

	a = startInstanceOn(t, js, "a", parts, dirA)
	waitFor(t, "a and b to own one partition each", func() bool { return len(a.m.Owned()) == 1 && len(b.m.Owned()) == 1 })
	kept := 1 - a.m.Owned()[0] // the one b kept
	waitFor(t, "a to forget the orders of the partition b kept", func() bool {
		for _, id := range byPart[kept] {
			if _, ok := recordState(t, a.st, id); ok {
				return false
			}
		}
		return true
	})
	for _, id := range byPart[kept] {
		if _, ok := recordState(t, b.st, id); !ok {
			t.Errorf("order %s of partition %d missing on b, its owner", id, kept)
		}
	}
	// The takeovers rebuilt partitions with ordered consumers: none is left.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left := nonDurable(t, js)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ORDERS keeps consumers that are not the pipelines' 15s after the takeovers: %v", left)
		}
	}
}

// nonDurable lists the consumers of ORDERS that are not durable.
func nonDurable(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			out = append(out, fmt.Sprintf("%s (pending %d)", ci.Name, ci.NumPending))
		}
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
