package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestEnsureStreamsReplicatesOnACluster: on a three-node JetStream cluster the
// streams are created with the replicas asked for, and a stream that exists with
// fewer is left alone with a warning that says how to raise them. A single server
// refuses three replicas, and the error names the stream and the replicas.
func TestEnsureStreamsReplicatesOnACluster(t *testing.T) {
	js := natstest.JetStream(t, natstest.URLs(natstest.Cluster(t, 3)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An operator created ACTIONS before, with one replica.
	actions := pipeline.StreamConfigs()[2]
	if actions.Name != pipeline.StreamActions {
		t.Fatalf("StreamConfigs()[2] is %s", actions.Name)
	}
	if _, err := js.CreateStream(ctx, actions); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Replicas: 3, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{pipeline.StreamOrders: 3, pipeline.StreamDLQ: 3, pipeline.StreamActions: 1} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != want {
			t.Errorf("%s: %d replicas, want %d", name, info.Config.Replicas, want)
		}
	}
	for _, w := range []string{"stream=ACTIONS", "replicas=1", "asked=3", `"nats stream edit ACTIONS --replicas 3"`} {
		if !strings.Contains(logged.String(), w) {
			t.Errorf("log %q lacks %s", logged.String(), w)
		}
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1 (for ACTIONS): %s", n, logged.String())
	}

	err = pipeline.EnsureStreams(ctx, natstest.JetStream(t, startSingle(t)), pipeline.StreamOptions{Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "create stream ORDERS") || !strings.Contains(err.Error(), "3 replicas") {
		t.Errorf("R3 on a single server: error %v, want one naming ORDERS and 3 replicas", err)
	}
}

func startSingle(t *testing.T) string {
	t.Helper()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:-1", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// TestEnsureStreamsSaysWhenJetStreamIsOff: a server without JetStream is named as
// such, with what to do, not as a bare "no responders".
func TestEnsureStreamsSaysWhenJetStreamIsOff(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, func(o *server.Options) { o.JetStream = false }).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{})
	if err == nil || !strings.Contains(err.Error(), "has no JetStream for this user's account") {
		t.Errorf("EnsureStreams on a server without JetStream: %v, want it named", err)
	}
}

// TestEnsureStreamsRefusesAStreamWithoutOurSubjects: an ORDERS an operator created
// on other subjects would take none of the events published to orders.<type>;
// EnsureStreams refuses it and says how to fix it, and accepts one that lists
// orders.> among others.
func TestEnsureStreamsRefusesAStreamWithoutOurSubjects(t *testing.T) {
	js := natstest.JetStream(t, startSingle(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamOrders, Subjects: []string{"erp.orders.>"}}); err != nil {
		t.Fatal(err)
	}
	err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{})
	if err == nil || !strings.Contains(err.Error(), "without orders.>") || !strings.Contains(err.Error(), "--subjects erp.orders.>,orders.>") {
		t.Fatalf("EnsureStreams with ORDERS on erp.orders.>: %v, want a refusal that says how to add orders.>", err)
	}
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamOrders, Subjects: []string{"erp.orders.>", "orders.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Errorf("EnsureStreams with ORDERS on erp.orders.> and orders.>: %v", err)
	}
}
