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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orderwatch/orderwatch/store"
)

// Check reports whether one part is ready, and why not.
type Check func() (ok bool, reason string)

// Options configures the HTTP handler.
type Options struct {
	Store    *store.Store        // required
	Gatherer prometheus.Gatherer // nil means no /metrics
	Ready    map[string]Check    // named readiness checks; /readyz is 200 when all pass
	Logger   *slog.Logger        // nil means discard
}

// Handler returns the HTTP handler. It is safe for concurrent use.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{o: o, log: o.Logger.With("component", "api")}
	mux := http.NewServeMux()
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelError)}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /api/v1/stats", s.stats)
	mux.HandleFunc("GET /api/v1/orders/{id}", s.order)
	mux.HandleFunc("GET /api/v1/decisions", s.decisions)
	return mux
}

type server struct {
	o   Options
	log *slog.Logger
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

func (s *server) stats(w http.ResponseWriter, _ *http.Request) {
	st, err := s.o.Store.Stats()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

type decisionView struct {
	Decision json.RawMessage `json:"decision"`
	Outcome  json.RawMessage `json:"outcome,omitempty"`
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
	out := struct {
		OrderID   string            `json:"order_id"`
		Record    json.RawMessage   `json:"record"`
		Timeline  []json.RawMessage `json:"timeline"`
		Decisions []decisionView    `json:"decisions"`
	}{OrderID: id, Record: v.Record, Timeline: raws(v.Timeline), Decisions: []decisionView{}}
	for i, d := range v.Decisions {
		out.Decisions = append(out.Decisions, decisionView{Decision: d, Outcome: v.Outcomes[i]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) decisions(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a number from 1 to 10000"})
			return
		}
		limit = n
	}
	ds, err := s.o.Store.Decisions(limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": raws(ds)})
}

func (s *server) fail(w http.ResponseWriter, err error) {
	s.log.Error("request failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
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
