package api

import "net/http"

// policy shows the policy in force, as its file says it (webhooks name their
// secret's variable, never the secret).
func (s *server) policy(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.o.Policy.Policy())
}

// policyReloaded is the answer of a reload.
type policyReloaded struct {
	Version string `json:"version"`
	Rules   int    `json:"rules"`
}

// reloadPolicy puts the policy file in force, as SIGHUP does. A file that does not
// load is 422 with the reason, and the policy in force stays.
func (s *server) reloadPolicy(w http.ResponseWriter, _ *http.Request) {
	p, err := s.o.Policy.Reload()
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, policyReloaded{Version: p.Version, Rules: len(p.Rules)})
}
