package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// startBoundsPipeline runs a pipeline on an embedded nats-server, Badger on a
// temp dir (after before, when not nil, has written to it) and the scorer of
// `orderwatch run` over the shipped models, until the test ends.
func startBoundsPipeline(t *testing.T, before func(*store.Store)) (jetstream.JetStream, *store.Store, *pipeline.Pipeline) {
	t.Helper()
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "badger")})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(st)
	}
	log := slog.New(slog.DiscardHandler)
	registry, err := newRegistry(filepath.Join(dir, "models"), log, nil)
	if err != nil {
		t.Fatalf("the shipped models on the ONNX Runtime are needed (set ONNXRUNTIME_LIB): %v", err)
	}
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Options{
		JetStream: js, Store: st, Policy: actions.NewLive(policy), Scorer: &registryScorer{r: registry},
		Registerer: prometheus.NewRegistry(), Logger: log, BatchSize: 16, AckWait: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pipeline.Run returned %v on shutdown, want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("pipeline did not stop within 20s")
		}
		registry.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	waitFor(t, "pipeline ready", func() bool { ok, _ := p.Ready(); return ok })
	return js, st, p
}

// publishEvent publishes an event as a producer does, with its id as Nats-Msg-Id.
func publishEvent(t *testing.T, js jetstream.JetStream, typ, id string, body []byte) {
	t.Helper()
	msg := &nats.Msg{Subject: features.Subject(typ, orderIDOf(body)), Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// orderIDOf is the order_id of an encoded event, "" when it has none or is not
// JSON.
func orderIDOf(body []byte) string {
	var env struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(body, &env)
	return env.OrderID
}

// publishOrders publishes order.created for SO-0..SO-n-1 of carrier UPS, cutoffs
// in three hours, at now plus i ms.
func publishOrders(t *testing.T, js jetstream.JetStream, now time.Time, n int) {
	t.Helper()
	cutoff := now.Add(3 * time.Hour).Format(time.RFC3339)
	for i := range n {
		id := fmt.Sprintf("e-c-%d", i)
		publishEvent(t, js, features.TypeOrderCreated, id, fmt.Appendf(nil,
			`{"id":%q,"type":"order.created","order_id":"SO-%d","occurred_at":%q,"source":"erp","schema":1,`+
				`"data":{"warehouse":"DAL","ship_cutoff":%q,"carrier":"UPS","customer_id":"C-1","lines":2,"units":5,"value":120}}`,
			id, i, now.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), cutoff))
	}
}

// scoredByModels fails t unless the last score point of each of SO-0..SO-n-1 is
// the models', not the rules fallback's.
func scoredByModels(t *testing.T, st *store.Store, n int) {
	t.Helper()
	for i := range n {
		raw, err := st.Scores(fmt.Sprintf("SO-%d", i))
		if err != nil || len(raw) == 0 {
			t.Fatalf("scores of SO-%d: %d, %v", i, len(raw), err)
		}
		var pt actions.ScorePoint
		if err := pt.UnmarshalBinary(raw[len(raw)-1]); err != nil {
			t.Fatal(err)
		}
		if pt.Degraded || !strings.HasPrefix(pt.Model, "cutoff_risk@") || len(pt.Classes) == 0 {
			t.Fatalf("SO-%d last scored %+v, want by cutoff_risk and exception_class, not degraded", i, pt)
		}
	}
}

// drainedStats waits until every one of messages is counted in the stats.
func drainedStats(t *testing.T, st *store.Store, messages int64) store.Stats {
	t.Helper()
	var stats store.Stats
	waitFor(t, fmt.Sprintf("all %d messages counted", messages), func() bool {
		var err error
		if stats, err = st.Stats(); err != nil {
			t.Fatal(err)
		}
		return stats.EventsApplied+stats.Duplicates+stats.DeadLettered == messages
	})
	return stats
}

// TestStoredExtremeCarrierSanitizedOnLoad: the on-time share of 1e308 that
// releases before the bounds stored with the context aggregates does not come
// back with a restart: the orders of that carrier are scored by the models and
// every message is applied.
func TestStoredExtremeCarrierSanitizedOnLoad(t *testing.T) {
	js, st, p := startBoundsPipeline(t, func(st *store.Store) {
		b := st.NewBatch()
		// As json.Marshal wrote the Carrier of an old release.
		old := `{"on_time":1e+308,"delay_minutes":0,"perf":{"at":"2026-05-21T14:00:00Z","id":"cp-inf"}}`
		if err := b.PutContext(features.KindCarrier, "UPS", []byte(old)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	})
	const orders = 24
	publishOrders(t, js, time.Now().UTC().Truncate(time.Millisecond), orders)
	stats := drainedStats(t, st, orders)
	if stats.EventsApplied != orders {
		t.Errorf("stats = %+v, want %d applied", stats, orders)
	}
	scoredByModels(t, st, orders)
	if ok, why := p.Ready(); !ok {
		t.Errorf("pipeline not ready: %s", why)
	}
}

// TestExtremeCarrierPerformanceIsIsolated is finding 1 of the hardening issue: a
// 160-byte carrier.performance with "on_time_share": 1e308 once became +Inf in the
// features of every order of that carrier, the class model returned NaN, the score
// point could not be written and every batch holding such an order was redelivered
// for ever. With the real JetStream, Badger, both shipped models and the scorer run
// uses: the bad event is dead-lettered with its reason, every other message is
// applied, and the pipeline stays ready.
func TestExtremeCarrierPerformanceIsIsolated(t *testing.T) {
	js, st, p := startBoundsPipeline(t, nil)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := func(i int) string { return now.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano) }
	const orders = 24
	publishOrders(t, js, now, orders)
	bad := fmt.Appendf(nil, `{"id":"cp-inf","type":"carrier.performance","occurred_at":%q,"source":"tms","schema":1,"data":{"carrier":"UPS","on_time_share":1e308}}`, at(orders))
	if len(bad) > 160 {
		t.Fatalf("the poison event is %d bytes, want at most 160 as in the finding", len(bad))
	}
	publishEvent(t, js, features.TypeCarrierPerformance, "cp-inf", bad)
	for i := range orders {
		id := fmt.Sprintf("e-n-%d", i)
		publishEvent(t, js, features.TypeNoteAdded, id, fmt.Appendf(nil,
			`{"id":%q,"type":"note.added","order_id":"SO-%d","occurred_at":%q,"source":"crm","schema":1,"data":{"text":"customer asks for an update"}}`,
			id, i, at(orders+1+i)))
	}
	// No later carrier.performance for UPS supersedes the bad one: in the finding
	// none did, and a good one in a later batch would heal the stall by itself.
	// Finding 4: a year-9999 cutoff in order.changed; finding 5: a 40 KB warehouse.
	publishEvent(t, js, features.TypeOrderChanged, "chg-9999", fmt.Appendf(nil,
		`{"id":"chg-9999","type":"order.changed","order_id":"SO-1","occurred_at":%q,"schema":1,"data":{"change":"quantity","ship_cutoff":"9999-12-31T23:59:59Z"}}`,
		at(2*orders+2)))
	publishEvent(t, js, features.TypeWarehouseLoad, "wl-40k", fmt.Appendf(nil,
		`{"id":"wl-40k","type":"warehouse.load","occurred_at":%q,"schema":1,"data":{"warehouse":%q,"queue":3,"capacity":40}}`,
		at(2*orders+3), strings.Repeat("W", 40<<10)))
	const messages, poison = 2*orders + 3, 3
	wantReasons := map[string]string{"cp-inf": "out_of_range", "chg-9999": "absurd_occurred_at", "wl-40k": "bad_id"}

	stats := drainedStats(t, st, messages)
	if stats.EventsApplied != messages-poison || stats.DeadLettered != poison {
		t.Errorf("stats = %+v, want %d applied and %d dead-lettered", stats, messages-poison, poison)
	}
	// The orders of that carrier are scored by the models, not by the rules
	// fallback that a row the models could not score falls back to.
	scoredByModels(t, st, orders)
	if ok, why := p.Ready(); !ok {
		t.Errorf("pipeline not ready after the poison: %s", why)
	}

	cons, err := js.OrderedConsumer(context.Background(), pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range poison {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("missing dead letters in %s (want %v): %v", pipeline.StreamDLQ, wantReasons, err)
		}
		id, reason := m.Headers().Get(pipeline.HeaderOriginalMsgID), m.Headers().Get(pipeline.HeaderReason)
		if want, ok := wantReasons[id]; !ok || reason != want {
			t.Errorf("dead letter %q has reason %q (%s), want %q", id, reason, m.Headers().Get(pipeline.HeaderDetail), want)
		}
		delete(wantReasons, id)
	}
}
