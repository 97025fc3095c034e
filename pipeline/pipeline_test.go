package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// harness runs the real thing: an embedded nats-server on a random port, Badger on
// a temp dir, the shipped model on the real ONNX Runtime, the pipeline and the
// executor.
type harness struct {
	t    *testing.T
	js   jetstream.JetStream
	nc   *nats.Conn
	st   *store.Store
	reg  *prometheus.Registry
	stop func()
}

func newHarness(t *testing.T, withModel bool, mods ...func(*pipeline.Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir, Sync: "always"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: dir + "/badger"})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	exec, err := actions.NewExecutor(actions.ExecutorOptions{
		Store: st, Registerer: reg, Interval: 50 * time.Millisecond,
		Publish: func(ctx context.Context, subject, msgID string, data []byte) error {
			_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := pipeline.Options{JetStream: js, Store: st, Policy: actions.NewLive(policy), OnCommit: exec.Wake, Registerer: reg, BatchSize: 64}
	var model *models.Model
	if withModel {
		model = openShippedModel(t)
		opts.Scorer = riskScorer{model}
	}
	for _, mod := range mods {
		mod(&opts)
	}
	p, err := pipeline.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	pipeDone, execDone := make(chan error, 1), make(chan error, 1)
	go func() { pipeDone <- p.Run(ctx) }()
	go func() { execDone <- exec.Run(ctx) }()
	h := &harness{t: t, js: js, nc: nc, st: st, reg: reg}
	var stopped bool
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for name, ch := range map[string]chan error{"pipeline": pipeDone, "executor": execDone} {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("%s.Run returned %v on shutdown, want nil", name, err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("%s did not stop within 15s", name)
			}
		}
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		if model != nil {
			model.Close()
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(h.stop)
	waitFor(t, "pipeline ready", func() bool { ok, _ := p.Ready(); return ok })
	return h
}

// riskScorer scores with one risk model, the shipped cutoff_risk; the production
// scorer over the model registry is cmd/orderwatch's.
type riskScorer struct{ m *models.Model }

func (s riskScorer) Score(rows []float32, _ [][]string, risk, _ []float32) (pipeline.Scored, error) {
	return pipeline.Scored{
		Risk:      actions.ModelRef{Name: s.m.Name(), Version: s.m.Version(), SHA256: s.m.SHA256()},
		Threshold: s.m.Threshold(),
		Explain:   s.m.ExplainRows,
	}, s.m.Score(rows, risk)
}

func openShippedModel(t *testing.T) *models.Model {
	t.Helper()
	if err := models.InitRuntime(""); err != nil {
		t.Fatalf("the ONNX Runtime is needed (run `make test`, which fetches it): %v", err)
	}
	dir := t.TempDir()
	if err := models.SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	live, err := models.Active(dir, "cutoff_risk")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.Open(live, features.SpecVersion, features.Names[:])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// publish sends raw bytes to a subject with a Nats-Msg-Id, as any producer would.
func (h *harness) publish(subject, msgID string, data []byte) {
	h.t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		h.t.Fatalf("publish to %s: %v", subject, err)
	}
}

func (h *harness) stats() store.Stats {
	h.t.Helper()
	st, err := h.st.Stats()
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// drained waits until every message of ORDERS is accounted for in the stats.
func (h *harness) drained() store.Stats {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), pipeline.StreamOrders)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	want := int64(info.State.Msgs)
	var st store.Stats
	waitFor(h.t, fmt.Sprintf("all %d messages counted", want), func() bool {
		st = h.stats()
		return st.EventsApplied+st.Duplicates+st.DeadLettered == want
	})
	return st
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 15s waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func event(id, typ, order string, at time.Time, data string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`,
		id, typ, order, at.UTC().Format(time.RFC3339Nano), data)
}

func created(id, order string, at, cutoff time.Time) []byte {
	return event(id, "order.created", order, at, fmt.Sprintf(
		`{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-1","customer_tier":"gold","lines":3,"units":12,"value":840.5}`,
		cutoff.UTC().Format(time.RFC3339)))
}

type orderView struct {
	Record struct {
		State    features.OrderState `json:"state"`
		Risk     *float64            `json:"risk"`
		Model    *actions.ModelRef   `json:"model"`
		Degraded bool                `json:"degraded"`
	}
	Decisions []actions.Decision
	Outcomes  [][]byte
	Timeline  int
}

func (h *harness) order(id string) (orderView, bool) {
	h.t.Helper()
	v, err := h.st.Order(id)
	if errors.Is(err, store.ErrNotFound) {
		return orderView{}, false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	var out orderView
	rec, err := process.RecordJSON(v.Record)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := json.Unmarshal(rec, &out.Record); err != nil {
		h.t.Fatal(err)
	}
	for _, d := range v.Decisions {
		var dec actions.Decision
		if err := json.Unmarshal(d, &dec); err != nil {
			h.t.Fatal(err)
		}
		out.Decisions = append(out.Decisions, dec)
	}
	// The timeline: events stored whole by earlier releases, and the
	// references the record keeps.
	tl, err := process.RecordTimeline(v.Record)
	if err != nil {
		h.t.Fatal(err)
	}
	out.Outcomes, out.Timeline = v.Outcomes, len(v.Timeline)+len(tl.Entries)
	return out, true
}

func TestOrderCreatedIsFoldedAndScored(t *testing.T) {
	h := newHarness(t, true)
	now := time.Now()
	h.publish(features.Subject("order.created", "SO-1"), "e-1", created("e-1", "SO-1", now, now.Add(6*time.Hour)))
	h.publish(features.Subject("pick.released", "SO-1"), "e-2", event("e-2", "pick.released", "SO-1", now.Add(time.Minute), `{}`))

	var v orderView
	waitFor(t, "order SO-1 with two events", func() bool {
		var ok bool
		v, ok = h.order("SO-1")
		return ok && v.Record.State.Events == 2
	})
	s := v.Record.State
	if !s.Known || s.Warehouse != "DAL" || s.Lines != 3 || s.Milestone != features.MilestoneReleased {
		t.Errorf("state = %+v, want known DAL order with 3 lines at pick_released", s)
	}
	if v.Timeline != 2 {
		t.Errorf("timeline has %d events, want 2", v.Timeline)
	}
	if v.Record.Risk == nil || *v.Record.Risk < 0 || *v.Record.Risk > 1 {
		t.Fatalf("risk = %v, want a probability", v.Record.Risk)
	}
	if v.Record.Degraded || v.Record.Model == nil || v.Record.Model.Name != "cutoff_risk" {
		t.Errorf("scored by %+v degraded=%v, want cutoff_risk, not degraded", v.Record.Model, v.Record.Degraded)
	}
	if st := h.drained(); st.EventsApplied != 2 || st.OpenOrders != 1 {
		t.Errorf("stats = %+v, want 2 events applied and 1 open order", st)
	}
	if got := metricSum(t, h.reg, "orderwatch_events_total", "type", "order.created", "result", "applied"); got != 1 {
		t.Errorf("orderwatch_events_total{order.created,applied} = %v, want 1", got)
	}
}

func TestBadInputGoesToDLQWithReason(t *testing.T) {
	h := newHarness(t, true)
	now := time.Now()
	cases := []struct {
		name, subject string
		data          []byte
		reason        string
	}{
		{"not json", "orders.order.created", []byte("{not json"), features.ReasonBadJSON},
		{"unknown type", "orders.order.teleported", event("b-2", "order.teleported", "SO-9", now, `{}`), features.ReasonUnknownType},
		{"missing order id", "orders.pick.confirmed", event("b-3", "pick.confirmed", "", now, `{}`), features.ReasonMissingOrderID},
		{"wrong schema", "orders.note.added", []byte(`{"id":"b-4","type":"note.added","order_id":"SO-9","occurred_at":"2026-05-21T14:03:11Z","schema":7,"data":{}}`), features.ReasonWrongSchema},
		{"missing cutoff", "orders.order.created", event("b-5", "order.created", "SO-9", now, `{"warehouse":"DAL"}`), features.ReasonMissingField},
		{"invalid utf8", "orders.note.added", []byte("{\"id\":\"b-6\",\"text\":\"\xff\xfe\"}"), features.ReasonInvalidUTF8},
		{"absurd time", "orders.note.added", []byte(`{"id":"b-7","type":"note.added","order_id":"SO-9","occurred_at":"1970-01-01T00:00:00Z","schema":1,"data":{}}`), features.ReasonAbsurdTime},
		{"oversize", "orders.note.added", event("b-8", "note.added", "SO-9", now, fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", features.MaxEventBytes))), features.ReasonOversize},
		{"order event without its order in the subject", "orders.note.added", event("b-9", "note.added", "SO-9", now, `{}`), features.ReasonUnpartitioned},
		{"another order in the subject", features.Subject("note.added", "SO-8"), event("b-10", "note.added", "SO-9", now, `{}`), features.ReasonSubjectMismatch},
	}
	for i, c := range cases {
		h.publish(c.subject, fmt.Sprintf("bad-%d", i), c.data)
	}
	// The pipeline keeps going after poison.
	h.publish(features.Subject("order.created", "SO-2"), "good-1", created("good-1", "SO-2", now, now.Add(3*time.Hour)))

	st := h.drained()
	if st.DeadLettered != int64(len(cases)) || st.EventsApplied != 1 {
		t.Fatalf("stats = %+v, want %d dead-lettered and 1 applied", st, len(cases))
	}
	if _, ok := h.order("SO-2"); !ok {
		t.Error("the good event after the poison was not applied")
	}

	cons, err := h.js.OrderedConsumer(context.Background(), pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(cases), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Partitions are read apart: the dead letters come in any order; each
	// names the message it stands for.
	var i, seen int
	for m := range batch.Messages() {
		var c = cases[0]
		if _, err := fmt.Sscanf(m.Headers().Get(pipeline.HeaderOriginalMsgID), "bad-%d", &i); err != nil || i < 0 || i >= len(cases) {
			t.Errorf("a dead letter of %q, not one of the cases", m.Headers().Get(pipeline.HeaderOriginalMsgID))
			continue
		}
		c = cases[i]
		t.Run(c.name, func(t *testing.T) {
			if got := m.Headers().Get(pipeline.HeaderReason); got != c.reason {
				t.Errorf("reason header = %q, want %q", got, c.reason)
			}
			if m.Subject() != "orderwatch.dlq."+c.reason {
				t.Errorf("subject = %q, want orderwatch.dlq.%s", m.Subject(), c.reason)
			}
			if string(m.Data()) != string(c.data) {
				t.Error("the original bytes were not kept")
			}
			if got := m.Headers().Get(pipeline.HeaderOriginalSubject); got != storedSubject(c.subject) {
				t.Errorf("original subject header = %q, want %q", got, storedSubject(c.subject))
			}
			if m.Headers().Get(pipeline.HeaderDetail) == "" {
				t.Error("no detail header")
			}
			if got := metricSum(t, h.reg, "orderwatch_dlq_total", "reason", c.reason); got < 1 {
				t.Errorf("orderwatch_dlq_total{reason=%q} = %v, want >= 1", c.reason, got)
			}
		})
		seen++
	}
	if seen != len(cases) {
		t.Errorf("ORDERS_DLQ holds %d messages, want %d", seen, len(cases))
	}
}

func TestDuplicateEventIDAppliedOnce(t *testing.T) {
	h := newHarness(t, true)
	now := time.Now()
	ev := created("e-dup", "SO-3", now, now.Add(5*time.Hour))
	// Distinct Nats-Msg-Ids get past JetStream's dedupe window, as a replayed
	// producer beyond two minutes would; our own event-id check must catch it.
	h.publish(features.Subject("order.created", "SO-3"), "m-1", ev)
	h.publish(features.Subject("order.created", "SO-3"), "m-2", ev)
	h.publish(features.Subject("note.added", "SO-3"), "m-3", event("e-note", "note.added", "SO-3", now, `{"text":"call before delivery"}`))
	st := h.drained()
	if st.EventsApplied != 2 || st.Duplicates != 1 {
		t.Errorf("stats = %+v, want 2 applied, 1 duplicate", st)
	}
	v, _ := h.order("SO-3")
	if v.Record.State.Events != 2 || v.Timeline != 2 {
		t.Errorf("order has %d events and %d timeline entries, want 2 and 2", v.Record.State.Events, v.Timeline)
	}
}

func TestEventBeforeCreatedIsKept(t *testing.T) {
	h := newHarness(t, true)
	now := time.Now()
	h.publish(features.Subject("credit.hold", "SO-4"), "e-h", event("e-h", "credit.hold", "SO-4", now, `{"reason":"over_limit"}`))
	h.drained()
	v, ok := h.order("SO-4")
	if !ok || !v.Record.State.OnCreditHold() || v.Record.State.Known {
		t.Fatalf("early credit.hold: state %+v found=%v, want kept as unknown order on hold", v.Record.State, ok)
	}
	h.publish(features.Subject("order.created", "SO-4"), "e-c", created("e-c", "SO-4", now.Add(-time.Minute), now.Add(2*time.Hour)))
	h.drained()
	v, _ = h.order("SO-4")
	if !v.Record.State.Known || !v.Record.State.OnCreditHold() || v.Record.Risk == nil {
		t.Errorf("after order.created: %+v, want a known, scored order still on hold", v.Record)
	}
}

func TestRiskyOrderDecidesAndPublishesCommandOnce(t *testing.T) {
	for _, withModel := range []bool{true, false} {
		t.Run(fmt.Sprintf("model=%v", withModel), func(t *testing.T) {
			// The credit hold arrives before the order.created: the order is first
			// scored with its hold. Created first, the order alone (20 minutes
			// from its cutoff, still at created) met the rule at some hours of the
			// day, and the decision came before the hold. The clock is fixed, as
			// the model sees the hour and the weekday; this scenario passes at
			// every hour.
			now := time.Date(2026, 11, 18, 15, 7, 0, 0, time.UTC)
			// One message per batch: an order is decided on its latest state
			// in a batch, so which events share the batch that first crosses
			// the threshold would decide the reasons (three of them in one
			// batch put the credit hold fourth, a race seen under -race).
			h := newHarness(t, withModel, func(o *pipeline.Options) {
				o.Clock = func() time.Time { return now }
				o.BatchSize = 1
			})
			h.publish(features.Subject("credit.hold", "SO-5"), "r-2", event("r-2", "credit.hold", "SO-5", now.Add(-2*time.Hour), `{"reason":"over_limit"}`))
			h.publish(features.Subject("order.created", "SO-5"), "r-1", created("r-1", "SO-5", now.Add(-3*time.Hour), now.Add(20*time.Minute)))
			h.publish(features.Subject("allocation.short", "SO-5"), "r-3", event("r-3", "allocation.short", "SO-5", now.Add(-time.Hour), `{"short_units":4}`))
			h.publish(features.Subject("integration.error", "SO-5"), "r-4", event("r-4", "integration.error", "SO-5", now.Add(-time.Hour), `{"system":"edi","text":"855 map fail"}`))
			h.drained()

			var v orderView
			waitFor(t, "the notify command published", func() bool {
				v, _ = h.order("SO-5")
				for i, d := range v.Decisions {
					if d.Action == actions.ActionNotifyCS && v.Outcomes[i] != nil {
						return true
					}
				}
				return false
			})
			byRule := map[string]actions.Decision{}
			for _, d := range v.Decisions {
				if _, dup := byRule[d.RuleID]; dup {
					t.Errorf("rule %s decided twice in one episode", d.RuleID)
				}
				byRule[d.RuleID] = d
				if d.Degraded == withModel {
					t.Errorf("decision %s degraded=%v with model=%v", d.ID, d.Degraded, withModel)
				}
			}
			notify := byRule["high-risk-notify-cs"]
			if notify.Mode != actions.ModeAuto || notify.IdempotencyKey == "" || notify.Features["on_credit_hold"] != 1 {
				t.Errorf("notify decision = %+v, want auto with an idempotency key and its features", notify)
			}
			if !slices.ContainsFunc(notify.Reasons, func(r string) bool { return strings.HasPrefix(r, "credit hold") }) {
				t.Errorf("notify reasons = %q, want the credit hold among the top drivers", notify.Reasons)
			}
			if d, ok := byRule["credit-hold-near-cutoff"]; !ok || d.Status != actions.StatusPendingApproval {
				t.Errorf("credit hold near cutoff: %+v, want a decision pending approval", d)
			}

			s, err := h.js.Stream(context.Background(), pipeline.StreamActions)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := s.GetLastMsgForSubject(context.Background(), actions.Subject(actions.ActionNotifyCS))
			if err != nil {
				t.Fatal(err)
			}
			if got := msg.Header.Get(jetstream.MsgIDHeader); got != notify.IdempotencyKey {
				t.Errorf("command Nats-Msg-Id = %q, want the idempotency key %q", got, notify.IdempotencyKey)
			}
			info, _ := s.Info(context.Background())
			if info.State.Msgs != 1 {
				t.Errorf("ACTIONS holds %d commands, want 1 (approval and shadow decisions do not execute)", info.State.Msgs)
			}
			for name, want := range map[string]float64{"orderwatch_orders_at_risk": 1, "orderwatch_open_orders_by_warehouse": 1} {
				if got := metricSum(t, h.reg, name, "warehouse", "DAL"); got != want {
					t.Errorf("%s{warehouse=DAL} = %v, want %v", name, got, want)
				}
			}
			if st := h.stats(); st.ActionsPublished != 1 || st.Decisions != int64(len(v.Decisions)) {
				t.Errorf("stats = %+v, want 1 action published and %d decisions", st, len(v.Decisions))
			}
		})
	}
}

func TestRestartKeepsStateAndCountsOnce(t *testing.T) {
	// Restarting on the same data dir must neither lose nor re-apply anything:
	// the durable consumer resumes after its ack floor.
	dir := t.TempDir()
	start := func() (*harness, func()) {
		// A reduced harness on a fixed dir: pipeline only, fallback scorer.
		ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, _ := nats.Connect(ns.ClientURL())
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(store.Options{Dir: dir + "/badger"})
		if err != nil {
			t.Fatal(err)
		}
		policy, _ := actions.LoadPolicy("")
		p, err := pipeline.New(pipeline.Options{JetStream: js, Store: st, Policy: actions.NewLive(policy)})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		h := &harness{t: t, js: js, nc: nc, st: st}
		return h, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			nc.Close()
			ns.Shutdown()
			ns.WaitForShutdown()
			st.Close()
		}
	}
	now := time.Now()
	h, stop := start()
	for i := range 50 {
		id := fmt.Sprintf("e-%d", i)
		h.publish(features.Subject("order.created", fmt.Sprintf("SO-%d", i%10)), id, created(id, fmt.Sprintf("SO-%d", i%10), now, now.Add(4*time.Hour)))
	}
	first := h.drained()
	stop()

	h, stop = start()
	defer stop()
	h.publish(features.Subject("order.created", "SO-50"), "e-50", created("e-50", "SO-50", now, now.Add(4*time.Hour)))
	st := h.drained()
	if first.EventsApplied != 50 || st.EventsApplied != 51 || st.Duplicates != 0 || st.OpenOrders != 11 {
		t.Errorf("stats before restart %+v, after %+v: want 50 then 51 applied, no duplicates, 11 open orders", first, st)
	}
	if v, _ := h.order("SO-0"); v.Record.State.Events != 5 || v.Timeline != 5 {
		t.Errorf("SO-0 has %d events, %d in its timeline after restart, want 5 and 5", v.Record.State.Events, v.Timeline)
	}
}

func TestTimerRescoresWithoutEvents(t *testing.T) {
	var mu sync.Mutex
	var rows []pipeline.Row
	h := newHarness(t, true, func(o *pipeline.Options) {
		o.OnRow = func(r *pipeline.Row) {
			mu.Lock()
			rows = append(rows, *r)
			mu.Unlock()
		}
	})
	now := time.Now()
	// The first checkpoint, about 4 h before the cutoff (spread by order), falls a
	// second from now.
	ref := now.Add(24 * time.Hour)
	first, _ := process.NextCheckpoint("SO-T", ref, ref.Add(-5*time.Hour))
	offset := ref.Sub(first)
	h.publish(features.Subject("order.created", "SO-T"), "t-1", created("t-1", "SO-T", now, now.Add(offset+time.Second)))
	waitFor(t, "a timer row for SO-T", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rows {
			if r.OrderID == "SO-T" && r.Trigger == process.TriggerTimer {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	if rows[0].Trigger != process.TriggerEvent || rows[0].EventID != "t-1" {
		t.Errorf("first row = %+v, want the order.created event", rows[0])
	}
	timer := rows[len(rows)-1]
	if got, want := float64(timer.Vector[features.FMinutesToCutoff]), offset.Minutes(); got > want+0.01 || got < want-0.01 {
		t.Errorf("timer row minutes_to_cutoff = %v, want %.2f (scored at its checkpoint)", got, want)
	}
	mu.Unlock()
	// Rows are handed out before the commit, metrics counted after it.
	waitFor(t, "orderwatch_rescores_total >= 1", func() bool {
		return metricSum(t, h.reg, "orderwatch_rescores_total") >= 1
	})
	mu.Lock()
	v, _ := h.order("SO-T")
	if v.Record.State.Events != 1 {
		t.Errorf("the timer changed the order's events: %d", v.Record.State.Events)
	}
}

// TestClosedOrdersExpire: a closed order whose deadline clocks have all
// stopped, and an orphan, expire after the retention; an open order stays.
// (A shipped order with a clock still running is kept: process's
// TestShippedOrderWithClocksIsKept.)
func TestClosedOrdersExpire(t *testing.T) {
	h := newHarness(t, true, func(o *pipeline.Options) { o.Retention = time.Second })
	now := time.Now()
	h.publish(features.Subject("order.created", "SO-X"), "x-1", created("x-1", "SO-X", now, now.Add(3*time.Hour)))
	h.publish(features.Subject("order.created", "SO-OPEN"), "x-2", created("x-2", "SO-OPEN", now, now.Add(3*time.Hour)))
	h.publish(features.Subject("shipment.confirmed", "SO-X"), "x-3", event("x-3", "shipment.confirmed", "SO-X", now.Add(time.Minute), `{}`))
	// Invoiced: the shipped order's last deadline clock (shipped-not-invoiced,
	// watched until invoice.created) stops, and with it what kept its record.
	h.publish(features.Subject("invoice.created", "SO-X"), "x-5", event("x-5", "invoice.created", "SO-X", now.Add(2*time.Minute), `{}`))
	h.publish(features.Subject("note.added", "SO-ORPHAN"), "x-4", event("x-4", "note.added", "SO-ORPHAN", now, `{"text":"no order yet"}`))
	st := h.drained()
	if st.OpenOrders != 1 {
		t.Errorf("open orders = %d, want 1", st.OpenOrders)
	}
	time.Sleep(2100 * time.Millisecond)
	for id, want := range map[string]bool{"SO-X": false, "SO-ORPHAN": false, "SO-OPEN": true} {
		if _, ok := h.order(id); ok != want {
			t.Errorf("%s stored after its retention: %v, want %v", id, ok, want)
		}
	}
}

// storedSubject is the subject ORDERS (DefaultPartitions) stores a message
// published to subj under: orders.<type>.<token> gets the token's partition.
func storedSubject(subj string) string {
	tokens := strings.Split(subj, ".")
	if len(tokens) != 4 {
		return subj
	}
	return fmt.Sprintf("orders.%d.%s", features.Partition(tokens[3], pipeline.DefaultPartitions), strings.Join(tokens[1:], "."))
}
