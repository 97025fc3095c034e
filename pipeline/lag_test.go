package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/pipeline"
)

// gaugeValue reads an unlabelled gauge from reg; -1 when it is not there.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestLagMonitorReportsPendingAndAckPending(t *testing.T) {
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	lag, err := pipeline.NewLagMonitor(pipeline.LagOptions{JetStream: js, Interval: 20 * time.Millisecond, Registerer: reg,
		Consumers: func() []string { return []string{pipeline.ConsumerName} }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- lag.Run(ctx) }()

	// Before the pipeline created its consumer the monitor keeps polling quietly.
	const n = 10
	for i := range n {
		if _, err := js.Publish(ctx, "orders.note.added.SO-L", []byte("{}"), jetstream.WithMsgID(fmt.Sprint("lag-", i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before the consumer existed, want it to keep polling", err)
	default:
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, pipeline.StreamOrders, jetstream.ConsumerConfig{
		Durable: pipeline.ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: pipeline.SubjectsOrders,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pending = 10", func() bool {
		return gaugeValue(t, reg, "orderwatch_consumer_pending_messages") == n &&
			gaugeValue(t, reg, "orderwatch_consumer_ack_pending_messages") == 0
	})

	batch, err := cons.Fetch(4, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("fetched %d messages, want 4", len(msgs))
	}
	waitFor(t, "pending = 6, ack pending = 4", func() bool {
		return gaugeValue(t, reg, "orderwatch_consumer_pending_messages") == n-4 &&
			gaugeValue(t, reg, "orderwatch_consumer_ack_pending_messages") == 4
	})
	for _, m := range msgs {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "ack pending = 0", func() bool {
		return gaugeValue(t, reg, "orderwatch_consumer_ack_pending_messages") == 0
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
}

func TestNewLagMonitorNeedsJetStream(t *testing.T) {
	if _, err := pipeline.NewLagMonitor(pipeline.LagOptions{}); err == nil {
		t.Error("NewLagMonitor without JetStream: nil error, want one")
	}
}
