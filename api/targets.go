package api

import (
	"net/http"

	"github.com/orderwatch/orderwatch/actions"
)

// TargetLister describes the delivery targets of the executor.
type TargetLister interface {
	Targets() []actions.TargetStatus
}

// targets serves GET /api/v1/targets: each delivery target (a JetStream subject,
// an action's webhook) with its circuit breaker and queue.
func (s *server) targets(w http.ResponseWriter, _ *http.Request) {
	if s.o.Targets == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this instance runs no executor"})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Targets []actions.TargetStatus `json:"targets"`
	}{s.o.Targets.Targets()})
}
