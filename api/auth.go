package api

import (
	"net/http"
	"strings"

	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/cluster"
)

// Why a request was refused by the access checks: more reasons of
// orderwatch_api_requests_refused_total.
const (
	refusedUnauthenticated = "unauthenticated" // 401: no principal, or a wrong bearer token
	refusedForbidden       = "forbidden"       // 403: the principal's role does not allow it
	refusedCSRF            = "csrf"            // 403: a browser's POST without its CSRF token
	refusedDisabled        = "disabled"        // 403: no token, user or proxy configured at all
)

// identify resolves who makes each request and puts the principal in its
// context (auth.FromContext). A request forwarded by another member over NATS
// carries the principal that member resolved (cluster.HeaderPrincipal, sealed
// with the group's key); the header of a request that came over HTTP is removed
// and never believed. The principal resolved here is sealed into that header,
// so that a request this member forwards keeps it.
func (s *server) identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, fromPeer := cluster.ForwardedFrom(r.Context()); fromPeer {
			if v := r.Header.Get(cluster.HeaderPrincipal); v != "" {
				p, err := s.auth.OpenPrincipal(v)
				if err != nil {
					s.log.Warn("forwarded request's principal refused", "err", err)
				} else {
					r = r.WithContext(auth.NewContext(r.Context(), p))
				}
				next.ServeHTTP(w, r)
				return
			}
		} else {
			r.Header.Del(cluster.HeaderPrincipal)
		}
		p, ok, err := s.auth.Resolve(r)
		if err == nil && ok {
			r = r.WithContext(auth.NewContext(r.Context(), p))
			if s.o.Peers != nil {
				r.Header.Set(cluster.HeaderPrincipal, s.auth.SealPrincipal(p))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// require guards a handler: the request's principal must have at least role
// need, and a browser's (session or proxy) mutating request must carry its CSRF
// token. With nobody configured (no shared token, no users, no proxy) every
// request is refused, so a forgotten setting never leaves the API open.
func (s *server) require(need auth.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		switch {
		case !ok && !s.auth.Configured():
			s.refuse(w, http.StatusForbidden, refusedDisabled,
				"mutating requests are disabled: set ORDERWATCH_API_TOKEN in orderwatch's environment (the service's env file), or give people a --users file, and restart it")
		case !ok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderwatch"`)
			s.refuse(w, http.StatusUnauthorized, refusedUnauthenticated,
				"missing or wrong bearer token: send Authorization: Bearer with ORDERWATCH_API_TOKEN or your token (orderwatch users token NAME), or sign in at /signin")
		case !safeMethod(r.Method) && !s.auth.CheckCSRF(p, r):
			s.refuse(w, http.StatusForbidden, refusedCSRF,
				"missing or wrong CSRF token: send the "+auth.CSRFHeader+" header with the csrf_token of GET /api/v1/whoami")
		case !p.Can(need):
			s.refuse(w, http.StatusForbidden, refusedForbidden,
				"user "+p.Name+" is a "+string(p.Role)+": this needs the "+string(need)+" role (README \"People and roles\")")
		default:
			h(w, r)
		}
	}
}

func (s *server) refuse(w http.ResponseWriter, code int, reason, msg string) {
	s.m.refused.WithLabelValues(reason).Inc()
	writeError(w, code, msg)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// readsNeedToken asks a principal of every request under /api/, reads included
// (mutating ones are guarded already): any role may read.
func (s *server) readsNeedToken(next http.Handler) http.Handler {
	guarded := s.require(auth.RoleViewer, next.ServeHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			guarded(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// whoami serves GET /api/v1/whoami: the principal of the request (name, role,
// teams, how it was resolved) and, for a browser, the CSRF token its mutating
// requests send; 401 when the request carries none.
func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		s.refuse(w, http.StatusUnauthorized, refusedUnauthenticated, "nobody: send a bearer token or sign in at /signin")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		auth.Principal
		CSRFToken string `json:"csrf_token,omitempty"`
	}{p, s.auth.CSRFToken(p)})
}
