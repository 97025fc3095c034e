package process

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
)

// How an exception closed (Exception.ClosedBy).
const (
	// ClosedExpected: the event its deadline expects arrived.
	ClosedExpected = "expected"
	// ClosedCancelled: the order was cancelled.
	ClosedCancelled = "cancelled"
	// ClosedWatchEnded: the order reached the policy's watch_until milestone.
	ClosedWatchEnded = "watch_ended"
)

// Exception is the record of an exception: a deadline of the policy passed
// without an event it expects (KindDeadline), or an event showed trouble that
// a deadline then bounds (KindEvent, open: start). It opens when the deadline
// passes or with its event, is overdue once the deadline has passed, counts
// the reminders sent and the escalations up its owner's ladder while it is
// overdue, and closes when an expected event arrives (or the order's watch
// ends). The API shows it as JSON, which is how it is stored.
type Exception struct {
	ID       string `json:"id"`
	Order    string `json:"order_id"`
	Deadline string `json:"deadline"` // the policy's deadline id
	Class    string `json:"class"`
	Category string `json:"category"`
	Owner    string `json:"owner"` // the team, from exception_owners
	// StartedAt is when the clock started (the After event's time, or the
	// cutoff), StartEvent that event's id; DueAt when the deadline passed.
	StartedAt  time.Time `json:"started_at"`
	StartEvent string    `json:"start_event,omitempty"`
	DueAt      time.Time `json:"due_at"`
	OpenedAt   time.Time `json:"opened_at"`
	// Reminders counts the reminders while open and overdue, one each
	// RemindEvery after DueAt, the last at RemindedAt. They are derived, not
	// stored per reminder (RemindersAt): a record holds them as of its last
	// write, and the API shows them as of the time it is read.
	Reminders  int       `json:"reminders"`
	RemindedAt time.Time `json:"reminded_at,omitzero"`
	// RemindEvery is the deadline's remind_every when it became overdue,
	// kept so that a policy reload does not rewrite its reminders; zero:
	// none, or a record of a release that stored each reminder (Reminders
	// and RemindedAt are then as stored).
	RemindEvery actions.Duration `json:"remind_every,omitempty"`

	Open       bool      `json:"open"`
	ClosedAt   time.Time `json:"closed_at,omitzero"`
	ClosedBy   string    `json:"closed_by,omitempty"`   // ClosedExpected, ClosedCancelled or ClosedWatchEnded
	CloseEvent string    `json:"close_event,omitempty"` // the id of the event that closed it
	// What the order was at when it opened, for grouping exceptions of one
	// cause (incidents).
	Warehouse string `json:"warehouse,omitempty"`
	Carrier   string `json:"carrier,omitempty"`
	Customer  string `json:"customer_id,omitempty"`
	// Kind says what opened it: KindDeadline (a deadline passed), KindEvent
	// (an event shows one, e.g. a credit hold) or KindDataQuality (events of
	// two systems disagree, e.g. invoiced before shipped). Empty means
	// KindDeadline (records written before kinds existed).
	Kind string `json:"kind,omitempty"`
	// OpenEvent is the id of the event that opened it (KindEvent,
	// KindDataQuality); Source and Code that event's source system and code
	// (integration.error's system and code, carrier.status's code).
	OpenEvent string `json:"open_event,omitempty"`
	Source    string `json:"source,omitempty"`
	Code      string `json:"code,omitempty"`
	// Cause is the key of the cause it may share with exceptions of other
	// orders, "<kind>/<part>/...", e.g. "integration/edi/MAP-UOM/C-0042",
	// "carrier/ODFL/DAL", "warehouse/DAL"; empty: none. Incident is the id of
	// the incident it was grouped into, if any.
	Cause    string `json:"cause,omitempty"`
	Incident string `json:"incident,omitempty"`
	// Overdue: its deadline has passed (always, for KindDeadline; for an
	// exception opened by its start event, once DueAt passes).
	Overdue bool `json:"overdue,omitempty"`
	// Owner is the team that owns it now: FirstOwner (from exception_owners)
	// until it sits overdue past the SLA of its tier; then it moves one tier
	// up the owner's ladder each SLA, Escalations times, the last at
	// EscalatedAt, and stops at the ladder's end.
	FirstOwner  string    `json:"first_owner,omitempty"`
	Escalations int       `json:"escalations,omitempty"`
	EscalatedAt time.Time `json:"escalated_at,omitzero"`
}

// RemindersAt returns the reminders of x as of t and when the last was: one
// at each DueAt + k·RemindEvery (k ≥ 1) strictly before t and, once closed,
// strictly before ClosedAt (an expected event at a reminder's time is in
// time), while overdue. It is the elapsed count: reminders that came due
// while nothing ran count too. Never fewer than the record holds (a record
// of an earlier release counted each reminder sent).
func (x *Exception) RemindersAt(t time.Time) (int, time.Time) {
	n, last := x.Reminders, x.RemindedAt
	every := x.RemindEvery.D()
	if every <= 0 || !x.Overdue {
		return n, last
	}
	if !x.Open && x.ClosedAt.Before(t) {
		t = x.ClosedAt
	}
	if !x.DueAt.Before(t) {
		return n, last
	}
	k := (t.Sub(x.DueAt) - 1) / every
	if int64(k) > int64(n) {
		n, last = int(k), x.DueAt.Add(k*every)
	}
	return n, last
}

// remindedAt sets Reminders and RemindedAt as of t (RemindersAt), before x
// is written.
func (x *Exception) remindedAt(t time.Time) {
	x.Reminders, x.RemindedAt = x.RemindersAt(t)
}

// ExceptionAt returns the JSON of a stored exception record with its
// reminders as of t (Exception.RemindersAt): raw itself when they are as
// stored (closed, without a reminder schedule, or nothing new since).
func ExceptionAt(raw []byte, t time.Time) ([]byte, error) {
	if !bytes.Contains(raw, []byte(`"remind_every":`)) {
		return raw, nil
	}
	var x Exception
	if err := json.Unmarshal(raw, &x); err != nil {
		return nil, fmt.Errorf("process: decode exception record: %w", err)
	}
	n, last := x.RemindersAt(t)
	if !x.Open || (n == x.Reminders && last.Equal(x.RemindedAt)) {
		return raw, nil
	}
	x.Reminders, x.RemindedAt = n, last
	return encodeException(&x)
}

// What opened an exception (Exception.Kind).
const (
	KindDeadline    = "deadline"
	KindEvent       = "event"
	KindDataQuality = "data_quality"
)

// exChange is an exception opened or closed by a batch, applied to the
// exceptionBook after its commit.
type exChange struct {
	id, owner, class string
	opened           time.Time
	open             bool
	event            int // exOpened, exReminded, exClosed, exDropped; zero: loaded at start
}

const (
	exOpened = iota + 1
	exReminded
	exClosed
	exDropped   // left with its partition
	exEscalated // moved up its ladder to owner
	exOverdue   // its deadline passed (opened by its start event)
)

// exceptionBook holds the open exceptions as committed, for the metrics
// orderwatch_open_exceptions and orderwatch_oldest_open_exception_age_seconds.
// It is a prometheus.Collector; safe for concurrent use.
type exceptionBook struct {
	clock     func() time.Time
	eventTime bool

	opened    *prometheus.CounterVec
	reminders *prometheus.CounterVec

	mu   sync.Mutex
	open map[string]exChange
	// seen are the series shown once, shown at zero when nothing is open.
	seen      map[[2]string]bool
	seenOwner map[string]bool
	at        time.Time // the watermark as committed, the clock in event-time mode

	escalations *prometheus.CounterVec
}

var (
	descOpenExceptions = prometheus.NewDesc("orderwatch_open_exceptions",
		"Exceptions open now (a policy deadline passed, or an event showed trouble), by the owner team they sit with now and class.",
		[]string{"owner", "class"}, nil)
	descOldestException = prometheus.NewDesc("orderwatch_oldest_open_exception_age_seconds",
		"Age of the oldest open exception of each owner team (since it opened); replay measures it on event time.",
		[]string{"owner"}, nil)
)

// newExceptionBook makes the book and registers its metrics with reg, when
// not nil.
func newExceptionBook(reg prometheus.Registerer, clock func() time.Time, eventTime bool) (*exceptionBook, error) {
	b := &exceptionBook{clock: clock, eventTime: eventTime, open: map[string]exChange{},
		seen: map[[2]string]bool{}, seenOwner: map[string]bool{},
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_exceptions_opened_total",
			Help: "Exceptions opened (a policy deadline passed, or an event showed trouble), by owner team and class.",
		}, []string{"owner", "class"}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_exception_reminders_total",
			Help: "Reminders of open exceptions (one each remind_every of their deadline), by owner team.",
		}, []string{"owner"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_exception_escalations_total",
			Help: "Overdue exceptions moved one tier up their owner's escalation ladder, by the owner team they moved to.",
		}, []string{"owner"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b, b.opened, b.reminders, b.escalations} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// apply takes the changes of a committed batch.
func (b *exceptionBook) apply(changes []exChange, watermark time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range changes {
		switch c.event {
		case exOpened:
			b.opened.WithLabelValues(c.owner, c.class).Inc()
		case exReminded:
			b.reminders.WithLabelValues(c.owner).Inc()
		case exEscalated:
			b.escalations.WithLabelValues(c.owner).Inc()
		}
		if c.open {
			b.open[c.id] = c
		} else {
			delete(b.open, c.id)
		}
	}
	b.at = watermark
}

// Describe implements prometheus.Collector.
func (b *exceptionBook) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOpenExceptions
	ch <- descOldestException
}

// Collect implements prometheus.Collector. Owners and classes are bounded by
// the policy (validated names), so are the series.
func (b *exceptionBook) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	now := b.at
	if !b.eventTime {
		now = b.clock()
	}
	counts := map[[2]string]int{}
	oldest := map[string]time.Time{}
	for _, c := range b.open {
		k := [2]string{c.owner, c.class}
		counts[k]++
		b.seen[k], b.seenOwner[c.owner] = true, true
		if o, ok := oldest[c.owner]; !ok || c.opened.Before(o) {
			oldest[c.owner] = c.opened
		}
	}
	for k := range b.seen {
		ch <- prometheus.MustNewConstMetric(descOpenExceptions, prometheus.GaugeValue, float64(counts[k]), k[0], k[1])
	}
	for owner := range b.seenOwner {
		age := 0.0
		if at, ok := oldest[owner]; ok {
			age = max(now.Sub(at).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(descOldestException, prometheus.GaugeValue, age, owner)
	}
	b.mu.Unlock()
}

// seed shows the series of every team and class the policy can give an
// exception (exception_owners, and the teams of their ladders an exception
// escalates to) at zero, so that a fresh instance exports every name the
// alerts and the dashboard use, and a counter's first increase is seen by
// rate(). Bounded by the policy.
func (b *exceptionBook) seed(pol *actions.Policy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for class, owner := range pol.ExceptionOwners {
		teams := []string{owner}
		for next := owner; ; {
			to, _, ok := pol.Escalates(next)
			if !ok || slices.Contains(teams, to) {
				break
			}
			teams, next = append(teams, to), to
		}
		for i, team := range teams {
			b.seen[[2]string{team, class}], b.seenOwner[team] = true, true
			b.opened.WithLabelValues(team, class)
			b.reminders.WithLabelValues(team)
			if i > 0 {
				b.escalations.WithLabelValues(team)
			}
		}
	}
}
