// Package api serves orderwatch's HTTP interface: Prometheus metrics, health and
// readiness, and the JSON API over orders, decisions and the durable stats. It reads
// through the store and never writes Badger itself.
package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// Check reports whether one part is ready, and why not.
type Check func() (ok bool, reason string)

// Options configures the HTTP handler.
type Options struct {
	Store    *store.Store        // required
	Gatherer prometheus.Gatherer // nil means no /metrics
	Ready    map[string]Check    // named readiness checks; /readyz is 200 when all pass
	Models   ModelAdmin          // nil means no /api/v1/models
	// Governor answers waiting decisions and turns the kill switch; nil means no
	// approval, acknowledgement or kill switch endpoints.
	Governor *actions.Governor
	// Policy shows the policy in force and reloads it; nil means no
	// /api/v1/policy endpoints.
	Policy PolicyAdmin
	// Targets describes the delivery targets; nil means GET /api/v1/targets
	// answers 404.
	Targets TargetLister
	// Group is the group of instances this one belongs to; nil answers 404 on
	// GET /api/v1/cluster and /api/v1/stats?scope=group.
	Group Group
	// Peers forwards what another member of the group answers for: an order to
	// its owner, a decision to the member that made it, lists to every member;
	// nil answers from this instance alone.
	Peers Peers
	// Events is stream ORDERS, where the events an order's timeline references
	// are read back by sequence for GET /api/v1/orders/{id}; nil shows each in
	// its compact form (the reference the order keeps).
	Events StreamMessages
	// OpenOrders is the index of the open orders this instance holds; nil
	// answers 404 on GET /api/v1/orders (the at-risk queue).
	OpenOrders OpenOrders
	// Token is the bearer token of mutating requests; empty refuses them all.
	// Ignored when Auth is set (Auth holds the shared token then).
	Token string
	// Auth resolves who makes each request (people from the users file, per-user
	// tokens, sessions, a trusted proxy, the shared token as "service"); nil
	// means the shared Token alone.
	Auth *auth.Authenticator
	// TokenForReads asks the token of the reads of /api/ too (orders, decisions,
	// policy, …): for an instance whose port is reachable beyond the operators.
	// /metrics, /healthz and /readyz stay open for Prometheus and probes.
	TokenForReads bool
	// MaxInFlight bounds the requests to /api/ served at once; beyond it they are
	// refused with 503 and Retry-After. 0 means DefaultMaxInFlight.
	MaxInFlight int
	// Clock is the time the reminders of open exceptions are read as of
	// (process.ExceptionAt); nil means time.Now.
	Clock func() time.Time
	// Registerer takes the API's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // nil means discard
}

// PolicyAdmin shows the policy in force and reloads its file.
type PolicyAdmin interface {
	Policy() *actions.Policy
	// Reload puts the policy file in force, or returns why it keeps the one in
	// force.
	Reload() (*actions.Policy, error)
}

// Handler returns the HTTP handler. It is safe for concurrent use.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := o.Auth
	if a == nil {
		var err error
		if a, err = auth.New(auth.Options{SharedToken: o.Token, Logger: o.Logger}); err != nil {
			panic("api: " + err.Error()) // cannot happen: a shared token alone is always valid
		}
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	s := &server{o: o, log: o.Logger.With("component", "api"), auth: a, m: newLimitMetrics(o.Registerer), tl: newTimelineMetrics(o.Registerer)}
	mux := http.NewServeMux()
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError)}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /signin", s.signInPage)
	mux.HandleFunc("POST /signin", s.signIn)
	mux.HandleFunc("POST /signout", s.signOut)
	mux.HandleFunc("GET /api/v1/whoami", s.whoami)
	mux.HandleFunc("GET /api/v1/stats", s.stats)
	mux.HandleFunc("GET /api/v1/orders/{id}", s.toOwner(s.order))
	if o.OpenOrders != nil {
		mux.HandleFunc("GET /api/v1/orders", s.mergedOrders(s.ordersList))
	}
	mux.HandleFunc("GET /api/v1/decisions", s.merged("decisions", s.decisionsList))
	mux.HandleFunc("GET /api/v1/decisions/{id}", s.orPeers(s.decisionShow))
	mux.HandleFunc("GET /api/v1/targets", s.targets)
	mux.HandleFunc("GET /api/v1/exceptions", s.exceptionsList)
	mux.HandleFunc("GET /api/v1/incidents", s.incidentsList)
	mux.HandleFunc("GET /api/v1/incidents/{id}", s.incidentShow)
	mux.HandleFunc("GET /api/v1/cluster", s.cluster)
	if g := o.Governor; g != nil {
		// Approvers answer for their teams: the team check is the answering
		// member's (answer), which knows the decision.
		mux.HandleFunc("GET /api/v1/approvals", s.merged("approvals", s.approvals))
		mux.HandleFunc("POST /api/v1/approvals/{id}/approve", s.require(auth.RoleApprover, s.orPeers(s.answer(actions.TrailApproved, true, g.Approve))))
		mux.HandleFunc("POST /api/v1/approvals/{id}/reject", s.require(auth.RoleApprover, s.orPeers(s.answer(actions.TrailRejected, true, g.Reject))))
		mux.HandleFunc("POST /api/v1/decisions/{id}/ack", s.require(auth.RoleApprover, s.orPeers(s.answer(actions.TrailAcknowledged, false, g.Ack))))
		mux.HandleFunc("GET /api/v1/killswitch", s.killSwitch)
		mux.HandleFunc("POST /api/v1/killswitch", s.require(auth.RoleAdmin, s.setKillSwitch))
	}
	if o.Models != nil {
		mux.HandleFunc("GET /api/v1/models", s.models)
		mux.HandleFunc("GET /api/v1/models/{name}/compare", s.compareModel)
		mux.HandleFunc("POST /api/v1/models/{name}/activate", s.require(auth.RoleAdmin, s.activateModel))
		mux.HandleFunc("POST /api/v1/models/validate", s.require(auth.RoleAdmin, s.validateModel))
	}
	if o.Policy != nil {
		mux.HandleFunc("GET /api/v1/policy", s.policy)
		mux.HandleFunc("POST /api/v1/policy/reload", s.require(auth.RoleAdmin, s.reloadPolicy))
	}
	s.consoleRoutes(mux)
	var h http.Handler = mux
	if o.TokenForReads {
		h = s.readsNeedToken(mux)
	}
	s.api = limit(s.identify(h), o.MaxInFlight, s.m)
	return s.api
}

type server struct {
	o    Options
	log  *slog.Logger
	auth *auth.Authenticator
	m    *limitMetrics
	tl   *timelineMetrics
	// api is the whole handler, which the console's pages ask in-process.
	api http.Handler
	// teams is what GET /api/v1/orders?team= keeps of the open items.
	teams waitingTeams
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request) {
	failing := map[string]string{}
	for name, check := range s.o.Ready {
		if ok, why := check(); !ok {
			failing[name] = why
		}
	}
	if len(failing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	switch scope := r.URL.Query().Get("scope"); scope {
	case "", "instance":
	case "group":
		s.groupStats(w)
		return
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "scope " + strconv.Quote(scope) + " is not known: use instance (the default) or group"})
		return
	}
	st, err := s.o.Store.Stats()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *server) order(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := s.o.Store.Order(id)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "order " + id + " is not known"})
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	views, err := s.views(v.Details)
	if err != nil {
		s.fail(w, err)
		return
	}
	record, err := process.RecordJSON(v.Record)
	if err != nil {
		s.fail(w, err)
		return
	}
	stored, err := s.o.Store.OrderExceptions(id)
	if err != nil {
		s.fail(w, err)
		return
	}
	exceptions := s.exceptionsNow(stored)
	refs, err := process.RecordTimeline(v.Record)
	if err != nil {
		s.fail(w, err)
		return
	}
	hist, unreadable := history(v, refs, views)
	if len(unreadable) > 0 {
		s.log.Warn("order history has unreadable records", "order", id, "unreadable", unreadable)
	}
	out := struct {
		OrderID  string            `json:"order_id"`
		Record   json.RawMessage   `json:"record"`
		Timeline []json.RawMessage `json:"timeline"`
		// TimelineDropped counts the events the order's timeline left out to
		// stay within process.MaxTimeline.
		TimelineDropped int               `json:"timeline_dropped,omitempty"`
		Decisions       []actions.View    `json:"decisions"`
		History         []historyEntry    `json:"history"`
		Scores          []riskPoint       `json:"scores"`               // the risk over time
		Exceptions      []json.RawMessage `json:"exceptions"`           // the order's exception records (process.Exception)
		Unreadable      []string          `json:"unreadable,omitempty"` // stored records left out of history, and why
	}{OrderID: id, Record: record, Timeline: s.timeline(r.Context(), id, v.Timeline, refs), TimelineDropped: refs.Dropped,
		Decisions: views, History: hist, Scores: riskSeries(v), Exceptions: exceptions, Unreadable: unreadable}
	writeJSON(w, http.StatusOK, out)
}

// fail answers a request that could not be served: 503 while the store takes no
// writes (the disk is nearly full; retry once space returns), 500 otherwise.
func (s *server) fail(w http.ResponseWriter, err error) {
	s.log.Error("request failed", "err", err)
	code := http.StatusInternalServerError
	if errors.Is(err, store.ErrNoSpace) {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func raws(bs [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(bs))
	for i, b := range bs {
		out[i] = b
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
