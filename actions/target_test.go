package actions_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
)

// target is a webhook receiver tests switch between up (200), down (503) and hung
// (the request is read, no answer comes until the test lets it go). It keeps the
// idempotency key of every request and of every one it answered 200.
type target struct {
	mu       sync.Mutex
	mode     string // "up", "down" or "hung"
	release  chan struct{}
	requests []string // idempotency keys of every request, in arrival order
	accepted []string // ... of the requests answered 200
}

func newTarget(mode string) *target { return &target{mode: mode, release: make(chan struct{})} }

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.ReadAll(r.Body)
	key := r.Header.Get(actions.HeaderIdempotency)
	tg.mu.Lock()
	tg.requests = append(tg.requests, key)
	mode, release := tg.mode, tg.release
	tg.mu.Unlock()
	switch mode {
	case "down":
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	case "hung":
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
	}
	tg.mu.Lock()
	tg.accepted = append(tg.accepted, key)
	tg.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// set switches the mode; leaving "hung" lets the hung requests answer 200.
func (tg *target) set(mode string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.mode == "hung" && mode != "hung" {
		close(tg.release)
		tg.release = make(chan struct{})
	}
	tg.mode = mode
}

func (tg *target) counts() (requests int, accepted []string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return len(tg.requests), slices.Clone(tg.accepted)
}

// twoTargetsPolicy fires notify_customer_service (webhook A) and flag_finance
// (webhook B) for every order; attempts of A time out after timeoutA.
func twoTargetsPolicy(urlA, urlB, timeoutA string) string {
	return fmt.Sprintf(`version: targets-1
settings: {max_outage: 1h}
webhooks:
  notify_customer_service: {url: %q, secret_env: HOOK_SECRET, backoff: 5ms, max_backoff: 40ms, timeout: %s}
  flag_finance: {url: %q, secret_env: HOOK_SECRET, backoff: 5ms, max_backoff: 40ms, timeout: 5s}
rules:
- {id: cs-every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
- {id: finance-every-order, action: flag_finance, mode: auto, when: {risk: {gte: 0}}}
`, urlA, timeoutA, urlB)
}

func hookEnv(k string) string {
	if k == "HOOK_SECRET" {
		return hookSecret
	}
	return ""
}

// keysOf returns the idempotency keys of the decisions of action over orders, in
// decision (outbox) order, once every order has one.
func keysOf(t *testing.T, d *daemon, action string, orders []string) ([]string, []actions.View) {
	t.Helper()
	var views []actions.View
	for _, o := range orders {
		dvs, err := d.st.FindDecisions(storeQuery(o))
		if err != nil {
			t.Fatal(err)
		}
		for _, dv := range dvs {
			v, err := actions.NewView(dv, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if v.Decision.Action == action {
				views = append(views, v)
			}
		}
	}
	slices.SortFunc(views, func(a, b actions.View) int {
		if a.Decision.ID < b.Decision.ID {
			return -1
		}
		return 1
	})
	keys := make([]string, len(views))
	for i, v := range views {
		keys[i] = v.Decision.IdempotencyKey
	}
	return keys, views
}

// publishOrders creates orders SO-2 to SO-n beside startWithOrder's SO-1, and
// waits for the decisions of both actions for each.
func publishOrders(t *testing.T, d *daemon, n int) []string {
	t.Helper()
	now := time.Now()
	orders := []string{"SO-1"}
	for i := 2; i <= n; i++ {
		o := fmt.Sprintf("SO-%d", i)
		orders = append(orders, o)
		if err := d.createOrder("e-"+o, o, now, now.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the decisions of every order", func() bool {
		a, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
		b, _ := keysOf(t, d, actions.ActionFlagFinance, orders)
		return len(a) == n && len(b) == n
	})
	return orders
}

// onceInOrder says what is wrong with accepted as the deliveries of keys: each
// exactly once, in keys' order.
func onceInOrder(accepted, keys []string) error {
	if !slices.Equal(accepted, keys) {
		return fmt.Errorf("accepted %v, want each of %v once, in that order", accepted, keys)
	}
	return nil
}

func targetState(d *daemon, name string) actions.TargetStatus { return statusOf(d.exec, name) }

// TestTargetDownThenBackLosesNothing is the must-show: webhook A is down
// (503) for five minutes, then back. Meanwhile B gets its deliveries; afterwards A
// gets every one of its deliveries exactly once, in order, and none is recorded
// failed. The clock is the executor's, moved by hand: five minutes of outage take
// milliseconds.
func TestTargetDownThenBackLosesNothing(t *testing.T) {
	a, b := newTarget("down"), newTarget("up")
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()
	t0 := time.Now()
	clock := &manualClock{t: t0}
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "5s"), getenv: hookEnv, clock: clock.Now})
	orders := publishOrders(t, d, 5)
	keysA, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
	keysB, _ := keysOf(t, d, actions.ActionFlagFinance, orders)

	// B is served while A is down; A is tried again and again meanwhile.
	waitFor(t, "B's deliveries while A is down", func() bool { _, got := b.counts(); return len(got) == len(keysB) })
	if _, got := b.counts(); onceInOrder(got, keysB) != nil {
		t.Errorf("B: %v", onceInOrder(got, keysB))
	}
	for minute := 1; minute <= 5; minute++ {
		before, _ := a.counts()
		waitFor(t, "A tried again", func() bool { n, _ := a.counts(); return n >= before+3 })
		clock.Set(t0.Add(time.Duration(minute) * time.Minute))
	}
	if s := targetState(d, "webhook:"+actions.ActionNotifyCS); s.State != actions.StateOpen && s.State != actions.StateHalfOpen {
		t.Errorf("A after 5 minutes down: %+v, want its circuit open", s)
	}
	if s := targetState(d, "webhook:"+actions.ActionFlagFinance); s.State != actions.StateClosed || s.Queued != 0 {
		t.Errorf("B: %+v, want closed with nothing queued", s)
	}

	a.set("up")
	waitFor(t, "A's deliveries after it came back", func() bool { _, got := a.counts(); return len(got) >= len(keysA) })
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show
	if _, got := a.counts(); onceInOrder(got, keysA) != nil {
		t.Errorf("A: %v", onceInOrder(got, keysA))
	}
	waitFor(t, "every outbox entry done", func() bool {
		_, views := keysOf(t, d, actions.ActionNotifyCS, orders)
		for _, v := range views {
			if len(v.Queued) > 0 {
				return false
			}
		}
		return true
	})
	_, views := keysOf(t, d, actions.ActionNotifyCS, orders)
	for _, v := range views {
		for _, o := range v.Outcomes {
			if o.Status == actions.OutcomeFailed {
				t.Errorf("decision %s: outcome %+v, want none failed", v.Decision.ID, o)
			}
		}
	}
	if s := targetState(d, "webhook:"+actions.ActionNotifyCS); s.State != actions.StateClosed || s.Queued != 0 || s.ConsecutiveFailures != 0 {
		t.Errorf("A after it came back: %+v, want closed, nothing queued", s)
	}
}

// TestHungTargetDelaysOnlyItself: webhook A accepts connections and never answers
// (its attempts may take a minute); B and the JetStream commands get every
// delivery meanwhile. Once A answers, each of its deliveries arrives once, in
// order.
func TestHungTargetDelaysOnlyItself(t *testing.T) {
	a, b := newTarget("hung"), newTarget("up")
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvB.Close()
	defer srvA.Close()
	defer a.set("up") // let the hung handlers go before the server closes
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "1m"), getenv: hookEnv})
	orders := publishOrders(t, d, 4)
	keysA, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
	keysB, _ := keysOf(t, d, actions.ActionFlagFinance, orders)

	waitFor(t, "B's deliveries while A hangs", func() bool { _, got := b.counts(); return len(got) == len(keysB) })
	if _, got := b.counts(); onceInOrder(got, keysB) != nil {
		t.Errorf("B: %v", onceInOrder(got, keysB))
	}
	for _, action := range []string{actions.ActionNotifyCS, actions.ActionFlagFinance} {
		waitFor(t, "every "+action+" command in ACTIONS", func() bool {
			return len(d.actionsMsgs(t, actions.Subject(action))) == len(orders)
		})
	}
	if n, got := a.counts(); n != 1 || len(got) != 0 {
		t.Fatalf("A: %d requests, %d answered; want its first delivery hanging, nothing else sent", n, len(got))
	}
	a.set("up")
	waitFor(t, "A's deliveries once it answers", func() bool { _, got := a.counts(); return len(got) >= len(keysA) })
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show
	if _, got := a.counts(); onceInOrder(got, keysA) != nil {
		t.Errorf("A: %v", onceInOrder(got, keysA))
	}
}

// TestHungTargetAttemptsTimeOut: a hung webhook's attempts end at its timeout and
// count as failures: its circuit opens, its first delivery is tried again (the
// others wait behind it, in order), and nothing is given up.
func TestHungTargetAttemptsTimeOut(t *testing.T) {
	a, b := newTarget("hung"), newTarget("up")
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvB.Close()
	defer srvA.Close()
	defer a.set("up")
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "100ms"), getenv: hookEnv})
	orders := publishOrders(t, d, 3)
	keysA, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
	name := "webhook:" + actions.ActionNotifyCS
	waitFor(t, "A's circuit open", func() bool {
		s := targetState(d, name)
		return s.State == actions.StateOpen && s.Queued == len(keysA) && s.LastError != ""
	})
	a.mu.Lock()
	requests := slices.Clone(a.requests)
	a.mu.Unlock()
	if len(requests) < 2 || slices.ContainsFunc(requests, func(k string) bool { return k != keysA[0] }) {
		t.Errorf("A got %v, want the first delivery %s tried again and again, the others waiting", requests, keysA[0])
	}
	a.set("up")
	waitFor(t, "A's deliveries once it answers", func() bool { _, got := a.counts(); return len(got) >= len(keysA) })
	time.Sleep(50 * time.Millisecond)
	_, got := a.counts()
	if err := onceInOrder(slices.Compact(got), keysA); err != nil {
		t.Errorf("A (a released hung attempt may repeat its key): %v", err)
	}
}

// TestExecutorSeriesStartAtZero: the executor's labelled series with known label
// values exist on /metrics before anything happened, so alerts and dashboards see
// 0 rather than no data.
func TestExecutorSeriesStartAtZero(t *testing.T) {
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy("http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "1s"), getenv: hookEnv})
	reg := prometheus.NewPedanticRegistry()
	_, err := actions.NewExecutor(actions.ExecutorOptions{Store: d.st, Publish: func(context.Context, string, string, []byte) error { return nil },
		Policy: d.live, Getenv: hookEnv, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"orderwatch_executor_failures_total":  len(actions.Actions),
		"orderwatch_actions_published_total":  len(actions.Actions),
		"orderwatch_actions_duplicate_total":  len(actions.Actions),
		"orderwatch_webhook_attempts_total":   2 * len(actions.Actions),
		"orderwatch_webhook_failures_total":   len(actions.Actions),
		"orderwatch_target_state":             len(actions.Actions) + 2,
		"orderwatch_target_deliveries_queued": len(actions.Actions) + 2,
	}
	for name, n := range want {
		if got := testutil.CollectAndCount(reg, name); got != n {
			t.Errorf("%s: %d series before anything happened, want %d", name, got, n)
		}
	}
}

// TestTargetDownLongerThanMaxOutage: a delivery fails for good only once it has
// waited for its failing target longer than settings.max_outage, and its record
// says why; the target's other deliveries follow, and nothing more is sent.
func TestTargetDownLongerThanMaxOutage(t *testing.T) {
	a, b := newTarget("down"), newTarget("up")
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()
	t0 := time.Now()
	clock := &manualClock{t: t0}
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "5s"), getenv: hookEnv, clock: clock.Now})
	orders := publishOrders(t, d, 3)
	name := "webhook:" + actions.ActionNotifyCS
	waitFor(t, "A's circuit open", func() bool { return targetState(d, name).State == actions.StateOpen })
	clock.Set(t0.Add(59 * time.Minute))
	before, _ := a.counts()
	waitFor(t, "A probed after 59 minutes", func() bool { n, _ := a.counts(); return n >= before+2 })
	if s := targetState(d, name); s.Queued != len(orders) {
		t.Fatalf("A after 59 minutes: %+v, want all %d deliveries still waiting", s, len(orders))
	}
	clock.Set(t0.Add(61 * time.Minute))
	waitFor(t, "A's deliveries failed", func() bool { return targetState(d, name).Queued == 0 })
	_, views := keysOf(t, d, actions.ActionNotifyCS, orders)
	for _, v := range views {
		var hook []actions.Outcome
		for _, o := range v.Outcomes {
			if o.Target == actions.TargetWebhook {
				hook = append(hook, o)
			}
		}
		if len(hook) != 1 || hook[0].Status != actions.OutcomeFailed || !strings.Contains(hook[0].Error, "settings.max_outage 1h0m0s") {
			t.Errorf("decision %s: webhook outcomes %+v, want one failed naming max_outage", v.Decision.ID, hook)
		}
		if last := v.Attempts[len(v.Attempts)-1]; last.OK || !strings.Contains(last.Error, "max_outage") {
			t.Errorf("decision %s: last attempt %+v, want it to say why it failed", v.Decision.ID, last)
		}
	}
	if s := targetState(d, name); s.State != actions.StateOpen {
		t.Errorf("A: %+v, want its circuit still open: it never answered", s)
	}
	n, _ := a.counts()
	a.set("up")
	time.Sleep(100 * time.Millisecond)
	if m, got := a.counts(); m != n || len(got) != 0 {
		t.Errorf("A got %d more requests after its deliveries failed, want none", m-n)
	}
	if _, got := b.counts(); len(got) != len(orders) {
		t.Errorf("B got %d deliveries, want %d", len(got), len(orders))
	}
}

// TestSubjectTargetDownDelaysOnlyItself: while publishes to one subject fail, the
// other subject and the webhooks get their deliveries; the failing subject's
// circuit opens, and once publishes go through its commands are in ACTIONS once
// each, in decision order.
func TestSubjectTargetDownDelaysOnlyItself(t *testing.T) {
	a, b := newTarget("up"), newTarget("up")
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()
	down := actions.Subject(actions.ActionNotifyCS)
	var failing atomic.Bool // publishes to down fail
	failing.Store(true)
	wrap := func(pub actions.PublishFunc) actions.PublishFunc {
		return func(ctx context.Context, subject, msgID string, data []byte) error {
			if subject == down && failing.Load() {
				return fmt.Errorf("test: %s refuses publishes", subject)
			}
			return pub(ctx, subject, msgID, data)
		}
	}
	d := startWithOrder(t, daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "5s"), getenv: hookEnv, wrap: wrap})
	orders := publishOrders(t, d, 4)
	keysCS, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
	other := actions.Subject(actions.ActionFlagFinance)
	waitFor(t, "the other subject's commands", func() bool { return len(d.actionsMsgs(t, other)) == len(orders) })
	waitFor(t, "both webhooks' deliveries", func() bool {
		_, ga := a.counts()
		_, gb := b.counts()
		return len(ga) == len(orders) && len(gb) == len(orders)
	})
	waitFor(t, down+" open", func() bool { s := targetState(d, down); return s.State == actions.StateOpen && s.Queued == len(orders) })
	if n := len(d.actionsMsgs(t, down)); n != 0 {
		t.Fatalf("%d commands on %s while it refuses publishes", n, down)
	}
	failing.Store(false)
	waitFor(t, down+"'s commands", func() bool { return len(d.actionsMsgs(t, down)) >= len(orders) })
	msgs := d.actionsMsgs(t, down)
	var got []string
	for _, m := range msgs {
		got = append(got, m.Header.Get("Nats-Msg-Id"))
	}
	if err := onceInOrder(got, keysCS); err != nil {
		t.Errorf("%s: %v", down, err)
	}
	waitFor(t, down+" closed", func() bool { s := targetState(d, down); return s.State == actions.StateClosed && s.Queued == 0 })
}
