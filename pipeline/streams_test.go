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

// TestEnsureStreamsSetsRetention: ORDERS and ACTIONS are created with the age
// limit asked for (30 days when none is), so the events that Badger keeps a copy
// of do not also pile up in JetStream for ever; ORDERS_DLQ keeps its messages
// until someone has looked. An ORDERS that exists with no limit at all is left as
// it is, with a warning that says how to give it one; one with any limit is not
// warned about.
func TestEnsureStreamsSetsRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	maxAges := func(js jetstream.JetStream) map[string]time.Duration {
		t.Helper()
		out := map[string]time.Duration{}
		for _, name := range []string{pipeline.StreamOrders, pipeline.StreamDLQ, pipeline.StreamActions} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = s.CachedInfo().Config.MaxAge
		}
		return out
	}
	for _, c := range []struct {
		asked, want time.Duration
	}{{0, 30 * 24 * time.Hour}, {48 * time.Hour, 48 * time.Hour}} {
		js := natstest.JetStream(t, startSingle(t))
		if err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{OrdersMaxAge: c.asked}); err != nil {
			t.Fatal(err)
		}
		got := maxAges(js)
		want := map[string]time.Duration{pipeline.StreamOrders: c.want, pipeline.StreamActions: c.want, pipeline.StreamDLQ: 0}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("OrdersMaxAge %v: %s created with MaxAge %v, want %v", c.asked, name, got[name], w)
			}
		}
	}

	for _, c := range []struct {
		name string
		cfg  jetstream.StreamConfig
		warn bool
	}{
		{"no limit", jetstream.StreamConfig{}, true},
		{"max bytes", jetstream.StreamConfig{MaxBytes: 1 << 30}, false},
		{"max msgs", jetstream.StreamConfig{MaxMsgs: 1e6}, false},
		{"max age", jetstream.StreamConfig{MaxAge: 7 * 24 * time.Hour}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			js := natstest.JetStream(t, startSingle(t))
			cfg := c.cfg
			cfg.Name, cfg.Subjects = pipeline.StreamOrders, []string{pipeline.SubjectsOrders}
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			if err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{OrdersMaxAge: 72 * time.Hour, Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
				t.Fatal(err)
			}
			if got := maxAges(js)[pipeline.StreamOrders]; got != c.cfg.MaxAge {
				t.Errorf("existing ORDERS edited: MaxAge %v, want %v as it was", got, c.cfg.MaxAge)
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "stream=ORDERS")
			if warned != c.warn {
				t.Errorf("warned %v, want %v: %s", warned, c.warn, logged.String())
			}
			if c.warn && !strings.Contains(logged.String(), `"nats stream edit ORDERS --max-age=72h"`) {
				t.Errorf("the warning does not say how to set the limit: %s", logged.String())
			}
		})
	}
}
