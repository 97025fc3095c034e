package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/store"
)

// decisionsList serves GET /api/v1/decisions?order=ID&since=T&limit=N&cursor=C:
// a page of decisions with their state, newest first, and in "next" the cursor
// of the next page, "" on the last.
func (s *server) decisionsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, after, err := pageParams(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	dq := store.DecisionsQuery{Order: q.Get("order"), Limit: limit}
	if since := q.Get("since"); since != "" {
		t, err := parseSince(since, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		dq.Since = t
	}
	dvs, next, err := s.o.Store.DecisionsPage(dq, after)
	if err != nil {
		s.fail(w, err)
		return
	}
	views, err := s.views(dvs)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"decisions": views, "next": encodeCursor(next)})
}

// parseSince reads an RFC 3339 time or a duration back from now ("2h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q: want an RFC 3339 time (2026-11-22T14:00:00Z) or a duration back from now (90m)", v)
}

func (s *server) views(dvs []store.DecisionView) ([]actions.View, error) {
	now := time.Now()
	out := make([]actions.View, 0, len(dvs))
	for _, dv := range dvs {
		v, err := actions.NewView(dv, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// decisionShow serves GET /api/v1/decisions/{id}: one decision, its trail,
// attempts and outcomes.
func (s *server) decisionShow(w http.ResponseWriter, r *http.Request) {
	s.writeDecision(w, r.PathValue("id"))
}

// writeDecision answers with one decision, its trail, attempts and outcomes.
func (s *server) writeDecision(w http.ResponseWriter, id string) {
	dv, err := s.o.Store.Decision(id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "decision "+id+" is not known")
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	v, err := actions.NewView(dv, time.Now())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// approvals serves GET /api/v1/approvals?waiting=approval|ack|all&limit=N&cursor=C:
// a page of decisions that wait for a person, oldest first, with their age, how
// many wait in all, and in "next" the cursor of the next page ("" on the last).
func (s *server) approvals(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("waiting")
	switch kind {
	case "":
		kind = actions.OpenApproval
	case actions.OpenApproval, actions.OpenAck:
	case "all":
		kind = ""
	default:
		writeError(w, http.StatusBadRequest, "waiting must be approval, ack or all")
		return
	}
	limit, after, err := pageParams(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	vs, total, next, err := s.o.Governor.WaitingPage(kind, after, limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"approvals": vs, "total": total, "next": encodeCursor(next)})
}

// answerBody is the body of approve, reject and ack.
type answerBody struct {
	By     string `json:"by"` // a machine client's: whom it answers for
	Reason string `json:"reason"`
}

// answer serves the POSTs that answer a waiting decision. The trail keeps who
// answers and why: the signed-in user (a "by" in the body is ignored then), or
// "service" for the shared token, with the body's "by", when given, kept as
// whom the service acts for. An approver answers only decisions that wait on
// one of her teams, checked by the Governor in the commit that answers.
func (s *server) answer(kind string, reasonRequired bool, fn func(id string, who actions.Answerer, reason string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b answerBody
		if msg := decodeBody(w, r, &b); msg != "" {
			writeError(w, http.StatusBadRequest, msg+`: the body is {"reason": "why"}`)
			return
		}
		who, ok := s.answerer(w, r, b.By)
		if !ok {
			return
		}
		b.Reason = strings.TrimSpace(b.Reason)
		if msg := checkText("reason", b.Reason, 1000, reasonRequired); msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		id := r.PathValue("id")
		err := fn(id, who, b.Reason)
		switch {
		case errors.Is(err, actions.ErrNotFound):
			writeError(w, http.StatusNotFound, "decision "+id+" is not known")
			return
		case errors.Is(err, actions.ErrForbidden):
			p, _ := auth.FromContext(r.Context())
			s.refuse(w, http.StatusForbidden, refusedForbidden, fmt.Sprintf("%s; user %s approves for %s",
				strings.TrimPrefix(err.Error(), "actions: "), p.Name, strings.Join(p.Teams, ", ")))
			return
		case errors.Is(err, actions.ErrNotWaiting), errors.Is(err, actions.ErrHalted):
			writeError(w, http.StatusConflict, err.Error())
			return
		case errors.Is(err, actions.ErrBusy):
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		case err != nil:
			s.fail(w, err)
			return
		}
		p, _ := auth.FromContext(r.Context())
		s.log.Info("decision answered over http", "decision", id, "answer", kind, "by", who.By,
			"on_behalf_of", who.OnBehalfOf, "via", p.Via)
		s.writeDecision(w, id)
	}
}

// answerer is who the trail records for a request: the signed-in user, who may
// answer for her teams (a declared by is ignored), or the service for the shared
// token, with the by it declares (optional, checked) kept apart. It writes the
// 400 itself.
func (s *server) answerer(w http.ResponseWriter, r *http.Request, declared string) (actions.Answerer, bool) {
	p, ok := auth.FromContext(r.Context())
	if ok && !p.IsService() {
		who := actions.Answerer{By: p.Name, May: p.MayAnswer}
		if p.Can(auth.RoleAdmin) {
			who.May = nil
		}
		return who, true
	}
	declared = strings.TrimSpace(declared)
	if msg := checkText("by", declared, 128, false); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return actions.Answerer{}, false
	}
	return actions.Answerer{By: actions.ServiceAnswerer, OnBehalfOf: declared}, true
}

// killSwitch serves GET /api/v1/killswitch: the switch this member applies (in a
// group, the group's).
func (s *server) killSwitch(w http.ResponseWriter, _ *http.Request) {
	st, policy := s.o.Governor.KillSwitch()
	writeJSON(w, http.StatusOK, map[string]any{"runtime": st, "policy": policy, "halted": st.On || policy})
}

// setKillSwitch serves POST /api/v1/killswitch with {"on": true, "reason":
// "..."}: the signed-in admin turns it, or the service (with "by", whom it acts
// for, when given). In a group it
// sets the group's switch, which every member follows.
func (s *server) setKillSwitch(w http.ResponseWriter, r *http.Request) {
	var b struct {
		On     *bool  `json:"on"`
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	if msg := decodeBody(w, r, &b); msg != "" || b.On == nil {
		if msg == "" {
			msg = "on is missing"
		}
		writeError(w, http.StatusBadRequest, msg+`: the body is {"on": true, "reason": "why"}`)
		return
	}
	who, ok := s.answerer(w, r, b.By)
	if !ok {
		return
	}
	b.Reason = strings.TrimSpace(b.Reason)
	if msg := checkText("reason", b.Reason, 1000, true); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	st, err := s.o.Governor.SetKillSwitch(r.Context(), *b.On, who, b.Reason)
	if err != nil {
		s.fail(w, err)
		return
	}
	_, policy := s.o.Governor.KillSwitch()
	writeJSON(w, http.StatusOK, map[string]any{"runtime": st, "policy": policy, "halted": st.On || policy})
}

// decodeBody reads a small JSON body with no unknown fields; it returns what is
// wrong, or "".
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) string {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return "bad body: " + err.Error()
	}
	return ""
}

// checkText checks a person's name or reason: present when required, bounded, no
// control characters.
func checkText(field, v string, maxLen int, required bool) string {
	switch {
	case v == "" && required:
		return field + " is required: the trail keeps who answered and why"
	case len(v) > maxLen:
		return fmt.Sprintf("%s is longer than %d bytes", field, maxLen)
	case strings.ContainsFunc(v, unicode.IsControl):
		return field + " holds control characters"
	}
	return ""
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
