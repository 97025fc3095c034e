package pipeline_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/mapping"
	"github.com/orderwatch/orderwatch/pipeline"
)

const middlewareMapping = "../examples/mapping/middleware-json.yaml"

// foreignSubject is the subject the middleware publishes a message of kind on,
// one the example mapping's entries name.
var foreignSubject = map[string]string{
	"SalesOrderCreated":  "erp.orders.created",
	"CreditBlock":        "erp.credit.block",
	"Heartbeat":          "erp.heartbeat",
	"SiteStatus":         "wms.sites.status",
	"PickTaskConfirmed":  "wms.tasks.confirmed",
	"ShipmentDispatched": "tms.dispatch",
	"CarrierStatus":      "tms.status",
}

// middlewareMessages are the example's messages, copies times, each copy with
// its own order numbers and message ids.
func middlewareMessages(t *testing.T, copies int) (msgs [][]byte, orders []string) {
	t.Helper()
	raw, err := os.ReadFile("../examples/mapping/middleware-messages.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for c := range copies {
		orders = append(orders, fmt.Sprintf("45000%05d", c))
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			line := strings.ReplaceAll(sc.Text(), "4500012345", orders[c])
			line = strings.ReplaceAll(line, "ESB-7c1f0a", fmt.Sprintf("ESB-%d-", c))
			msgs = append(msgs, []byte(line))
		}
	}
	return msgs, orders
}

func kindOf(t *testing.T, msg []byte) string {
	t.Helper()
	var v struct{ Kind string }
	if err := json.Unmarshal(msg, &v); err != nil {
		t.Fatal(err)
	}
	return v.Kind
}

func loadMapping(t *testing.T, path string) *mapping.Mapping {
	t.Helper()
	m, err := mapping.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startBridge runs a bridge on h's JetStream until the test ends.
func startBridge(t *testing.T, h *harness, m *mapping.Mapping) {
	t.Helper()
	b, err := pipeline.NewBridge(pipeline.BridgeOptions{JetStream: h.js, Mapping: m, Registerer: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge Run returned %v on shutdown, want nil", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("bridge did not stop within 15s")
		}
	})
}

// publishForeign publishes data to FOREIGN as the middleware would, without a
// Nats-Msg-Id, so that the same bytes twice are two messages.
func (h *harness) publishForeign(subject string, data []byte) {
	h.t.Helper()
	if _, err := h.js.Publish(context.Background(), subject, data); err != nil {
		h.t.Fatalf("publish to %s: %v", subject, err)
	}
}

// bridged waits until the bridge has acked every message of FOREIGN.
func (h *harness) bridged() {
	h.t.Helper()
	waitFor(h.t, "FOREIGN bridged", func() bool {
		c, err := h.js.Consumer(context.Background(), pipeline.StreamForeign, pipeline.ConsumerBridge)
		if err != nil {
			h.t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			h.t.Fatal(err)
		}
		return info.NumPending == 0 && info.NumAckPending == 0
	})
}

func (h *harness) orderState(id string) string {
	h.t.Helper()
	v, ok := h.order(id)
	if !ok {
		h.t.Fatalf("order %s not in the store", id)
	}
	b, err := json.Marshal(v.Record.State)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

// TestBridgeMatchesImport: the middleware's messages mapped live by the bridge
// give the same order states as the same records mapped offline (what import
// does per record: mapping.Map, the event's JSON) and published to ORDERS.
func TestBridgeMatchesImport(t *testing.T) {
	m := loadMapping(t, middlewareMapping)
	msgs, orders := middlewareMessages(t, 3)

	imported := newHarness(t, false)
	var events int
	for _, msg := range msgs {
		rec, err := mapping.JSONRecord(msg)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := m.Map(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			imported.publish(features.Subject(ev.Event.Type, ev.Event.OrderID), ev.Event.ID, ev.JSON)
			events++
		}
	}
	want := imported.drained()
	if want.EventsApplied != int64(events) || want.DeadLettered != 0 {
		t.Fatalf("imported: stats %+v, want %d applied, none dead-lettered", want, events)
	}

	live := newHarness(t, false)
	startBridge(t, live, m)
	for _, msg := range msgs {
		live.publishForeign(foreignSubject[kindOf(t, msg)], msg)
	}
	live.bridged()
	got := live.drained()
	if got.EventsApplied != want.EventsApplied || got.DeadLettered != 0 || got.Duplicates != 0 {
		t.Errorf("live: stats %+v, want %d applied as imported, none dead-lettered or duplicate", got, want.EventsApplied)
	}
	for _, id := range orders {
		if g, w := live.orderState(id), imported.orderState(id); g != w {
			t.Errorf("order %s live:\n%s\nimported:\n%s", id, g, w)
		}
	}
	heartbeats := float64(len(orders)) // one per copy
	if n := metricSum(t, live.reg, "orderwatch_bridge_messages_total", "result", "skipped"); n != heartbeats {
		t.Errorf("skipped = %v, want %v (the heartbeats)", n, heartbeats)
	}
	if n := metricSum(t, live.reg, "orderwatch_bridge_messages_total", "result", "mapped"); n != float64(len(msgs))-heartbeats {
		t.Errorf("mapped = %v, want %v", n, float64(len(msgs))-heartbeats)
	}
	if n := metricSum(t, live.reg, "orderwatch_bridge_events_total"); n != float64(events) {
		t.Errorf("orderwatch_bridge_events_total = %v, want %d", n, events)
	}
}

// TestBridgeRedeliveryAppliesOnce: the same foreign message stored twice in
// FOREIGN (a middleware that resends, or a redelivery) maps to the same event
// ids and is applied once.
func TestBridgeRedeliveryAppliesOnce(t *testing.T) {
	m := loadMapping(t, middlewareMapping)
	msgs, orders := middlewareMessages(t, 1)
	h := newHarness(t, false)
	startBridge(t, h, m)
	created, dispatch := msgs[0], msgs[6]
	for _, msg := range [][]byte{created, created, dispatch, dispatch} {
		h.publishForeign(foreignSubject[kindOf(t, msg)], msg)
	}
	h.bridged()
	st := h.drained()
	// order.created once; the dispatch gives pack.confirmed and shipment.confirmed once.
	if st.EventsApplied != 3 {
		t.Errorf("stats %+v, want 3 events applied (each message's once)", st)
	}
	v, _ := h.order(orders[0])
	if v.Record.State.Events != 3 || v.Timeline != 3 {
		t.Errorf("order has %d events and %d timeline entries, want 3 and 3", v.Record.State.Events, v.Timeline)
	}
	if n := metricSum(t, h.reg, "orderwatch_bridge_messages_total", "result", "mapped"); n != 4 {
		t.Errorf("mapped = %v, want 4 (each copy mapped, its events deduplicated)", n)
	}
}

// TestBridgeDeadLettersUnmappable: a message that does not map goes to
// orderwatch.dlq.<reason> with the DLQ's headers and is acked; the bridge goes
// on with the next. The first FOREIGN message's dead letter does not meet the
// dead letter of the first ORDERS message in the DLQ's dedupe window.
func TestBridgeDeadLettersUnmappable(t *testing.T) {
	m := loadMapping(t, middlewareMapping)
	msgs, orders := middlewareMessages(t, 1)
	h := newHarness(t, false)
	// ORDERS' first message, dead-lettered by the processor.
	h.publish("orders.order.created", "poison-1", []byte("{not json"))
	h.drained()
	startBridge(t, h, m)
	cases := []struct {
		subject string
		data    []byte
		reason  string
	}{
		{"erp.orders.created", []byte("{not json"), mapping.ReasonBadRecord},
		{"erp.orders.created", []byte(`{"msgId":"x-1","kind":"InvoicePosted","ts":"2026-11-02T07:16:00Z"}`), mapping.ReasonUnmapped},
		{"erp.credit.block", []byte(`{"msgId":"x-2","kind":"CreditBlock","ts":"yesterday","order":{"number":"1"},"blocked":true}`), mapping.ReasonBadTimestamp},
	}
	for _, c := range cases {
		h.publishForeign(c.subject, c.data)
	}
	h.publishForeign(foreignSubject[kindOf(t, msgs[0])], msgs[0])
	h.bridged()
	if _, ok := h.order(orders[0]); !ok {
		waitFor(t, "the good message after the bad ones applied", func() bool { _, ok := h.order(orders[0]); return ok })
	}

	cons, err := h.js.OrderedConsumer(context.Background(), pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1+len(cases), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for msg := range batch.Messages() {
		if msg.Headers().Get(pipeline.HeaderOriginalMsgID) == "poison-1" {
			continue
		}
		got = append(got, msg)
	}
	if len(got) != len(cases) {
		t.Fatalf("ORDERS_DLQ holds %d dead letters of FOREIGN, want %d", len(got), len(cases))
	}
	for i, c := range cases {
		msg := got[i]
		if msg.Subject() != "orderwatch.dlq."+c.reason || msg.Headers().Get(pipeline.HeaderReason) != c.reason {
			t.Errorf("case %d: dead letter on %s with reason %q, want %s", i, msg.Subject(), msg.Headers().Get(pipeline.HeaderReason), c.reason)
		}
		if msg.Headers().Get(pipeline.HeaderDetail) == "" {
			t.Errorf("case %d: no detail header", i)
		}
		if got := msg.Headers().Get(pipeline.HeaderOriginalSubject); got != c.subject {
			t.Errorf("case %d: original subject %q, want %q", i, got, c.subject)
		}
		if !bytes.Equal(msg.Data(), c.data) {
			t.Errorf("case %d: the original bytes were not kept", i)
		}
	}
	if n := metricSum(t, h.reg, "orderwatch_bridge_messages_total", "result", "dead_lettered"); n != float64(len(cases)) {
		t.Errorf("dead_lettered = %v, want %d", n, len(cases))
	}
	if n := metricSum(t, h.reg, "orderwatch_bridge_failures_total"); n != 0 {
		t.Errorf("orderwatch_bridge_failures_total = %v, want 0", n)
	}
}

// TestBridgeRefusesOwnSubjects: a mapping whose subjects overlap orderwatch's
// own (it would read back what it publishes) is refused before anything starts.
func TestBridgeRefusesOwnSubjects(t *testing.T) {
	for _, subj := range []string{"orders.>", "orders.order.created", "*.order.created.*", ">", "orderwatch.actions.>", "*.dlq.x"} {
		t.Run(subj, func(t *testing.T) {
			m, err := mapping.Compile(fmt.Appendf(nil, `version: 1
records:
- name: all
  subjects: ["erp.>", %q]
  when: 'true'
  skip: true
`, subj))
			if err != nil {
				t.Fatal(err)
			}
			_, err = pipeline.NewBridge(pipeline.BridgeOptions{JetStream: fakeJS{}, Mapping: m})
			if !errors.Is(err, pipeline.ErrForeignSubject) || !strings.Contains(err.Error(), subj) {
				t.Errorf("NewBridge: %v, want ErrForeignSubject naming %s", err, subj)
			}
		})
	}
	for _, subj := range []string{"erp.>", "order.>", "orderwatchers.x", "wms.orders.>"} {
		if err := pipeline.CheckForeignSubjects([]string{subj}); err != nil {
			t.Errorf("CheckForeignSubjects(%s): %v, want nil", subj, err)
		}
	}
	if err := pipeline.CheckForeignSubjects(nil); !errors.Is(err, pipeline.ErrForeignSubject) {
		t.Errorf("CheckForeignSubjects(none): %v, want ErrForeignSubject", err)
	}
}

// fakeJS stands for a JetStream NewBridge must not reach.
type fakeJS struct{ jetstream.JetStream }

// TestBridgeFailedPublishIsRedelivered: while ORDERS takes nothing (not there
// yet), a foreign message is not acked and is counted as a failure; once ORDERS
// is there, its redelivery is mapped and its events stored once.
func TestBridgeFailedPublishIsRedelivered(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	b, err := pipeline.NewBridge(pipeline.BridgeOptions{JetStream: js, Mapping: loadMapping(t, middlewareMapping), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	msgs, _ := middlewareMessages(t, 1)
	dispatch := msgs[6] // two events
	if _, err := js.Publish(ctx, foreignSubject[kindOf(t, dispatch)], dispatch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed publish counted", func() bool { return metricSum(t, reg, "orderwatch_bridge_failures_total") >= 1 })
	if n := metricSum(t, reg, "orderwatch_bridge_messages_total"); n != 0 {
		t.Fatalf("messages handled = %v while ORDERS is missing, want 0", n)
	}
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the redelivery mapped", func() bool {
		return metricSum(t, reg, "orderwatch_bridge_messages_total", "result", "mapped") == 1
	})
	info, err := streamInfo(js, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("ORDERS holds %d messages, want the dispatch's 2 events", info.State.Msgs)
	}
}
