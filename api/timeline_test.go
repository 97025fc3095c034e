package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// timelineEnv is the order API over real parts: an embedded nats-server with
// ORDERS as orderwatch creates it, Badger on a temp dir, the Processor applying
// the stream's messages as the pipeline reads them, and the API reading the
// events back from the stream.
type timelineEnv struct {
	t      *testing.T
	ns     *server.Server
	js     jetstream.JetStream
	orders jetstream.Stream
	st     *store.Store
	proc   *process.Processor
	reg    *prometheus.Registry
	srv    *httptest.Server
}

func newTimelineEnv(t *testing.T) *timelineEnv {
	t.Helper()
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	orders, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := process.New(process.Options{Store: st, Policy: actions.NewLive(policy),
		DeadLetter: func(_ context.Context, m *process.Message, reason, detail string) error {
			return fmt.Errorf("message %d dead-lettered: %s: %s", m.Seq, reason, detail)
		}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Events: orders, Registerer: reg}))
	t.Cleanup(srv.Close)
	return &timelineEnv{t: t, ns: ns, js: js, orders: orders, st: st, proc: proc, reg: reg, srv: srv}
}

// eventJSON is an event of order at at, with data.
func eventJSON(id, typ, order string, at time.Time, data string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"wms","actor":"scanner-7","schema":1,"data":%s}`,
		id, typ, order, at.UTC().Format(time.RFC3339Nano), data)
}

// publish publishes events to ORDERS, with their ids as Nats-Msg-Id, and
// applies them as the pipeline reads them (one batch); it returns their
// sequences.
func (e *timelineEnv) publish(events ...[]byte) []uint64 {
	e.t.Helper()
	ctx := context.Background()
	var seqs []uint64
	var msgs []*process.Message
	for _, body := range events {
		var ev features.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			e.t.Fatal(err)
		}
		ack, err := e.js.Publish(ctx, features.Subject(ev.Type, ev.OrderID), body, jetstream.WithMsgID(ev.ID))
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := e.orders.GetMsg(ctx, ack.Sequence)
		if err != nil {
			e.t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
		msgs = append(msgs, &process.Message{Seq: m.Sequence, Subject: m.Subject, Data: m.Data, Header: m.Header})
	}
	res, err := e.proc.Process(ctx, msgs)
	if err != nil || res.Applied != len(msgs) {
		e.t.Fatalf("process: %+v, %v; want %d applied", res, err, len(msgs))
	}
	return seqs
}

// orderAnswer is what the tests read of GET /api/v1/orders/{id}.
type orderAnswer struct {
	Timeline        []json.RawMessage `json:"timeline"`
	TimelineDropped int               `json:"timeline_dropped"`
	History         []struct {
		Kind, What, Ref string
	} `json:"history"`
}

func getOrder(t *testing.T, url, order string) orderAnswer {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/orders/" + order)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET order %s = %d %s, %v", order, resp.StatusCode, body, err)
	}
	var out orderAnswer
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// compactOf returns the compact form's note of a timeline event, nil when the
// event is shown whole.
func compactOf(t *testing.T, raw json.RawMessage) *struct {
	Seq       uint64
	What, Why string
} {
	t.Helper()
	var ev struct {
		Compact *struct {
			Seq       uint64
			What, Why string
		}
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Compact
}

func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestOrderTimelineFromTheStream: GET /api/v1/orders/{id} shows each event of
// the order's timeline as the bytes ORDERS holds at the sequence the order
// references, by event time; once the stream no longer has a message (deleted,
// then purged), the event shows in its compact form, which says so and why,
// the history still names it, and the metric counts it. An API given no
// stream shows every event in its compact form.
func TestOrderTimelineFromTheStream(t *testing.T) {
	e := newTimelineEnv(t)
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	created := eventJSON("e-1", features.TypeOrderCreated, "SO-1", t0, fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(8*time.Hour).Format(time.RFC3339)))
	note := eventJSON("e-2", features.TypeNoteAdded, "SO-1", t0.Add(2*time.Minute), `{"text":"customer asks for a morning delivery"}`)
	released := eventJSON("e-3", features.TypePickReleased, "SO-1", t0.Add(time.Minute), `{}`)
	seqs := e.publish(created, note)
	seqs = append(seqs, e.publish(released)...)

	got := getOrder(t, e.srv.URL, "SO-1")
	want := [][]byte{created, released, note} // by event time
	if len(got.Timeline) != len(want) {
		t.Fatalf("timeline of %d events, want %d", len(got.Timeline), len(want))
	}
	for i := range want {
		if g, w := compactJSON(t, got.Timeline[i]), compactJSON(t, want[i]); g != w {
			t.Errorf("timeline event %d = %s, want the stream's bytes %s", i, g, w)
		}
	}

	// The note's message is deleted from the stream.
	if err := e.orders.DeleteMsg(context.Background(), seqs[1]); err != nil {
		t.Fatal(err)
	}
	got = getOrder(t, e.srv.URL, "SO-1")
	if len(got.Timeline) != 3 || compactOf(t, got.Timeline[0]) != nil || compactOf(t, got.Timeline[1]) != nil {
		t.Fatalf("after the note's deletion, timeline %s: want 3 events, the first two whole", got.Timeline)
	}
	c := compactOf(t, got.Timeline[2])
	if c == nil || c.Seq != seqs[1] || c.What != "customer asks for a morning delivery" ||
		!strings.Contains(c.Why, fmt.Sprintf("no longer has message %d", seqs[1])) {
		t.Fatalf("the deleted note shows as %s: want its compact form, sequence %d, its text, and why", got.Timeline[2], seqs[1])
	}
	var env struct {
		ID, Type, OrderID, Source, Actor string
		OccurredAt                       time.Time `json:"occurred_at"`
	}
	if err := json.Unmarshal(got.Timeline[2], &env); err != nil {
		t.Fatal(err)
	}
	if env.ID != "e-2" || env.Type != features.TypeNoteAdded || !env.OccurredAt.Equal(t0.Add(2*time.Minute)) || env.Source != "wms" || env.Actor != "scanner-7" {
		t.Errorf("the compact form's envelope %+v, want the note's", env)
	}
	var events []string
	for _, h := range got.History {
		if h.Kind == "event" {
			events = append(events, h.Ref+" "+h.What)
		}
	}
	if w := "e-1 order.created: DAL|e-3 pick.released|e-2 note.added: customer asks for a morning delivery"; strings.Join(events, "|") != w {
		t.Errorf("history's events %q, want %q", events, w)
	}
	if n := compactCount(t, e.reg, "gone"); n != 1 {
		t.Errorf("orderwatch_api_timeline_compact_events_total{why=gone} = %v, want 1", n)
	}

	// The stream is purged: every event is in its compact form.
	if err := e.orders.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = getOrder(t, e.srv.URL, "SO-1")
	for i, raw := range got.Timeline {
		if c := compactOf(t, raw); c == nil || !strings.Contains(c.Why, "no longer has message") {
			t.Errorf("after the purge, event %d = %s: want its compact form, saying the stream no longer has it", i, raw)
		}
	}

	// An API with no stream shows the references.
	srv := httptest.NewServer(api.Handler(api.Options{Store: e.st}))
	defer srv.Close()
	got = getOrder(t, srv.URL, "SO-1")
	for i, raw := range got.Timeline {
		if c := compactOf(t, raw); len(got.Timeline) != 3 || c == nil || !strings.Contains(c.Why, "reads no stream ORDERS") {
			t.Errorf("with no stream, event %d of %d = %s: want its compact form, saying there is no stream", i, len(got.Timeline), raw)
		}
	}
}

// compactCount is orderwatch_api_timeline_compact_events_total{why}.
func compactCount(t *testing.T, reg *prometheus.Registry, why string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "orderwatch_api_timeline_compact_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == why {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no orderwatch_api_timeline_compact_events_total{why=%q}", why)
	return 0
}

// TestOrderTimelineSaysWhatItDropped: an order with more events than its
// timeline keeps (process.MaxTimeline) shows the ones kept, read from the
// stream, says how many it dropped (timeline_dropped, and an entry of the
// history), and the order's record stays bounded.
func TestOrderTimelineSaysWhatItDropped(t *testing.T) {
	e := newTimelineEnv(t)
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	const n = process.MaxTimeline + 40
	events := [][]byte{eventJSON("e-1", features.TypeOrderCreated, "SO-9", t0, fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(8*time.Hour).Format(time.RFC3339)))}
	for i := 2; i <= n; i++ {
		events = append(events, eventJSON(fmt.Sprintf("e-%d", i), features.TypeNoteAdded, "SO-9", t0.Add(time.Duration(i)*time.Second), `{"text":"called again"}`))
	}
	for len(events) > 0 {
		k := min(len(events), 100)
		e.publish(events[:k]...)
		events = events[k:]
	}
	got := getOrder(t, e.srv.URL, "SO-9")
	kept := len(got.Timeline)
	if got.TimelineDropped == 0 || kept+got.TimelineDropped != n || kept > process.MaxTimeline {
		t.Fatalf("%d events shown and timeline_dropped %d of %d: want at most %d shown and the rest counted", kept, got.TimelineDropped, n, process.MaxTimeline)
	}
	for i, raw := range got.Timeline {
		if c := compactOf(t, raw); c != nil {
			t.Fatalf("event %d in its compact form (%s): the stream has it", i, c.Why)
		}
	}
	var dropped, shown int
	for _, h := range got.History {
		switch h.Kind {
		case "dropped":
			dropped++
			if !strings.HasPrefix(h.What, fmt.Sprintf("%d events of this order", got.TimelineDropped)) {
				t.Errorf("history says %q, want how many events were dropped (%d)", h.What, got.TimelineDropped)
			}
		case "event":
			shown++
		}
	}
	if dropped != 1 || shown != kept {
		t.Errorf("history has %d dropped entries and %d events, want 1 and %d", dropped, shown, kept)
	}
}

// TestOrderTimelineWhenTheStreamFails: when ORDERS cannot be read (its server
// is gone), the order is still answered: every event in its compact form, the
// first saying why the read failed and the others that they were not tried
// after it, so a page costs one failed read, not one per event.
func TestOrderTimelineWhenTheStreamFails(t *testing.T) {
	e := newTimelineEnv(t)
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	e.publish(
		eventJSON("e-1", features.TypeOrderCreated, "SO-1", t0, fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(8*time.Hour).Format(time.RFC3339))),
		eventJSON("e-2", features.TypePickReleased, "SO-1", t0.Add(time.Minute), `{}`),
		eventJSON("e-3", features.TypePickConfirmed, "SO-1", t0.Add(2*time.Minute), `{}`),
	)
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	got := getOrder(t, e.srv.URL, "SO-1")
	if len(got.Timeline) != 3 {
		t.Fatalf("timeline of %d events, want 3", len(got.Timeline))
	}
	for i, raw := range got.Timeline {
		c := compactOf(t, raw)
		want := "stream ORDERS could not be read: "
		if i > 0 {
			want += "not tried after an earlier read failed"
		}
		if c == nil || !strings.HasPrefix(c.Why, want) {
			t.Errorf("event %d = %s: want its compact form, why starting %q", i, raw, want)
		}
	}
	if n := compactCount(t, e.reg, "failed"); n != 3 {
		t.Errorf("orderwatch_api_timeline_compact_events_total{why=failed} = %v, want 3", n)
	}
}
