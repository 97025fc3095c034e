package actions_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// TestDuplicatePublishCountedApart: a command published a second time with the
// same Nats-Msg-Id (after a takeover the new owner executes again what the
// previous owner published) is dropped by JetStream as a duplicate; the executor
// counts it deduplicated, not published, in its metrics and in the durable stats.
func TestDuplicatePublishCountedApart(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	if _, err := pipeline.EnsureStreams(t.Context(), js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The publisher of orderwatch run: a PubAck marked Duplicate is ErrDuplicate.
	publish := func(ctx context.Context, subject, msgID string, data []byte) error {
		ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		if err == nil && ack.Duplicate {
			return actions.ErrDuplicate
		}
		return err
	}
	reg := prometheus.NewPedanticRegistry()
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Publish: publish, Interval: 10 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := exec.Run(ctx); err != nil {
			t.Errorf("executor: %v", err)
		}
	})
	defer wg.Wait()
	defer cancel()

	action, msgID := actions.ActionNotifyCS, "SO-1/notify_cs/0001"
	// execute puts the command into the outbox under entry and waits until the
	// executor took it out.
	execute := func(entry string) {
		t.Helper()
		job := fmt.Sprintf(`{"target":%q,"action":%q,"msg_id":%q,"command":{"order_id":"SO-1","action":%q,"idempotency_key":%q}}`,
			actions.TargetNATS, action, msgID, action, msgID)
		b := st.NewBatch()
		if err := b.Enqueue(entry, []byte(job)); err != nil {
			b.Discard()
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		exec.Wake()
		waitFor(t, entry+" out of the outbox", func() bool {
			q, err := st.OutboxPage("", 10)
			return err == nil && len(q) == 0
		})
	}
	execute("d-1") // the first owner's
	execute("d-2") // the next owner's, the same command

	s, err := js.Stream(t.Context(), pipeline.StreamActions)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != 1 {
		t.Fatalf("ACTIONS: %+v, %v: want the command once", info, err)
	}
	published := counterValue(t, reg, "orderwatch_actions_published_total", action)
	dup := counterValue(t, reg, "orderwatch_actions_duplicate_total", action)
	if published != 1 || dup != 1 {
		t.Errorf("orderwatch_actions_published_total %v, orderwatch_actions_duplicate_total %v: want 1 and 1", published, dup)
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.ActionsPublished != 1 || stats.ActionsDeduplicated != 1 {
		t.Errorf("stats: actions_published %d, actions_deduplicated %d: want 1 and 1", stats.ActionsPublished, stats.ActionsDeduplicated)
	}
}

// counterValue gathers reg and returns the value of the counter name with the
// label action; a missing one is an error, and 0.
func counterValue(t *testing.T, reg *prometheus.Registry, name, action string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "action" && l.GetValue() == action {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Errorf("%s{action=%q} is not on the registry", name, action)
	return 0
}
