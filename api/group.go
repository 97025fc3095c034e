package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"

	"github.com/orderwatch/orderwatch/cluster"
)

// Peers reaches the other members of the group (a cluster.Peers), so that any
// member answers for any order, decision and approval.
type Peers interface {
	Self() string
	// OwnerOf is the member that owns an order's partition, "" when none does.
	OwnerOf(order string) string
	// Others are the other members alive.
	Others() []string
	Forward(ctx context.Context, member string, r *http.Request, body []byte) (cluster.Forwarded, error)
}

// forwarded reports whether a request came from another member (it is then
// answered here alone) or whether this instance has no peers.
func (s *server) alone(r *http.Request) bool {
	return s.o.Peers == nil || r.Header.Get(cluster.HeaderForwarded) != ""
}

// relay writes a member's answer.
func relay(w http.ResponseWriter, f cluster.Forwarded, from string) {
	if f.ContentType != "" {
		w.Header().Set("Content-Type", f.ContentType)
	}
	w.Header().Set("Orderwatch-Member", from)
	w.WriteHeader(f.Status)
	_, _ = w.Write(f.Body)
}

// readBody reads a request's body (bounded like every body of the API) and
// puts it back for the local handler.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Body == nil {
		return nil, true
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxBodyBytes))
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, true
}

// toOwner serves a request about one order on the member that owns it.
func (s *server) toOwner(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.alone(r) {
			h(w, r)
			return
		}
		owner := s.o.Peers.OwnerOf(r.PathValue("id"))
		if owner == "" || owner == s.o.Peers.Self() {
			h(w, r)
			return
		}
		f, err := s.o.Peers.Forward(r.Context(), owner, r, nil)
		if err != nil {
			writeError(w, http.StatusBadGateway, err.Error())
			return
		}
		relay(w, f, owner)
	}
}

// orPeers serves a request about one decision here, or, when it is not known
// here (404), on the member that knows it: decisions stay with the member that
// made them.
func (s *server) orPeers(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.alone(r) {
			h(w, r)
			return
		}
		body, local, ok := recordLocal(w, r, h)
		if !ok {
			return
		}
		if local.Code != http.StatusNotFound {
			copyRecorded(w, local)
			return
		}
		var failed []string
		for _, m := range s.o.Peers.Others() {
			f, err := s.o.Peers.Forward(r.Context(), m, r, body)
			if err != nil {
				s.log.Warn("member did not answer a forwarded request", "member", m, "err", err)
				failed = append(failed, m)
				continue
			}
			if f.Status != http.StatusNotFound {
				relay(w, f, m)
				return
			}
		}
		if len(failed) > 0 {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("not known here, and members %s did not answer: try again", strings.Join(failed, ", ")))
			return
		}
		copyRecorded(w, local)
	}
}

// recordLocal reads a request's body (bounded) and serves it with the local
// handler into a recorder, before the request goes to other members.
func recordLocal(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) ([]byte, *httptest.ResponseRecorder, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return nil, nil, false
	}
	local := httptest.NewRecorder()
	h(local, r)
	return body, local, true
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// page is a list answer of the API: its items under key, the cursor of the
// next page, and for approvals the total.
type page struct {
	items []json.RawMessage
	ids   []string
	next  string
	total int
}

// merged serves a list of decisions (key "decisions" or "approvals") over the
// group: each member's page after the same cursor, merged newest first (ids
// sort by time across members), cut at the limit.
func (s *server) merged(key string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.alone(r) {
			h(w, r)
			return
		}
		limit, _, err := pageParams(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		local := httptest.NewRecorder()
		h(local, r)
		if local.Code != http.StatusOK {
			copyRecorded(w, local)
			return
		}
		pages := []page{}
		p, err := parsePage(key, local.Body.Bytes())
		if err != nil {
			s.fail(w, err)
			return
		}
		pages = append(pages, p)
		members := []string{s.o.Peers.Self()}
		var unreachable []string
		for _, m := range s.o.Peers.Others() {
			f, err := s.o.Peers.Forward(r.Context(), m, r, nil)
			if err == nil && f.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", f.Status, f.Body)
			}
			if err == nil {
				p, err = parsePage(key, f.Body)
			}
			if err != nil {
				s.log.Warn("member's page left out of a group list", "member", m, "err", err)
				unreachable = append(unreachable, m)
				continue
			}
			pages = append(pages, p)
			members = append(members, m)
		}
		type item struct {
			id  string
			raw json.RawMessage
		}
		var all []item
		more, total := false, 0
		for _, p := range pages {
			for i := range p.items {
				all = append(all, item{p.ids[i], p.items[i]})
			}
			more = more || p.next != ""
			total += p.total
		}
		slices.SortFunc(all, func(a, b item) int { return cmp.Compare(b.id, a.id) })
		if len(all) > limit {
			all, more = all[:limit], true
		}
		out := make([]json.RawMessage, len(all))
		for i, it := range all {
			out[i] = it.raw
		}
		next := ""
		if more && len(all) > 0 {
			next = encodeCursor(all[len(all)-1].id)
		}
		body := map[string]any{key: out, "next": next, "members": members}
		if key == "approvals" {
			body["total"] = total
		}
		if len(unreachable) > 0 {
			body["unreachable"] = unreachable
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func parsePage(key string, b []byte) (page, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return page{}, fmt.Errorf("api: read a list page: %w", err)
	}
	var p page
	if err := json.Unmarshal(raw[key], &p.items); err != nil {
		return page{}, fmt.Errorf("api: read a list page's %s: %w", key, err)
	}
	var next string
	if n, ok := raw["next"]; ok {
		_ = json.Unmarshal(n, &next)
	}
	p.next = next
	if t, ok := raw["total"]; ok {
		_ = json.Unmarshal(t, &p.total)
	}
	for _, it := range p.items {
		var v struct {
			Decision struct {
				ID string `json:"id"`
			} `json:"decision"`
		}
		if err := json.Unmarshal(it, &v); err != nil || v.Decision.ID == "" {
			return page{}, fmt.Errorf("api: a %s item without a decision id", key)
		}
		p.ids = append(p.ids, v.Decision.ID)
	}
	return p, nil
}
