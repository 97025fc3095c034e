package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// PublishFunc publishes one command durably (a JetStream publish acknowledged by the
// stream), with msgID as its Nats-Msg-Id so a retry is deduplicated.
type PublishFunc func(ctx context.Context, subject, msgID string, data []byte) error

// ExecutorOptions configures an Executor.
type ExecutorOptions struct {
	Store   *store.Store // required
	Publish PublishFunc  // required
	// Policy gives the webhooks and the kill switches, read at each outbox pass.
	// Nil means JetStream commands only, never held.
	Policy *Live
	// Client posts webhooks; nil means a plain client (each attempt is bounded by
	// the webhook's timeout).
	Client *http.Client
	// Getenv reads webhook secrets; nil means os.Getenv.
	Getenv func(string) string
	// Clock gives attempt times and retry schedules; nil means time.Now.
	Clock func() time.Time
	// Interval between outbox scans when nothing wakes the executor. Zero means 1s.
	Interval   time.Duration
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Executor drains the outbox: it publishes each queued command to JetStream and
// posts the webhook deliveries, recording every attempt and the final outcome.
// Deliveries happen at least once and are deduplicated downstream by their
// idempotency key (Nats-Msg-Id, X-Orderwatch-Idempotency-Key), so the effect is
// once. While a kill switch is on it holds the outbox. Run must be called from one
// goroutine; Wake may be called from any.
type Executor struct {
	opts ExecutorOptions
	wake chan struct{}
	log  *slog.Logger

	// Owned by Run's goroutine (set up by NewExecutor): the webhooks of hooksOf.
	hooks   map[string]*hook
	hooksOf *Policy

	// Owned by Run's goroutine.
	retry map[string]*retryState
	held  bool
	full  bool // the store takes no writes: the outbox waits

	sent, failed, hookAttempts, hookFailures *prometheus.CounterVec
	pending                                  prometheus.Gauge
}

type retryState struct {
	attempts int       // recorded so far
	next     time.Time // not before
}

// NewExecutor validates opts, resolves the webhook secrets and builds an executor.
func NewExecutor(opts ExecutorOptions) (*Executor, error) {
	if opts.Store == nil || opts.Publish == nil {
		return nil, fmt.Errorf("actions: ExecutorOptions.Store and .Publish are required")
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
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
		opts:  opts,
		wake:  make(chan struct{}, 1),
		log:   opts.Logger.With("component", "executor"),
		hooks: map[string]*hook{},
		retry: map[string]*retryState{},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_actions_published_total",
			Help: "Action commands published to JetStream, by action.",
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
			Help: "Webhook deliveries given up (refused by the receiver or out of attempts), by action.",
		}, []string{"action"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_outbox_depth",
			Help: "Deliveries in the outbox at the last scan.",
		}),
	}
	if opts.Policy != nil {
		if err := e.useHooks(opts.Policy.Policy()); err != nil {
			return nil, err
		}
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.sent, e.failed, e.hookAttempts, e.hookFailures, e.pending} {
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

// Run drains the outbox until ctx is done, then makes one last pass with a short
// deadline so commands of the last batch go out before shutdown.
func (e *Executor) Run(ctx context.Context) error {
	t := time.NewTicker(e.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			e.drain(fctx)
			return nil
		case <-e.wake:
		case <-t.C:
		}
		e.drain(ctx)
	}
}

const outboxPage = 256

// useHooks sets up the webhooks of p, with their secrets.
func (e *Executor) useHooks(p *Policy) error {
	secrets, err := webhookSecrets(p, e.opts.Getenv)
	if err != nil {
		return err
	}
	hooks := make(map[string]*hook, len(secrets))
	for action, secret := range secrets {
		hooks[action] = &hook{Webhook: p.Webhooks[action], secret: secret}
	}
	e.hooks, e.hooksOf = hooks, p
	return nil
}

// drain makes one pass over the outbox. Failures stay in the outbox with their
// retry time; they are counted, and logged once per pass.
func (e *Executor) drain(ctx context.Context) {
	var halted error
	if e.opts.Policy != nil {
		pol := e.opts.Policy.Policy()
		if pol != e.hooksOf {
			// Reload checked the new policy's secrets; should one be gone since,
			// the webhooks of the policy before stay.
			if err := e.useHooks(pol); err != nil {
				e.log.Error("webhooks of the reloaded policy", "version", pol.Version, "err", err)
			}
		}
		if on, why := pol.Halted(); on {
			halted = errors.New(why)
		}
	}
	if e.hold(&e.held, halted, "kill switch on: holding the outbox, nothing is published", "kill switch off: draining the outbox") {
		return
	}
	// A command published whose outcome cannot be recorded would be published
	// again on the next pass, and again after JetStream's dedupe window: hold
	// the outbox while the store takes no writes.
	if e.hold(&e.full, e.opts.Store.Writable(), "store takes no writes: holding the outbox, nothing is published until it does",
		"store takes writes again: draining the outbox") {
		return
	}
	var p pass
	after := ""
	seen := make(map[string]bool, len(e.retry))
	for range 4096 { // bounded: a million entries per pass
		entries, err := e.opts.Store.OutboxPage(after, outboxPage)
		if err != nil {
			e.log.Error("read outbox", "err", err)
			return
		}
		for _, en := range entries {
			after = en.DecisionID
			seen[after] = true
			if ctx.Err() != nil {
				break
			}
			if err := e.execute(ctx, en, &p); err != nil {
				p.failures++
				p.lastErr = err
			}
		}
		if len(entries) < outboxPage || ctx.Err() != nil {
			break
		}
	}
	for id := range e.retry {
		if !seen[id] {
			delete(e.retry, id)
		}
	}
	e.pending.Set(float64(len(seen) - p.done))
	if p.failures > 0 {
		e.log.Warn("deliveries not done, will retry", "failed", p.failures, "err", p.lastErr)
	}
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

// pass is the state of one drain.
type pass struct {
	natsDown bool // a publish failed: leave the other commands to the next pass
	failures int
	done     int
	lastErr  error
}

func (e *Executor) execute(ctx context.Context, en store.OutboxEntry, p *pass) error {
	entry := en.DecisionID
	now := e.opts.Clock().UTC()
	rs := e.retry[entry]
	if rs == nil {
		n, err := e.opts.Store.Attempts(entry)
		if err != nil {
			return err
		}
		rs = &retryState{attempts: n}
		e.retry[entry] = rs
	}
	if now.Before(rs.next) {
		return nil
	}
	j, err := decodeJob(en.Command)
	if err != nil {
		// Cannot be delivered as it is: record it failed rather than retry forever.
		p.done++
		return e.finish(entry, rs, Attempt{At: now, Entry: entry, N: rs.attempts + 1, Error: "malformed outbox entry: " + err.Error()},
			Outcome{Entry: entry, Status: OutcomeFailed, At: now, Error: "malformed outbox entry: " + err.Error()}, false)
	}
	switch j.Target {
	case TargetNATS:
		if p.natsDown {
			return nil
		}
		return e.publish(ctx, entry, &j, rs, now, p)
	case TargetWebhook:
		return e.deliver(ctx, entry, &j, rs, now, p)
	}
	p.done++
	return e.finish(entry, rs, Attempt{At: now, Entry: entry, Target: j.Target, N: rs.attempts + 1, Error: "unknown target"},
		Outcome{Entry: entry, Target: j.Target, Status: OutcomeFailed, At: now, Error: "unknown delivery target " + j.Target}, false)
}

func (e *Executor) publish(ctx context.Context, entry string, j *job, rs *retryState, now time.Time, p *pass) error {
	subject := Subject(j.Action)
	n := rs.attempts + 1
	start := time.Now()
	err := e.opts.Publish(ctx, subject, j.MsgID, j.Command)
	att := Attempt{At: now, Entry: entry, Target: TargetNATS, N: n, OK: err == nil, Seconds: time.Since(start).Seconds()}
	if err != nil {
		e.failed.WithLabelValues(j.Action).Inc()
		p.natsDown = true
		att.Error = err.Error()
		rs.attempts, rs.next = n, now.Add(backoff(100*time.Millisecond, 30*time.Second, n))
		if rerr := e.record(entry, &att); rerr != nil {
			return rerr
		}
		return fmt.Errorf("publish %s for %s: %w", subject, entry, err)
	}
	p.done++
	if err := e.finish(entry, rs, att, Outcome{Entry: entry, Target: TargetNATS, Status: OutcomePublished, Subject: subject, At: now, Attempts: n}, true); err != nil {
		return err
	}
	e.sent.WithLabelValues(j.Action).Inc()
	return nil
}

func (e *Executor) deliver(ctx context.Context, entry string, j *job, rs *retryState, now time.Time, p *pass) error {
	n := rs.attempts + 1
	h := e.hooks[j.Action]
	if h == nil {
		p.done++
		msg := "the policy has no webhook for " + j.Action + " any more"
		return e.finish(entry, rs, Attempt{At: now, Entry: entry, Target: TargetWebhook, N: n, Error: msg},
			Outcome{Entry: entry, Target: TargetWebhook, Status: OutcomeFailed, At: now, Attempts: n, Error: msg}, false)
	}
	start := time.Now()
	status, err := post(ctx, e.opts.Client, h, j, entry, n, now)
	att := Attempt{At: now, Entry: entry, Target: TargetWebhook, N: n, OK: err == nil, HTTPStatus: status, Seconds: time.Since(start).Seconds()}
	out := Outcome{Entry: entry, Target: TargetWebhook, URL: h.URL, At: now, Attempts: n}
	if err == nil {
		e.hookAttempts.WithLabelValues(j.Action, "ok").Inc()
		out.Status = OutcomeDelivered
		p.done++
		return e.finish(entry, rs, att, out, false)
	}
	e.hookAttempts.WithLabelValues(j.Action, "error").Inc()
	att.Error = err.Error()
	if permanent(status) || n >= h.MaxAttempts {
		e.hookFailures.WithLabelValues(j.Action).Inc()
		out.Status, out.Error = OutcomeFailed, err.Error()
		if permanent(status) {
			out.Error = "refused, not retried: " + out.Error
		} else {
			out.Error = fmt.Sprintf("gave up after %d attempts: %s", n, out.Error)
		}
		e.log.Warn("webhook delivery failed", "entry", entry, "action", j.Action, "attempts", n, "err", err)
		p.done++
		return e.finish(entry, rs, att, out, false)
	}
	rs.attempts, rs.next = n, now.Add(backoff(h.Backoff.D(), h.MaxBackoff.D(), n))
	if rerr := e.record(entry, &att); rerr != nil {
		return rerr
	}
	return fmt.Errorf("webhook %s attempt %d: %w", entry, n, err)
}

func (e *Executor) record(entry string, a *Attempt) error {
	v, _ := json.Marshal(a)
	return e.opts.Store.RecordAttempt(entry, a.N, v)
}

func (e *Executor) finish(entry string, rs *retryState, a Attempt, o Outcome, published bool) error {
	av, _ := json.Marshal(a)
	ov, _ := json.Marshal(o)
	if err := e.opts.Store.FinishOutbox(entry, a.N, av, ov, published); err != nil {
		return err
	}
	rs.attempts = a.N
	delete(e.retry, entry)
	return nil
}
