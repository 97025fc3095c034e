package actions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// gate holds the first delivery of each kind (the webhook's first request, the
// first JetStream publish) until the test opens it, or until the attempt's
// context is done: a target slow to answer while orderwatch stops.
type gate struct {
	open     chan struct{}
	hookIn   chan struct{} // closed when the first request arrived
	pubIn    chan struct{} // closed when the first publish began
	hookOnce sync.Once
	pubOnce  sync.Once

	mu       sync.Mutex
	requests []string // idempotency keys of every request
	accepted []string // ... of the requests answered 200
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), hookIn: make(chan struct{}), pubIn: make(chan struct{})}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	key := r.Header.Get(actions.HeaderIdempotency)
	g.mu.Lock()
	g.requests = append(g.requests, key)
	first := len(g.requests) == 1
	g.mu.Unlock()
	if first {
		g.hookOnce.Do(func() { close(g.hookIn) })
		select {
		case <-g.open:
		case <-r.Context().Done():
			return // the client went away: nothing was delivered
		}
	}
	g.mu.Lock()
	g.accepted = append(g.accepted, key)
	g.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// publish wraps pub: the first publish waits for the gate, or fails as
// JetStream's does when its context ends before the stream's ack.
func (g *gate) publish(pub actions.PublishFunc) actions.PublishFunc {
	var calls sync.Mutex
	n := 0
	return func(ctx context.Context, subject, msgID string, data []byte) error {
		calls.Lock()
		n++
		first := n == 1
		calls.Unlock()
		if first {
			g.pubOnce.Do(func() { close(g.pubIn) })
			select {
			case <-g.open:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return pub(ctx, subject, msgID, data)
	}
}

func (g *gate) accepts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.accepted)
}

const shutdownTestPolicy = `version: shutdown-1
settings: {max_outage: 1h}
webhooks:
  notify_customer_service: {url: %q, secret_env: HOOK_SECRET, backoff: 5ms, max_backoff: 40ms, timeout: 1m}
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`

// queueDecisions records a queued notify_customer_service decision for each of
// orders, as the pipeline would: each puts a JetStream command and a webhook
// delivery into the outbox. It returns their idempotency keys, in outbox order.
func queueDecisions(t *testing.T, st *store.Store, p *actions.Policy, orders ...string) []string {
	t.Helper()
	var keys []string
	at := time.Now().UTC()
	for _, o := range orders {
		b := st.NewBatch()
		in := &actions.Input{OrderID: o, At: at, Risk: 0.5, Features: &features.Vector{}, State: &features.OrderState{OrderID: o}}
		ds, err := p.Decide(b, in, actions.Memory{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ds {
			if !ds[i].Queued() {
				t.Fatalf("decision %+v, want it queued", ds[i])
			}
			if err := p.Record(b, &ds[i]); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, ds[i].IdempotencyKey)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		b.Discard()
		at = at.Add(time.Millisecond) // decision ids, and so the outbox, in order
	}
	if len(keys) != len(orders) {
		t.Fatalf("%d decisions for %d orders, want one each", len(keys), len(orders))
	}
	return keys
}

// streamMsgIDs returns the Nats-Msg-Id of each message in ACTIONS on subject.
func streamMsgIDs(t *testing.T, js jetstream.JetStream, subject string) []string {
	t.Helper()
	s, err := js.Stream(context.Background(), pipeline.StreamActions)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			ids = append(ids, m.Header.Get("Nats-Msg-Id"))
		}
	}
	return ids
}

// sumOf adds up the series of the metric name in reg whose labels include with.
func sumOf(t *testing.T, reg *prometheus.Registry, name string, with map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				if v, ok := with[l.GetName()]; ok && v == l.GetValue() {
					matched++
				}
			}
			if matched == len(with) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// failedAttempts lists the failed attempts recorded for the decisions of orders.
func failedAttempts(t *testing.T, st *store.Store, orders []string) []string {
	t.Helper()
	var failed []string
	for _, o := range orders {
		dvs, err := st.FindDecisions(storeQuery(o))
		if err != nil {
			t.Fatal(err)
		}
		for _, dv := range dvs {
			for _, raw := range dv.Attempts {
				var a actions.Attempt
				if err := json.Unmarshal(raw, &a); err != nil {
					t.Fatal(err)
				}
				if !a.OK {
					failed = append(failed, fmt.Sprintf("%s attempt %d: %s", a.Entry, a.N, a.Error))
				}
			}
		}
	}
	return failed
}

// TestShutdownCutsNoDelivery: Run's ctx is cancelled while a webhook delivery
// and a JetStream publish are in flight, with a second delivery of each queued
// behind them. Our own shutdown is not a failure of the targets: no failed
// attempt is recorded, no failure is counted and no circuit moves, whether the
// targets answer within the final pass (which then delivers everything) or only
// after it is over (everything stays in the outbox, untouched). Each delivery
// arrives exactly once: in the final pass, or when the executor runs again.
func TestShutdownCutsNoDelivery(t *testing.T) {
	for _, c := range []struct {
		name string
		// answer: the targets answer once Run's ctx is done; else not before
		// the end of the final pass.
		answer bool
		grace  time.Duration
	}{
		{name: "answered within the final pass", answer: true, grace: 30 * time.Second},
		{name: "cut by the end of the final pass", answer: false, grace: 200 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
			if _, err := pipeline.EnsureStreams(context.Background(), js, pipeline.StreamOptions{}); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := newGate()
			srv := httptest.NewServer(g)
			defer srv.Close()
			defer func() {
				select {
				case <-g.open:
				default:
					close(g.open) // let a held request go before the server closes
				}
			}()
			policy, err := actions.ParsePolicy(fmt.Appendf(nil, shutdownTestPolicy, srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			orders := []string{"SO-1", "SO-2"}
			keys := queueDecisions(t, st, policy, orders...)
			var publish actions.PublishFunc = func(ctx context.Context, subject, msgID string, data []byte) error {
				_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
				return err
			}
			subject := actions.Subject(actions.ActionNotifyCS)

			// The first run: stopped while both first deliveries are in flight.
			reg := prometheus.NewRegistry()
			exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Publish: g.publish(publish), Policy: actions.NewLive(policy),
				Getenv: hookEnv, Interval: 20 * time.Millisecond, ShutdownGrace: c.grace, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() { ran <- exec.Run(ctx) }()
			for what, in := range map[string]chan struct{}{"the first webhook request": g.hookIn, "the first publish": g.pubIn} {
				select {
				case <-in:
				case <-time.After(15 * time.Second):
					cancel()
					t.Fatalf("timed out after 15s waiting for %s", what)
				}
			}
			cancel()
			if c.answer {
				close(g.open)
			}
			select {
			case err := <-ran:
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("Run did not return within a minute of its ctx done")
			}

			if failed := failedAttempts(t, st, orders); len(failed) > 0 {
				t.Errorf("failed attempts recorded by the shutdown: %v", failed)
			}
			for name, with := range map[string]map[string]string{
				"orderwatch_executor_failures_total":        nil,
				"orderwatch_webhook_attempts_total":         {"result": "error"},
				"orderwatch_webhook_failures_total":         nil,
				"orderwatch_target_deliveries_failed_total": nil,
			} {
				if n := sumOf(t, reg, name, with); n != 0 {
					t.Errorf("%s%v = %v after the shutdown, want 0", name, with, n)
				}
			}
			for _, s := range exec.Targets() {
				if s.State != actions.StateClosed || s.ConsecutiveFailures != 0 || s.LastError != "" {
					t.Errorf("target after the shutdown: %+v, want closed with no failure", s)
				}
			}
			left, err := st.OutboxPage("", 100)
			if err != nil {
				t.Fatal(err)
			}
			if c.answer && len(left) != 0 {
				t.Errorf("%d entries left in the outbox, want every one delivered by the final pass", len(left))
			}
			if !c.answer && len(left) != 2*len(orders) {
				t.Errorf("%d entries left in the outbox, want all %d: the final pass was over before the targets answered", len(left), 2*len(orders))
			}
			for _, en := range left {
				if n, err := st.Attempts(en.DecisionID); err != nil || n != 0 {
					t.Errorf("%s left with %d attempts recorded (%v), want it untouched", en.DecisionID, n, err)
				}
			}

			// The next run delivers what is left, and nothing twice. (A request
			// cut by the shutdown was never answered: the gate stays shut, only
			// the first request waits for it.)
			exec, err = actions.NewExecutor(actions.ExecutorOptions{Store: st, Publish: publish, Policy: actions.NewLive(policy),
				Getenv: hookEnv, Interval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel = context.WithCancel(context.Background())
			go func() { ran <- exec.Run(ctx) }()
			waitFor(t, "an empty outbox", func() bool {
				left, err := st.OutboxPage("", 100)
				return err == nil && len(left) == 0
			})
			cancel()
			if err := <-ran; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := g.accepts(); !slices.Equal(got, keys) {
				t.Errorf("webhook accepted %v, want each of %v once, in order", got, keys)
			}
			if got := streamMsgIDs(t, js, subject); !slices.Equal(got, keys) {
				t.Errorf("ACTIONS holds %v on %s, want each of %v once, in order", got, subject, keys)
			}
			if failed := failedAttempts(t, st, orders); len(failed) > 0 {
				t.Errorf("failed attempts recorded: %v", failed)
			}
		})
	}
}

// TestShutdownLeavesAFailingTargetAlone: at shutdown a webhook's circuit is open
// and its deliveries have waited longer than settings.max_outage. The last pass
// neither probes it nor records its deliveries failed: they stay in the outbox,
// for the next start to try. The JetStream commands, whose target answers, are
// delivered.
func TestShutdownLeavesAFailingTargetAlone(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	if _, err := pipeline.EnsureStreams(context.Background(), js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	down := newTarget("down")
	srv := httptest.NewServer(down)
	defer srv.Close()
	policy, err := actions.ParsePolicy(fmt.Appendf(nil, `version: shutdown-2
settings: {max_outage: 1h}
webhooks:
  notify_customer_service: {url: %q, secret_env: HOOK_SECRET, backoff: 5ms, max_backoff: 20ms, max_attempts: 2, timeout: 5s}
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := actions.OpenKillSwitch(st)
	if err != nil {
		t.Fatal(err)
	}
	policy.UseKillSwitch(ks)
	orders := []string{"SO-1", "SO-2"}
	keys := queueDecisions(t, st, policy, orders...)
	t0 := time.Now()
	clock := &manualClock{t: t0}
	reg := prometheus.NewRegistry()
	// No scan but those the test asks for (Wake) and the last one.
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Policy: actions.NewLive(policy), Getenv: hookEnv, Clock: clock.Now,
		Interval: time.Hour, Registerer: reg,
		Publish: func(ctx context.Context, subject, msgID string, data []byte) error {
			_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- exec.Run(ctx) }()
	exec.Wake()
	hook := "webhook:" + actions.ActionNotifyCS
	waitFor(t, hook+"'s circuit open", func() bool { return statusOf(exec, hook).State == actions.StateOpen })

	// The kill switch holds the outbox while the outage outlasts max_outage;
	// the worker goes idle, its probe overdue.
	if _, err := ks.Set(t.Context(), actions.KillState{On: true, By: "tester", Reason: "hold the outbox", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for prev := -1; ; time.Sleep(100 * time.Millisecond) {
		n, _ := down.counts()
		if n == prev {
			break
		}
		prev = n
	}
	before, _ := down.counts()
	clock.Set(t0.Add(2 * time.Hour))
	if _, err := ks.Set(t.Context(), actions.KillState{On: false, By: "tester", Reason: "release", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}

	if n, _ := down.counts(); n != before {
		t.Errorf("the failing webhook got %d requests in the last pass, want none", n-before)
	}
	if n := sumOf(t, reg, "orderwatch_target_deliveries_failed_total", nil); n != 0 {
		t.Errorf("orderwatch_target_deliveries_failed_total = %v after the shutdown, want 0", n)
	}
	left, err := st.OutboxPage("", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(orders) {
		t.Errorf("%d entries left in the outbox, want the %d webhook deliveries", len(left), len(orders))
	}
	for _, o := range orders {
		dvs, err := st.FindDecisions(storeQuery(o))
		if err != nil {
			t.Fatal(err)
		}
		for _, dv := range dvs {
			v, err := actions.NewView(dv, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range v.Outcomes {
				if out.Status != actions.OutcomePublished {
					t.Errorf("decision %s: outcome %+v, want only its JetStream command published", v.Decision.ID, out)
				}
			}
		}
	}
	if got := streamMsgIDs(t, js, actions.Subject(actions.ActionNotifyCS)); !slices.Equal(got, keys) {
		t.Errorf("ACTIONS holds %v, want each of %v once, in order", got, keys)
	}
}

// statusOf returns the status of e's target name.
func statusOf(e *actions.Executor, name string) actions.TargetStatus {
	for _, s := range e.Targets() {
		if s.Target == name {
			return s
		}
	}
	return actions.TargetStatus{}
}
