package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// PublishFunc publishes one command durably (a JetStream publish acknowledged by the
// stream), with msgID as its Nats-Msg-Id so a retry is deduplicated. It returns
// ErrDuplicate when the stream acknowledged the publish as a duplicate of an
// earlier one: done, but counted apart.
type PublishFunc func(ctx context.Context, subject, msgID string, data []byte) error

// ExecutorOptions configures an Executor.
type ExecutorOptions struct {
	Store   *store.Store // required
	Publish PublishFunc  // required
	// Policy gives the webhooks, the kill switches and settings.max_outage, read
	// as they are used. Nil means JetStream commands only, never held, and a
	// max_outage of DefaultMaxOutage.
	Policy *Live
	// Client posts webhooks; nil means a plain client (each attempt is bounded by
	// the webhook's timeout).
	Client *http.Client
	// Getenv reads webhook secrets; nil means os.Getenv.
	Getenv func(string) string
	// Clock gives attempt times and the waits measured against max_outage; nil
	// means time.Now. Back-offs between attempts are waited on the wall clock.
	Clock func() time.Time
	// Interval between outbox scans when nothing wakes the executor. Zero means 1s.
	Interval time.Duration
	// PublishTimeout bounds one JetStream publish. Zero means 10s.
	PublishTimeout time.Duration
	// ShutdownGrace bounds the final pass over the outbox once Run's ctx is
	// done. Zero means 5s.
	ShutdownGrace time.Duration
	// Owns reports whether this member owns an order's partition now; nil
	// means every order. A delivery of an order not owned is left in the
	// outbox: the order's owner makes it (its partition's governance moved
	// there), and this member forgets it when it drops the partition.
	Owns func(order string) bool
	// Changed is told the order of a delivery that finished (the governance
	// replica's Changed); nil means nobody.
	Changed    func(order string)
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Breaker settings of the JetStream subject targets (a webhook has its own, in
// the policy): attempts failed in a row that open the circuit, and the back-off
// before the next attempt, doubled per failure up to its ceiling.
const (
	natsOpenAfter  = 5
	natsBackoff    = 100 * time.Millisecond
	natsMaxBackoff = 30 * time.Second
)

// defaultShutdownGrace bounds the final outbox pass once Run's ctx is done.
const defaultShutdownGrace = 5 * time.Second

// Executor drains the outbox: it publishes each queued command to JetStream and
// posts the webhook deliveries, recording every attempt and the final outcome.
// Each target (a JetStream subject orderwatch.actions.<action>, or an action's
// webhook) has a worker of its own, which delivers the target's entries in outbox
// order, and a circuit breaker: when the target keeps failing, its deliveries wait
// (probed on a capped back-off) up to the policy's settings.max_outage, and a
// failing or hung target delays nobody else. Deliveries happen at least once and
// are deduplicated downstream by their idempotency key (Nats-Msg-Id,
// X-Orderwatch-Idempotency-Key), so the effect is once; an entry leaves the outbox
// only in the commit that records its outcome. While a kill switch is on it holds
// the outbox. Run must be called once; Wake and Targets may be called from any
// goroutine.
type Executor struct {
	opts ExecutorOptions
	wake chan struct{}
	log  *slog.Logger

	hooksMu sync.Mutex
	// The webhooks of hooksOf, by action.
	hooks   map[string]*hook
	hooksOf *Policy

	// Owned by Run's goroutine.
	held   bool               // a kill switch holds the outbox
	full   bool               // the store takes no writes: the outbox waits
	known  map[string]*target // the entries found in the outbox, and their target
	capped bool               // a delivery had no room for its target (maxTargets)

	disownMu sync.Mutex
	disowned []string // entries a target let go as their order is not owned here; guarded by disownMu

	targetsMu sync.Mutex
	targets   map[string]*target // by name

	sent, failed, hookAttempts, hookFailures, gaveUp *prometheus.CounterVec
	deduplicated                                     *prometheus.CounterVec
	targetState, targetQueued                        *prometheus.GaugeVec
	pending                                          prometheus.Gauge
}

// NewExecutor validates opts, resolves the webhook secrets and builds an executor.
func NewExecutor(opts ExecutorOptions) (*Executor, error) {
	if opts.Store == nil || opts.Publish == nil {
		return nil, fmt.Errorf("actions: ExecutorOptions.Store and .Publish are required")
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.PublishTimeout == 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = defaultShutdownGrace
	}
	if opts.Interval < 0 || opts.PublishTimeout < 0 || opts.ShutdownGrace < 0 {
		return nil, fmt.Errorf("actions: ExecutorOptions.Interval, .PublishTimeout and .ShutdownGrace must not be negative")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	e := &Executor{
		opts:    opts,
		wake:    make(chan struct{}, 1),
		log:     opts.Logger.With("component", "executor"),
		hooks:   map[string]*hook{},
		known:   map[string]*target{},
		targets: map[string]*target{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_actions_published_total",
			Help: "Action commands published to JetStream, by action; publishes it dropped as duplicates are orderwatch_actions_duplicate_total.",
		}, []string{"action"}),
		deduplicated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_actions_duplicate_total",
			Help: "Action commands published again that JetStream dropped as duplicates of an earlier publish (same Nats-Msg-Id, as after a takeover), by action; not counted as published.",
		}, []string{"action"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_executor_failures_total",
			Help: "Failed attempts to publish an action command to JetStream, by action (retried).",
		}, []string{"action"}),
		hookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_webhook_attempts_total",
			Help: "Webhook delivery attempts, by action and result (ok, error).",
		}, []string{"action", "result"}),
		hookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_webhook_failures_total",
			Help: "Webhook deliveries given up (refused by the receiver, webhook gone from the policy, or waited longer than settings.max_outage), by action.",
		}, []string{"action"}),
		gaveUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_target_deliveries_failed_total",
			Help: "Deliveries recorded failed for good, by target: refused, webhook gone from the policy, or waited longer than settings.max_outage.",
		}, []string{"target"}),
		targetState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_target_state",
			Help: "Circuit breaker of each delivery target: 0 closed, 1 open (deliveries wait), 2 half-open (a probe is in flight).",
		}, []string{"target"}),
		targetQueued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_target_deliveries_queued",
			Help: "Deliveries waiting for each target, the one in flight included.",
		}, []string{"target"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_outbox_depth",
			Help: "Deliveries in the outbox at the last scan.",
		}),
	}
	// Every series with known label values starts at 0, so that alerts and
	// dashboards see a value before the first event of its kind.
	for _, a := range Actions {
		e.sent.WithLabelValues(a)
		e.deduplicated.WithLabelValues(a)
		e.failed.WithLabelValues(a)
		e.hookAttempts.WithLabelValues(a, "ok")
		e.hookAttempts.WithLabelValues(a, "error")
		e.hookFailures.WithLabelValues(a)
		e.target(TargetNATS, a)
	}
	if opts.Policy != nil {
		if err := e.useHooks(opts.Policy.Policy()); err != nil {
			return nil, err
		}
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.sent, e.deduplicated, e.failed, e.hookAttempts, e.hookFailures, e.gaveUp, e.targetState, e.targetQueued, e.pending} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actions: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Wake asks the executor to scan the outbox now. It never blocks.
func (e *Executor) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Targets describes every delivery target, by name. It may be called from any
// goroutine.
func (e *Executor) Targets() []TargetStatus {
	maxOutage := Duration(e.maxOutage())
	e.targetsMu.Lock()
	all := make([]*target, 0, len(e.targets))
	for _, t := range e.targets {
		all = append(all, t)
	}
	e.targetsMu.Unlock()
	out := make([]TargetStatus, 0, len(all))
	for _, t := range all {
		s := t.status()
		s.MaxOutage = maxOutage
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b TargetStatus) int { return strings.Compare(a.Target, b.Target) })
	return out
}

// Run drains the outbox until ctx is done, then makes one last pass, bounded by
// ShutdownGrace, so commands of the last batch go out before shutdown. It
// returns once every worker has stopped.
//
// Our own shutdown is no failure of a target. The attempts run on a context of
// their own, not cancelled by ctx: one in flight when ctx is done finishes within
// the grace, and the last pass delivers what is queued behind it. An attempt still
// running when the grace is over is cut, and nothing of it is recorded or
// counted: its entry stays in the outbox as it was, for the next start. The last
// pass does not try a target that is failing (an open circuit, or a back-off
// after its last failure), nor record anything of it failed: its deliveries stay
// in the outbox as well.
func (e *Executor) Run(ctx context.Context) error {
	actx, stopAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAttempts()
	stopping := make(chan struct{})
	var wg sync.WaitGroup
	running := map[*target]bool{}
	spawn := func() {
		for _, t := range e.all() {
			if running[t] {
				continue
			}
			running[t] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.work(actx, t, ctx.Done(), stopping)
			}()
		}
	}
	spawn()
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			grace := time.AfterFunc(e.opts.ShutdownGrace, stopAttempts)
			defer grace.Stop()
			e.scan(actx)
			spawn()
			close(stopping)
			wg.Wait()
			e.logLeft(actx.Err() != nil)
			return nil
		case <-e.wake:
		case <-tick.C:
		}
		e.scan(ctx)
		spawn()
	}
}

// logLeft says what the last pass left in the outbox for the next start, once
// every worker has stopped, and why: targets failing, the outbox held (kill
// switch, store taking no writes), or the grace over (graceOver).
func (e *Executor) logLeft(graceOver bool) {
	left, failing := 0, 0
	for _, t := range e.all() {
		t.mu.Lock()
		n := len(t.queue)
		if t.inflight != nil {
			n++
		}
		if n > 0 && t.failures > 0 {
			failing++
		}
		left += n
		t.mu.Unlock()
	}
	if left == 0 {
		e.log.Info("final outbox pass over", "left", 0)
		return
	}
	e.log.Warn("final outbox pass over: deliveries left in the outbox for the next start", "left", left,
		"failing_targets", failing, "held", e.held || e.full, "grace_over", graceOver, "grace", e.opts.ShutdownGrace)
}

// all returns the targets.
func (e *Executor) all() []*target {
	e.targetsMu.Lock()
	defer e.targetsMu.Unlock()
	out := make([]*target, 0, len(e.targets))
	for _, t := range e.targets {
		out = append(out, t)
	}
	return out
}

// target returns the target of kind and action, made on first use; nil when
// there are maxTargets already.
func (e *Executor) target(kind, action string) *target {
	name := TargetName(kind, action)
	e.targetsMu.Lock()
	defer e.targetsMu.Unlock()
	if t := e.targets[name]; t != nil {
		return t
	}
	if len(e.targets) >= maxTargets {
		return nil
	}
	t := newTarget(kind, action, e.targetState, e.targetQueued)
	e.gaveUp.WithLabelValues(name)
	e.targets[name] = t
	return t
}

const outboxPage = 256

// useHooks sets up the webhooks of p, with their secrets, and their targets.
func (e *Executor) useHooks(p *Policy) error {
	secrets, err := webhookSecrets(p, e.opts.Getenv)
	if err != nil {
		return err
	}
	hooks := make(map[string]*hook, len(secrets))
	for action, secret := range secrets {
		hooks[action] = &hook{Webhook: p.Webhooks[action], secret: secret}
	}
	e.hooksMu.Lock()
	e.hooks, e.hooksOf = hooks, p
	e.hooksMu.Unlock()
	for action, h := range hooks {
		if t := e.target(TargetWebhook, action); t != nil {
			t.mu.Lock()
			t.url = h.URL
			t.mu.Unlock()
		}
	}
	return nil
}

// hook returns the webhook of action in force, nil when the policy has none.
func (e *Executor) hook(action string) *hook {
	e.hooksMu.Lock()
	defer e.hooksMu.Unlock()
	return e.hooks[action]
}

// maxOutage is the policy's settings.max_outage.
func (e *Executor) maxOutage() time.Duration {
	if e.opts.Policy == nil {
		return DefaultMaxOutage
	}
	if d := e.opts.Policy.Policy().Settings.MaxOutage.D(); d > 0 {
		return d
	}
	return DefaultMaxOutage
}

// halted returns why the outbox must wait (a kill switch), or nil.
func (e *Executor) halted() error {
	if e.opts.Policy == nil {
		return nil
	}
	if on, why := e.opts.Policy.Policy().Halted(); on {
		return errors.New(why)
	}
	return nil
}

// scan reads the outbox and gives each entry not yet found to its target's
// queue, in outbox order. Entries that cannot be delivered at all are recorded
// failed here.
func (e *Executor) scan(ctx context.Context) {
	if e.opts.Policy != nil {
		pol := e.opts.Policy.Policy()
		e.hooksMu.Lock()
		changed := pol != e.hooksOf
		e.hooksMu.Unlock()
		if changed {
			// Reload checked the new policy's secrets; should one be gone since,
			// the webhooks of the policy before stay.
			if err := e.useHooks(pol); err != nil {
				e.log.Error("webhooks of the reloaded policy", "version", pol.Version, "err", err)
			}
		}
	}
	if e.hold(&e.held, e.halted(), "kill switch on: holding the outbox, nothing is published", "kill switch off: draining the outbox") {
		return
	}
	// A command published whose outcome cannot be recorded would be published
	// again on the next pass, and again after JetStream's dedupe window: hold
	// the outbox while the store takes no writes.
	if e.hold(&e.full, e.opts.Store.Writable(), "store takes no writes: holding the outbox, nothing is published until it does",
		"store takes writes again: draining the outbox") {
		return
	}
	e.disownMu.Lock()
	for _, id := range e.disowned {
		delete(e.known, id) // placed again when this member owns its order
	}
	e.disowned = e.disowned[:0]
	e.disownMu.Unlock()
	now := e.opts.Clock().UTC()
	seen := make(map[string]bool, len(e.known))
	complete, after := false, ""
	var bad int
	var badErr error
	for range 4096 { // bounded: a million entries per pass
		entries, err := e.opts.Store.OutboxPage(after, outboxPage)
		if err != nil {
			e.log.Error("read outbox", "err", err)
			return
		}
		for _, en := range entries {
			after = en.DecisionID
			seen[after] = true
			if e.known[after] != nil {
				continue
			}
			t, err := e.place(en, now)
			if err != nil {
				bad++
				badErr = err
				continue
			}
			if t != nil {
				e.known[after] = t
			}
		}
		if len(entries) < outboxPage {
			complete = true
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	if complete {
		for id := range e.known {
			if !seen[id] {
				delete(e.known, id)
			}
		}
	}
	e.pending.Set(float64(len(seen)))
	if bad > 0 {
		e.log.Error("outbox entries could not be recorded failed", "entries", bad, "err", badErr)
	}
	for _, t := range e.all() {
		t.poke()
	}
}

// place gives a new outbox entry to its target's queue and returns the target, or
// records the entry failed when it names none (nil target).
func (e *Executor) place(en store.OutboxEntry, now time.Time) (*target, error) {
	entry := en.DecisionID
	n, err := e.opts.Store.Attempts(entry)
	if err != nil {
		return nil, err
	}
	fail := func(kind, why string) (*target, error) {
		return nil, e.finish(entry, Attempt{At: now, Entry: entry, Target: kind, N: n + 1, Error: why},
			Outcome{Entry: entry, Target: kind, Status: OutcomeFailed, At: now, Attempts: n + 1, Error: why}, false)
	}
	j, err := decodeJob(en.Command)
	if err != nil {
		// Cannot be delivered as it is: record it failed rather than retry forever.
		return fail("", "malformed outbox entry: "+err.Error())
	}
	if (j.Target != TargetNATS && j.Target != TargetWebhook) || !slices.Contains(Actions, j.Action) {
		return fail(j.Target, fmt.Sprintf("unknown delivery target %s of action %q", j.Target, j.Action))
	}
	order := commandOrder(j.Command)
	if e.opts.Owns != nil && !e.opts.Owns(order) {
		return nil, nil // its owner delivers it
	}
	t := e.target(j.Target, j.Action)
	if t == nil {
		if !e.capped {
			e.log.Error("more delivery targets than the executor keeps: deliveries wait", "max", maxTargets, "target", TargetName(j.Target, j.Action))
			e.capped = true
		}
		return nil, nil
	}
	q := &queued{entry: entry, job: j, order: order, seen: now, attempts: n}
	if n > 0 {
		if q.first, err = e.firstAttempt(entry); err != nil {
			return nil, err
		}
	}
	t.add(q)
	return t, nil
}

// firstAttempt returns the time of the first attempt of entry recorded in the
// store, a failed one as the entry is still in the outbox; zero when none, or
// when its record does not say (the wait then starts afresh, never shorter).
func (e *Executor) firstAttempt(entry string) (time.Time, error) {
	v, err := e.opts.Store.FirstAttempt(entry)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	var a struct {
		At time.Time `json:"at"`
	}
	if json.Unmarshal(v, &a) != nil {
		return time.Time{}, nil
	}
	return a.At, nil
}

// hold reports whether the outbox must wait because of why, and logs when such a
// wait starts and when it ends, once each; *on remembers which it is.
func (e *Executor) hold(on *bool, why error, started, ended string) bool {
	if why != nil {
		if !*on {
			e.log.Warn(started, "why", why)
		}
		*on = true
		return true
	}
	if *on {
		e.log.Info(ended)
		*on = false
	}
	return false
}

// attempt makes one attempt of q and records it.
func (e *Executor) attempt(ctx context.Context, t *target, q *queued, now time.Time) (result, string) {
	if t.kind == TargetWebhook {
		return e.deliver(ctx, t, q, now)
	}
	return e.publish(ctx, t, q, now)
}

func (e *Executor) publish(ctx context.Context, t *target, q *queued, now time.Time) (result, string) {
	entry, subject, n := q.entry, t.name, q.attempts+1
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, e.opts.PublishTimeout)
	err := e.opts.Publish(pctx, subject, q.job.MsgID, q.job.Command)
	cancel()
	dup := errors.Is(err, ErrDuplicate) // in the stream already, from an earlier publish
	if dup {
		err = nil
	}
	if err != nil && ctx.Err() != nil {
		// Cut by our shutdown, not an answer of JetStream.
		return resCut, ""
	}
	att := Attempt{At: now, Entry: entry, Target: TargetNATS, N: n, OK: err == nil, Seconds: time.Since(start).Seconds()}
	if err != nil {
		e.failed.WithLabelValues(q.job.Action).Inc()
		att.Error = err.Error()
		return e.retry(q, &att, fmt.Errorf("publish %s for %s: %w", subject, entry, err))
	}
	if err := e.finish(entry, att, Outcome{Entry: entry, Target: TargetNATS, Status: OutcomePublished, Subject: subject, At: now, Attempts: n, Deduplicated: dup}, true); err != nil {
		return resStore, err.Error()
	}
	if dup {
		e.deduplicated.WithLabelValues(q.job.Action).Inc()
		return resDone, ""
	}
	e.sent.WithLabelValues(q.job.Action).Inc()
	return resDone, ""
}

func (e *Executor) deliver(ctx context.Context, t *target, q *queued, now time.Time) (result, string) {
	entry, n := q.entry, q.attempts+1
	h := e.hook(t.action)
	if h == nil {
		msg := "the policy has no webhook for " + t.action + " any more"
		if err := e.finish(entry, Attempt{At: now, Entry: entry, Target: TargetWebhook, N: n, Error: msg},
			Outcome{Entry: entry, Target: TargetWebhook, Status: OutcomeFailed, At: now, Attempts: n, Error: msg}, false); err != nil {
			return resStore, err.Error()
		}
		e.failedForGood(t)
		return resDone, ""
	}
	t.mu.Lock()
	t.url = h.URL
	t.mu.Unlock()
	start := time.Now()
	status, err := post(ctx, e.opts.Client, h, &q.job, entry, n, now)
	if err != nil && status == 0 && ctx.Err() != nil {
		// Cut by our shutdown before the receiver answered.
		return resCut, ""
	}
	att := Attempt{At: now, Entry: entry, Target: TargetWebhook, N: n, OK: err == nil, HTTPStatus: status, Seconds: time.Since(start).Seconds()}
	out := Outcome{Entry: entry, Target: TargetWebhook, URL: h.URL, At: now, Attempts: n}
	if err == nil {
		e.hookAttempts.WithLabelValues(t.action, "ok").Inc()
		out.Status = OutcomeDelivered
		if err := e.finish(entry, att, out, false); err != nil {
			return resStore, err.Error()
		}
		return resDone, ""
	}
	e.hookAttempts.WithLabelValues(t.action, "error").Inc()
	att.Error = err.Error()
	if permanent(status) {
		// The receiver answered: it is up, and says this delivery cannot succeed.
		out.Status, out.Error = OutcomeFailed, "refused, not retried: "+err.Error()
		e.log.Warn("webhook delivery refused", "entry", entry, "action", t.action, "attempts", n, "err", err)
		if err := e.finish(entry, att, out, false); err != nil {
			return resStore, err.Error()
		}
		e.failedForGood(t)
		return resDone, ""
	}
	return e.retry(q, &att, fmt.Errorf("webhook %s attempt %d: %w", entry, n, err))
}

// retry records a failed attempt of q, which stays queued.
func (e *Executor) retry(q *queued, a *Attempt, err error) (result, string) {
	v, _ := json.Marshal(a)
	if rerr := e.opts.Store.RecordAttempt(q.entry, a.N, v); rerr != nil {
		// Not recorded: the next attempt takes the same number.
		return resRetry, errors.Join(err, rerr).Error()
	}
	q.attempts = a.N
	return resRetry, err.Error()
}

// commandOrder reads the order id of a command ("" when it has none).
func commandOrder(cmd []byte) string {
	var c struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(cmd, &c)
	return c.OrderID
}

// disown lets a delivery go whose order this member no longer owns.
func (e *Executor) disown(entry string) {
	e.disownMu.Lock()
	e.disowned = append(e.disowned, entry)
	e.disownMu.Unlock()
}

// finish records the last attempt a of entry and its outcome o; published says
// whether it counts as a published action (deduplicated when o says so).
func (e *Executor) finish(entry string, a Attempt, o Outcome, published bool) error {
	av, _ := json.Marshal(a)
	ov, _ := json.Marshal(o)
	counter := ""
	switch {
	case published && o.Deduplicated:
		counter = store.CounterActionsDeduplicated
	case published:
		counter = store.CounterActionsPublished
	}
	err := e.opts.Store.FinishOutbox(entry, a.N, av, ov, counter)
	if errors.Is(err, store.ErrNotFound) {
		// Finished already, its outcome recorded: retrying would deliver it
		// again every second for ever.
		e.log.Warn("outbox entry finished already: nothing more recorded", "entry", entry)
		return nil
	}
	return err
}
