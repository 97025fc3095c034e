package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestClusterNodeLostMidStream: orderwatch on a three-node JetStream cluster, its
// streams created with three replicas; mid-stream the node that leads ORDERS goes
// away. orderwatch reconnects to another node, the stream and the consumer elect
// new leaders, and every message is counted exactly once, each command published
// once.
func TestClusterNodeLostMidStream(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	urls := natstest.URLs(servers)
	child := startChild(t, freeAddr(t), "--data", t.TempDir(), "--nats-url", urls, "--nats-replicas", "3",
		"--batch-size", "64", "--policy", writePolicy(t, killPolicy))
	prod := newProducer(t, urls)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	msgs := simStream(t, 19, 12, 41)
	half := len(msgs) / 2
	if err := <-prod.publishAll(ctx, msgs[:half]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, child, prod.js, 30*time.Second)
	info := streamInfo(t, prod.js, pipeline.StreamOrders)
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("ORDERS: %d replicas, cluster %+v; want 3 (--nats-replicas 3)", info.Config.Replicas, info.Cluster)
	}
	lost := info.Cluster.Leader
	for _, s := range servers {
		if s.Name() == lost {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	t.Logf("shut down %s, the leader of ORDERS, after %d of %d messages", lost, half, len(msgs))

	if err := <-prod.publishAll(ctx, msgs[half:]); err != nil {
		t.Fatal(err)
	}
	// Messages on their way to orderwatch, or acks on their way back, when the node
	// went away are delivered again after the consumer's AckWait (30 s): in 4 of 23
	// runs the drain took 30 s instead of a fraction of a second.
	began := time.Now()
	recovered(t, child, prod, msgs, 75*time.Second)
	t.Logf("drained %v after the second half was stored", time.Since(began).Round(100*time.Millisecond))
	if now := streamInfo(t, prod.js, pipeline.StreamOrders).Cluster.Leader; now == lost || now == "" {
		t.Errorf("ORDERS is led by %q after %s went away", now, lost)
	}
	decisions, executed, commands := commandsOnce(t, child, prod)
	t.Logf("after the failover: %d decisions, %d executed, ACTIONS %d; %v redeliveries recognised", decisions, executed, commands,
		child.metric("orderwatch_events_total", `result="redelivered"`))
	child.stop()
}

// writePolicy writes a policy file for the test and returns its path.
func writePolicy(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
