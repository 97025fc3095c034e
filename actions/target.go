package actions

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// States of a target's circuit breaker.
const (
	StateClosed   = "closed"    // deliveries go out as they come
	StateOpen     = "open"      // the target failed MaxAttempts in a row: deliveries wait, a probe is due at NextProbe
	StateHalfOpen = "half_open" // a probe (the oldest delivery) is in flight
)

// stateValue is the value of orderwatch_target_state for a state.
var stateValue = map[string]float64{StateClosed: 0, StateOpen: 1, StateHalfOpen: 2}

// webhookTargetPrefix names a webhook target: "webhook:<action>". A JetStream
// target is named by its subject, orderwatch.actions.<action>.
const webhookTargetPrefix = "webhook:"

// maxTargets bounds the targets, and so the series of the target metrics: two per
// action type (its subject and its webhook) fit many times over.
const maxTargets = 64

// TargetName returns the name of the target of a delivery: the action's subject,
// or "webhook:<action>".
func TargetName(kind, action string) string {
	if kind == TargetWebhook {
		return webhookTargetPrefix + action
	}
	return Subject(action)
}

// TargetStatus is a delivery target as GET /api/v1/targets shows it.
type TargetStatus struct {
	Target string `json:"target"` // orderwatch.actions.<action> or webhook:<action>
	Kind   string `json:"kind"`   // nats or webhook
	Action string `json:"action"`
	URL    string `json:"url,omitempty"` // webhooks
	State  string `json:"state"`         // closed, open or half_open
	// Queued counts the deliveries waiting for the target, the one in flight
	// included.
	Queued int `json:"queued"`
	// OldestSince is since when the longest-waiting of them waits: its first
	// failed attempt as recorded in the store (before a restart too), or when this
	// process found it in the outbox if it was never attempted before (zero when
	// none is queued).
	OldestSince         time.Time `json:"oldest_since,omitzero"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	// DownSince is the time of the first of the failures in a row; when the first
	// of them in this process was of a delivery that had failed before a restart,
	// the time of that delivery's first failed attempt.
	DownSince   time.Time `json:"down_since,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// NextProbe is when the next attempt is due while the target fails.
	NextProbe time.Time `json:"next_probe,omitzero"`
	// MaxOutage is how long a delivery may wait for the failing target before it
	// is recorded failed (policy settings.max_outage).
	MaxOutage Duration `json:"max_outage"`
}

// queued is a delivery waiting for its target.
type queued struct {
	entry string
	job   job
	order string    // the command's order
	seen  time.Time // when this process found it in the outbox (executor clock)
	// first is the time of its first failed attempt recorded in the store before
	// this process found it (zero when none): its wait goes on across restarts.
	first time.Time
	// attempts recorded so far; -1 until read from the store.
	attempts int
}

// target is one delivery target: its queue in outbox order and its circuit
// breaker. The executor's outbox scan adds to the queue; the target's worker takes
// from it. Safe for concurrent use.
type target struct {
	name, kind, action string
	wake               chan struct{}
	stateGauge         prometheus.Gauge
	queuedGauge        prometheus.Gauge

	mu sync.Mutex
	// queue holds the waiting deliveries by entry id (outbox order); inflight is
	// the one being attempted, out of the queue meanwhile.
	queue    []*queued
	inflight *queued
	state    string
	failures int       // attempts failed in a row
	down     time.Time // executor clock: the first of those failures
	next     time.Time // wall clock: no attempt before
	probe    time.Time // executor clock: next, as shown
	lastErr  string
	lastAt   time.Time
	expired  int // deliveries failed for good in this run of failures
	url      string
}

func newTarget(kind, action string, state *prometheus.GaugeVec, queuedN *prometheus.GaugeVec) *target {
	name := TargetName(kind, action)
	t := &target{name: name, kind: kind, action: action, wake: make(chan struct{}, 1), state: StateClosed,
		stateGauge: state.WithLabelValues(name), queuedGauge: queuedN.WithLabelValues(name)}
	t.stateGauge.Set(0)
	t.queuedGauge.Set(0)
	return t
}

// poke wakes the target's worker. It never blocks.
func (t *target) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// add puts a delivery into the queue at its place in outbox order.
func (t *target) add(q *queued) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.insert(q)
	t.count()
}

// insert places q by entry id; t.mu is held.
func (t *target) insert(q *queued) {
	i, _ := slices.BinarySearchFunc(t.queue, q.entry, func(a *queued, id string) int { return strings.Compare(a.entry, id) })
	t.queue = slices.Insert(t.queue, i, q)
}

// count updates the queued gauge; t.mu is held.
func (t *target) count() {
	n := len(t.queue)
	if t.inflight != nil {
		n++
	}
	t.queuedGauge.Set(float64(n))
}

// setState moves the breaker; t.mu is held.
func (t *target) setState(s string) {
	t.state = s
	t.stateGauge.Set(stateValue[s])
}

// status describes the target at this moment.
func (t *target) status() TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TargetStatus{Target: t.name, Kind: t.kind, Action: t.action, URL: t.url, State: t.state,
		Queued: len(t.queue), ConsecutiveFailures: t.failures, DownSince: t.down, LastError: t.lastErr, LastErrorAt: t.lastAt}
	all := t.queue
	if t.inflight != nil {
		s.Queued++
		all = append([]*queued{t.inflight}, t.queue...)
	}
	for _, q := range all {
		if since := q.since(); s.OldestSince.IsZero() || since.Before(s.OldestSince) {
			s.OldestSince = since
		}
	}
	if t.failures > 0 {
		s.NextProbe = t.probe
	}
	return s
}

// since is since when q waits: its first failed attempt before this process,
// else when this process found it.
func (q *queued) since() time.Time {
	if !q.first.IsZero() && q.first.Before(q.seen) {
		return q.first
	}
	return q.seen
}

// waitStart is since when q waits for the target, as max_outage counts it: since
// its first failed attempt recorded before this process found it (the wait
// survives a restart); else since it was found, or since the target started
// failing if that is later (a delivery never attempted starts afresh after a
// restart: its decision's time may be long past, replayed). t.mu is held.
func (t *target) waitStart(q *queued) time.Time {
	start := q.seen
	if t.failures > 0 && t.down.After(start) {
		start = t.down
	}
	if !q.first.IsZero() && q.first.Before(start) {
		start = q.first
	}
	return start
}
