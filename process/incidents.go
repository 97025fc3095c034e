package process

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// Incidents group the exceptions of one cause (Exception.Cause: the same
// integration system and code, the same carrier and pickup, the same
// warehouse outage, the same customer's expired price contract) across
// orders. An exception joins the incident of its cause when it opens within
// the policy's incidents.window of the incident's last exception (its
// OpenedAt: event time in replay, the wall clock live); otherwise it starts a
// new incident. An incident closes when its last open exception closes; one
// closed that a new exception of its cause joins within the window opens
// again (reopened counts it), so a cause that flaps is one incident with one
// notification.
//
// The open incidents (and the latest closed one of each cause, while the
// window may still reopen it) are kept in memory, loaded at start and after a
// failed batch from their records; each batch writes the incidents it
// changed in its own commit (Submit), beside the exceptions that changed
// them. At most incidents.max_open are open: an exception whose cause has no
// open incident past that is not grouped, counted in
// orderwatch_incidents_ungrouped_total{reason="max_open"}.

// Incident states.
const (
	IncidentOpen   = "open"
	IncidentClosed = "closed"
)

// MaxIncidentOrders bounds the orders an incident lists; OrderCount counts
// past it.
const MaxIncidentOrders = 1000

// Incident is the record of an incident, as stored and as the API shows it.
type Incident struct {
	ID    string `json:"id"`
	Cause string `json:"cause"`
	// Kind is the first segment of the cause: integration, carrier,
	// warehouse, price_contract.
	Kind string `json:"kind"`
	// Owner and Class are those of the first exception.
	Owner string `json:"owner"`
	Class string `json:"class"`
	State string `json:"state"` // IncidentOpen or IncidentClosed
	// Orders lists the orders affected, the first MaxIncidentOrders; OrderCount
	// counts them all (past the list, an order counts once per exception).
	Orders     []string `json:"orders"`
	OrderCount int      `json:"order_count"`
	// Exceptions counts the exceptions that joined, OpenExceptions those open.
	Exceptions     int `json:"exceptions"`
	OpenExceptions int `json:"open_exceptions"`
	// FirstSeen and LastSeen are the first and last OpenedAt of its exceptions.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	Reopened  int       `json:"reopened,omitempty"`
	// Notification is the id of the decision of its notification
	// (incidents.notify), once it affects notify.min_orders orders.
	Notification string `json:"notification,omitempty"`

	// open are its open exceptions (id -> order), in memory only: read from
	// the exception records at load, so OpenExceptions is their count.
	open map[string]string
}

// incidentID is the id of the incident of cause that starts at first: its
// time as store.DecisionIDPrefix (ids sort by start) and a hash of the cause.
func incidentID(cause string, first time.Time) string {
	sum := sha256.Sum256([]byte(cause))
	return "inc-" + store.DecisionIDPrefix(first) + "-" + hex.EncodeToString(sum[:4])
}

// Kinds of causes that label the incident metrics; any other is "other".
var incidentKinds = []string{"integration", "carrier", "warehouse", "price_contract"}

const kindOther = "other"

// causeKind returns the kind of a cause key, its first segment.
func causeKind(cause string) string {
	k, _, _ := strings.Cut(cause, "/")
	return k
}

// kindLabel bounds a kind to the label values of the incident metrics.
func kindLabel(kind string) string {
	if slices.Contains(incidentKinds, kind) {
		return kind
	}
	return kindOther
}

// incidents is the in-memory mirror of the incidents a batch may change. It
// is changed while a batch stages and read again from the store when one
// fails, like the deadline watches; only the Processor's goroutine uses it.
type incidents struct {
	byCause map[string]*Incident // the latest incident of each cause
	byID    map[string]*Incident // the open ones, and the latest closed of each cause
	open    int
	// dirty are the incidents the batch being staged changed, written by
	// Submit; ungrouped counts its exceptions not grouped, by kind label and
	// reason; opened the incidents it opened, by kind label.
	dirty     []*Incident
	ungrouped map[[2]string]int
	opened    map[string]int
}

// Reasons an exception is not grouped (orderwatch_incidents_ungrouped_total).
const (
	ungroupedMaxOpen = "max_open" // incidents.max_open incidents were open
	ungroupedUnknown = "unknown"  // it left an incident this instance does not hold open
)

func newIncidents() *incidents {
	return &incidents{byCause: map[string]*Incident{}, byID: map[string]*Incident{},
		ungrouped: map[[2]string]int{}, opened: map[string]int{}}
}

// keep holds an incident loaded or made.
func (in *incidents) keep(inc *Incident) {
	if old := in.byCause[inc.Cause]; old == nil || !old.FirstSeen.After(inc.FirstSeen) {
		if old != nil && old.State == IncidentClosed {
			delete(in.byID, old.ID)
		}
		in.byCause[inc.Cause] = inc
	}
	if inc.State == IncidentOpen {
		in.byID[inc.ID] = inc
		in.open++
	} else if in.byCause[inc.Cause] == inc {
		in.byID[inc.ID] = inc
	}
}

// prune forgets the closed incidents when more than twice limit are kept: they
// can no longer reopen, and a new exception of their cause starts a new one.
func (in *incidents) prune(limit int) {
	if len(in.byID) <= 2*limit {
		return
	}
	for id, inc := range in.byID {
		if inc.State == IncidentClosed {
			delete(in.byID, id)
			if in.byCause[inc.Cause] == inc {
				delete(in.byCause, inc.Cause)
			}
		}
	}
}

func (in *incidents) markDirty(inc *Incident) {
	if !slices.Contains(in.dirty, inc) {
		in.dirty = append(in.dirty, inc)
	}
}

// openByKind counts the open incidents by kind label.
func (in *incidents) openByKind() map[string]int {
	out := make(map[string]int, len(incidentKinds)+1)
	for _, inc := range in.byID {
		if inc.State == IncidentOpen {
			out[kindLabel(inc.Kind)]++
		}
	}
	return out
}

// incidentStats is what a batch changed in the incident metrics, applied
// after its commit.
type incidentStats struct {
	open      map[string]int // open incidents by kind label after the batch
	opened    map[string]int
	ungrouped map[[2]string]int
}

// joinIncident groups an exception that has just opened with a Cause into the
// open incident of that cause (or opens one), setting x.Incident, in the batch
// that opens it. leaveIncident notes, in the batch that closes it, that it has
// closed.
//
// Contract between the parts of issue 18: the deadlines and data-quality parts
// call joinIncident before putException for every exception they open with a
// Cause, and leaveIncident before putException for every one they close that
// has an Incident; the incidents part owns this file and fills it in.
func (p *Processor) joinIncident(batch *store.Batch, x *Exception) error {
	if x.Cause == "" || x.Incident != "" {
		return nil
	}
	pol := &p.opts.Policy.Policy().Incidents
	in, at := p.incidents, x.OpenedAt
	inc := in.byCause[x.Cause]
	switch {
	case inc == nil || absDuration(at.Sub(inc.LastSeen)) > pol.WindowOf(causeKind(x.Cause)):
		if in.open >= pol.MaxOpen {
			in.ungrouped[[2]string{kindLabel(causeKind(x.Cause)), ungroupedMaxOpen}]++
			return nil
		}
		inc = &Incident{ID: incidentID(x.Cause, at), Cause: x.Cause, Kind: causeKind(x.Cause), Owner: x.Owner,
			Class: x.Class, State: IncidentOpen, FirstSeen: at, LastSeen: at}
		in.keep(inc)
		in.opened[kindLabel(inc.Kind)]++
		in.prune(pol.MaxOpen)
	case inc.State == IncidentClosed:
		inc.State, inc.ClosedAt = IncidentOpen, time.Time{}
		inc.Reopened++
		in.open++
	}
	if _, ok := inc.open[x.ID]; ok {
		x.Incident = inc.ID
		return nil
	}
	if !slices.Contains(inc.Orders, x.Order) {
		if len(inc.Orders) < MaxIncidentOrders {
			inc.Orders = append(inc.Orders, x.Order)
		}
		inc.OrderCount++
	}
	inc.Exceptions++
	if inc.open == nil {
		inc.open = map[string]string{}
	}
	inc.open[x.ID] = x.Order
	inc.OpenExceptions = len(inc.open)
	if at.Before(inc.FirstSeen) {
		inc.FirstSeen = at
	}
	if at.After(inc.LastSeen) {
		inc.LastSeen = at
	}
	x.Incident = inc.ID
	in.markDirty(inc)
	return nil
}

// leaveIncident: see joinIncident. It writes nothing itself (batch may be
// nil, e.g. for an exception dropped with its partition): the incident is
// written by the Submit of the batch being staged, or of the next one.
func (p *Processor) leaveIncident(batch *store.Batch, x *Exception) error {
	if x.Incident == "" {
		return nil
	}
	in := p.incidents
	inc := in.byID[x.Incident]
	if inc == nil || inc.State != IncidentOpen {
		in.ungrouped[[2]string{kindLabel(causeKind(x.Cause)), ungroupedUnknown}]++
		return nil
	}
	if _, ok := inc.open[x.ID]; !ok {
		in.ungrouped[[2]string{kindLabel(causeKind(x.Cause)), ungroupedUnknown}]++
		return nil
	}
	delete(inc.open, x.ID)
	in.settle(inc, x.ClosedAt)
	return nil
}

// settle counts an open incident's open exceptions after some left, and
// closes it at closed (its last_seen when zero) once none is.
func (in *incidents) settle(inc *Incident, closed time.Time) {
	inc.OpenExceptions = len(inc.open)
	if inc.OpenExceptions == 0 {
		inc.State, inc.ClosedAt = IncidentClosed, closed
		if inc.ClosedAt.IsZero() || inc.ClosedAt.Before(inc.LastSeen) {
			inc.ClosedAt = inc.LastSeen
		}
		in.open--
	}
	in.markDirty(inc)
}

// dropIncidents lets the open exceptions of orders (a partition another
// instance owns now; store.DropPartition deletes their records) leave their
// incidents: an incident left without one closes. The incidents are written
// by the next batch; a restart before it finds the same from the exception
// records (loadIncidents). Call it from DropPartition, between batches.
func (p *Processor) dropIncidents(orders map[string]bool) {
	for _, inc := range p.incidents.byID {
		if inc.State != IncidentOpen {
			continue
		}
		n := len(inc.open)
		for id, order := range inc.open {
			if orders[order] {
				delete(inc.open, id)
			}
		}
		if len(inc.open) != n {
			p.incidents.settle(inc, time.Time{})
		}
	}
}

// writeIncidents writes the incidents the staged batch changed into it, with
// the notification of those that reached notify.min_orders, and keeps what it
// changed in the metrics for its commit (Wait).
func (p *Processor) writeIncidents(batch *store.Batch) error {
	in := p.incidents
	st := &p.incStats
	*st = incidentStats{}
	if len(in.dirty) == 0 && len(in.ungrouped) == 0 {
		return nil
	}
	pol := p.opts.Policy.Policy()
	for _, inc := range in.dirty {
		if n := pol.Incidents.Notify; n != nil && inc.Notification == "" && inc.OrderCount >= n.MinOrders {
			if err := p.notifyIncident(batch, pol, inc); err != nil {
				return err
			}
		}
		v, err := json.Marshal(inc)
		if err != nil {
			return fmt.Errorf("process: encode incident %s: %w", inc.ID, err)
		}
		var ttl time.Duration
		if inc.State == IncidentClosed {
			ttl = p.opts.Retention
		}
		if err := batch.PutIncident(inc.ID, v, ttl); err != nil {
			return err
		}
	}
	st.open, st.opened, st.ungrouped = in.openByKind(), in.opened, in.ungrouped
	in.dirty, in.opened, in.ungrouped = in.dirty[:0], map[string]int{}, map[[2]string]int{}
	return nil
}

// notifyIncident records the decision of an incident's notification and, when
// it may fire, puts its command in the outbox: one action listing the orders,
// idempotent by the incident's id. It is listed under the order whose
// exception made the incident reach min_orders (the last one listed), which
// this instance owns.
func (p *Processor) notifyIncident(batch *store.Batch, pol *actions.Policy, inc *Incident) error {
	order := inc.Orders[len(inc.Orders)-1]
	d, err := pol.NotifyIncident(batch, &actions.IncidentNotice{
		Incident: inc.ID, Cause: inc.Cause, Kind: inc.Kind, Owner: inc.Owner, Class: inc.Class,
		Orders: inc.Orders, OrderCount: inc.OrderCount, FirstSeen: inc.FirstSeen, LastSeen: inc.LastSeen,
		Order: order, At: inc.LastSeen,
	})
	if err != nil {
		return err
	}
	inc.Notification = d.ID
	if d.Queued() {
		p.queued = true
	}
	return nil
}

// loadIncidents reads the stored incidents; one that does not decode is left
// out, counted and logged.
func (p *Processor) loadIncidents() error {
	in := newIncidents()
	var unreadable int
	var firstErr error
	err := p.opts.Store.Incidents(func(v []byte) error {
		inc := &Incident{}
		if err := json.Unmarshal(v, inc); err != nil {
			if unreadable++; firstErr == nil {
				firstErr = err
			}
			return nil
		}
		in.keep(inc)
		return nil
	})
	if err != nil {
		return fmt.Errorf("process: load incidents: %w", err)
	}
	if unreadable > 0 {
		p.m.unreadable.WithLabelValues(kindIncident).Add(float64(unreadable))
		p.log.Warn("stored incidents that do not decode, left out", "records", unreadable, "err", firstErr)
	}
	// The open exceptions of each open incident, from the exception records
	// (written in the commits that joined them). An incident whose count
	// differs (its orders' partition was dropped) is set right, and written
	// by the next batch.
	_, _, err = p.opts.Store.ExceptionsPage("", 0, func(v []byte) bool {
		var x struct {
			ID       string `json:"id"`
			Order    string `json:"order_id"`
			Open     bool   `json:"open"`
			Incident string `json:"incident"`
		}
		if json.Unmarshal(v, &x) != nil || !x.Open || x.Incident == "" {
			return false // an exception record that does not decode is the deadlines' to count
		}
		if inc := in.byID[x.Incident]; inc != nil && inc.State == IncidentOpen {
			if inc.open == nil {
				inc.open = map[string]string{}
			}
			inc.open[x.ID] = x.Order
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("process: load incidents: %w", err)
	}
	var settled int
	for _, inc := range in.byID {
		if inc.State == IncidentOpen && len(inc.open) != inc.OpenExceptions {
			in.settle(inc, time.Time{})
			settled++
		}
	}
	if settled > 0 {
		p.log.Info("incidents whose open exceptions are no longer here set right", "incidents", settled)
	}
	in.prune(p.opts.Policy.Policy().Incidents.MaxOpen)
	p.incidents = in
	p.incMetrics.set(in.openByKind())
	return nil
}

// kindIncident is the kind label of orderwatch_stored_records_unreadable_total
// for an incident.
const kindIncident = "incident"

// Incidents returns the incidents stored in st, in the order they started:
// for tests and measurements (the API pages them itself).
func Incidents(st *store.Store) ([]Incident, error) {
	var out []Incident
	err := st.Incidents(func(v []byte) error {
		var inc Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			return fmt.Errorf("process: decode incident: %w", err)
		}
		out = append(out, inc)
		return nil
	})
	return out, err
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// incidentMetrics are the incident metrics, moved after each commit.
type incidentMetrics struct {
	open      *prometheus.GaugeVec
	opened    *prometheus.CounterVec
	ungrouped *prometheus.CounterVec
}

func newIncidentMetrics(reg prometheus.Registerer) (*incidentMetrics, error) {
	m := &incidentMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_open_incidents",
			Help: "Incidents open now (exceptions of several orders with one cause), by kind of cause.",
		}, []string{"kind"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_incidents_opened_total",
			Help: "Incidents opened, by kind of cause.",
		}, []string{"kind"}),
		ungrouped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_incidents_ungrouped_total",
			Help: "Exceptions with a cause that no incident took: max_open incidents were open, or it left an incident not held open here (unknown).",
		}, []string{"kind", "reason"}),
	}
	for _, k := range append(slices.Clone(incidentKinds), kindOther) {
		m.open.WithLabelValues(k)
		m.opened.WithLabelValues(k)
		m.ungrouped.WithLabelValues(k, ungroupedMaxOpen) // at 0 from the start: an alert's rate needs the series
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.open, m.opened, m.ungrouped} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// set shows the open incidents by kind label.
func (m *incidentMetrics) set(open map[string]int) {
	for _, k := range incidentKinds {
		m.open.WithLabelValues(k).Set(float64(open[k]))
	}
	m.open.WithLabelValues(kindOther).Set(float64(open[kindOther]))
}

// applyIncidents takes the incident changes of a committed batch; exceptions not
// grouped are logged once per batch that had any.
func (p *Processor) applyIncidents(st *incidentStats) {
	m := p.incMetrics
	if st.open == nil {
		return
	}
	m.set(st.open)
	for k, n := range st.opened {
		m.opened.WithLabelValues(k).Add(float64(n))
	}
	var capped, unknown int
	for k, n := range st.ungrouped {
		m.ungrouped.WithLabelValues(k[0], k[1]).Add(float64(n))
		if k[1] == ungroupedMaxOpen {
			capped += n
		} else {
			unknown += n
		}
	}
	if capped > 0 {
		p.log.Warn("exceptions not grouped into incidents: incidents.max_open incidents are open", "exceptions", capped)
	}
	if unknown > 0 {
		p.log.Warn("exceptions closed of incidents not held open here, left as they are", "exceptions", unknown)
	}
}
