package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/orderwatch/orderwatch/process"
)

// exceptionsList serves GET
// /api/v1/exceptions?owner=TEAM&class=C&open=1|0&order=ID&limit=N&cursor=C: a
// page of exception records, by order then deadline and time, and in "next"
// the cursor of the next page, "" on the last.
func (s *server) exceptionsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := pageParams(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	owner, class, order := q.Get("owner"), q.Get("class"), q.Get("order")
	var open *bool
	switch v := q.Get("open"); v {
	case "":
	case "1", "true":
		t := true
		open = &t
	case "0", "false":
		f := false
		open = &f
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("open %q: want 1 (open exceptions only) or 0 (closed ones only)", v))
		return
	}
	var bad error
	match := func(raw []byte) bool {
		var x process.Exception
		if err := json.Unmarshal(raw, &x); err != nil {
			bad = err
			return false
		}
		return (owner == "" || x.Owner == owner) && (class == "" || x.Class == class) &&
			(order == "" || x.Order == order) && (open == nil || x.Open == *open)
	}
	recs, next, err := s.o.Store.ExceptionsPage(after, limit, match)
	if err != nil {
		s.fail(w, err)
		return
	}
	if bad != nil {
		s.log.Warn("exception records that do not decode, left out of the list", "err", bad)
	}
	writeJSON(w, http.StatusOK, map[string]any{"exceptions": s.exceptionsNow(recs), "next": encodeCursor(next)})
}

// exceptionsNow returns exception records as stored, with the reminders of
// the open ones as of now (Options.Clock): they are derived, not written at
// each reminder (process.ExceptionAt). A record that does not decode is
// shown as stored, and logged.
func (s *server) exceptionsNow(recs [][]byte) []json.RawMessage {
	now := time.Now
	if s.o.Clock != nil {
		now = s.o.Clock
	}
	t := now()
	out := make([]json.RawMessage, len(recs))
	var bad int
	var badErr error
	for i, raw := range recs {
		v, err := process.ExceptionAt(raw, t)
		if err != nil {
			v, bad, badErr = raw, bad+1, err
		}
		out[i] = v
	}
	if bad > 0 {
		s.log.Warn("exception records whose reminders do not read, shown as stored", "records", bad, "err", badErr)
	}
	return out
}
