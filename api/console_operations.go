package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
)

// operationsView is the operations page's data.
type operationsView struct {
	KillSwitch *struct {
		Runtime actions.KillState `json:"runtime"`
		Policy  bool              `json:"policy"`
		Halted  bool              `json:"halted"`
	}
	KillSwitchError string
	PolicyVersion   string
	PolicyError     string
	DeadLetters     []metricRow
	Lag             []metricRow
	IsAdmin         bool
}

// metricRow is a row of a table of metrics.
type metricRow struct {
	Name  string
	Value float64
}

// operationsPage serves GET /operations: the kill switch (GET
// /api/v1/killswitch) with, for admins, the form that turns it; the policy in
// force (GET /api/v1/policy) and its reload button; dead letters by reason and
// the consumer's lag from the metrics /metrics serves.
func (s *server) operationsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v := operationsView{IsAdmin: p.Can(auth.RoleAdmin)}
	if err := s.consoleAPI(r, http.MethodGet, "/api/v1/killswitch", nil, &v.KillSwitch); err != nil {
		v.KillSwitch, v.KillSwitchError = nil, consoleMessage(err)
	}
	var pol struct {
		Version string `json:"version"`
	}
	if err := s.consoleAPI(r, http.MethodGet, "/api/v1/policy", nil, &pol); err != nil {
		v.PolicyError = consoleMessage(err)
	}
	v.PolicyVersion = pol.Version
	for _, f := range s.gather() {
		switch f.GetName() {
		case "orderwatch_dlq_total":
			for _, m := range f.GetMetric() {
				v.DeadLetters = append(v.DeadLetters, metricRow{Name: labels(m)["reason"], Value: m.GetCounter().GetValue()})
			}
		case "orderwatch_consumer_pending_messages":
			v.Lag = append(v.Lag, metricRow{Name: "pending: in ORDERS, not yet delivered", Value: gaugeSum(f.GetMetric())})
		case "orderwatch_consumer_ack_pending_messages":
			v.Lag = append(v.Lag, metricRow{Name: "ack pending: delivered, not yet acked", Value: gaugeSum(f.GetMetric())})
		}
	}
	slices.SortFunc(v.DeadLetters, func(a, b metricRow) int { return cmp.Compare(a.Name, b.Name) })
	s.render(w, r, http.StatusOK, "operations", "Operations", p, v)
}

// consoleMessage is what a page says of a failed API call.
func consoleMessage(err error) string {
	if ae := new(apiError); errors.As(err, &ae) {
		if ae.Code == http.StatusNotFound {
			return "not served by this instance"
		}
		return ae.Msg
	}
	return err.Error()
}

// turnKillSwitch serves POST /operations/killswitch (form: on, reason,
// confirm, csrf_token): with the confirmation box ticked it turns the kill
// switch through the API as the signed-in admin (POST /api/v1/killswitch).
func (s *server) turnKillSwitch(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if r.PostFormValue("confirm") == "" {
		s.consoleError(w, p, http.StatusBadRequest, "Tick the confirmation box to turn the kill switch.")
		return
	}
	var on bool
	switch r.PostFormValue("on") {
	case "true":
		on = true
	case "false":
	default:
		s.consoleError(w, p, http.StatusBadRequest, "The form's on must be true or false.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if msg := checkReason(reason, true); msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	if err := s.consoleAPI(r, http.MethodPost, "/api/v1/killswitch", map[string]any{"on": on, "reason": reason}, nil); err != nil {
		s.apiFailed(w, p, err)
		return
	}
	state := "off: actions flow again"
	if on {
		state = "on: no action is executed"
	}
	s.redirectWithFlash(w, r, "/operations", flash{Msg: fmt.Sprintf("Kill switch turned %s (by %s).", state, p.Name)})
}

// reloadPolicyForm serves POST /operations/policy/reload (form: csrf_token):
// the policy file is put in force through the API (POST
// /api/v1/policy/reload), or the page says why the policy in force stays.
func (s *server) reloadPolicyForm(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var res policyReloaded
	err := s.consoleAPI(r, http.MethodPost, "/api/v1/policy/reload", nil, &res)
	if ae := new(apiError); errors.As(err, &ae) && ae.Code == http.StatusUnprocessableEntity {
		s.redirectWithFlash(w, r, "/operations", flash{Msg: "The policy file was not put in force, the policy in force stays: " + ae.Msg, Error: true})
		return
	}
	if err != nil {
		s.apiFailed(w, p, err)
		return
	}
	s.redirectWithFlash(w, r, "/operations", flash{Msg: fmt.Sprintf("Policy %s in force (%d rules).", res.Version, res.Rules)})
}

func gaugeSum(ms []*dto.Metric) float64 {
	var n float64
	for _, m := range ms {
		n += m.GetGauge().GetValue()
	}
	return n
}
