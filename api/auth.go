package api

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// requireToken guards a mutating handler: the request must carry
// "Authorization: Bearer <token>" with the configured token. With no token
// configured every mutating request is refused, so a forgotten setting never
// leaves the API open.
func (s *server) requireToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.o.Token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": "mutating requests are disabled: set ORDERWATCH_API_TOKEN in orderwatch's environment (the service's env file) and restart it",
			})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderwatch"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h(w, r)
	}
}

// readsNeedToken asks the bearer token of every request under /api/, reads
// included (mutating ones are guarded already).
func (s *server) readsNeedToken(next http.Handler) http.Handler {
	guarded := s.requireToken(next.ServeHTTP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			guarded(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
