package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// incidentsList serves GET
// /api/v1/incidents?state=open|closed&owner=TEAM&kind=K&limit=N&cursor=C: a
// page of incident records (process.Incident), in the order they started,
// and in "next" the cursor of the next page, "" on the last.
func (s *server) incidentsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := pageParams(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	state, owner, kind := q.Get("state"), q.Get("owner"), q.Get("kind")
	if state != "" && state != process.IncidentOpen && state != process.IncidentClosed {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state %q: want %s or %s", state, process.IncidentOpen, process.IncidentClosed))
		return
	}
	var bad error
	match := func(raw []byte) bool {
		var inc process.Incident
		if err := json.Unmarshal(raw, &inc); err != nil {
			bad = err
			return false
		}
		return (state == "" || inc.State == state) && (owner == "" || inc.Owner == owner) && (kind == "" || inc.Kind == kind)
	}
	recs, next, err := s.o.Store.IncidentsPage(after, limit, match)
	if err != nil {
		s.fail(w, err)
		return
	}
	if bad != nil {
		s.log.Warn("incident records that do not decode, left out of the list", "err", bad)
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": raws(recs), "next": encodeCursor(next)})
}

// incidentShow serves GET /api/v1/incidents/{id}: the incident's record, with
// the orders it affects.
func (s *server) incidentShow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, err := s.o.Store.Incident(id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %s not found: list them with GET /api/v1/incidents", clip(id, 128)))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(v))
}
