package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
)

// maxSelection bounds the decisions one bulk answer takes.
const maxSelection = 100

// approvalRow is a decision waiting for approval, and whether the signed-in
// user may answer it.
type approvalRow struct {
	actions.View
	Team      string
	CanAnswer bool
}

// approvalsView is the approvals page's data.
type approvalsView struct {
	Rows      []approvalRow
	Total     int
	Next      string
	CanAnswer bool // some row has the answer form: the page shows the selection form
}

// approvalsPage serves GET /approvals: the decisions waiting for approval (GET
// /api/v1/approvals), by team and then the longest waiting first, with the
// answer forms of those the user may answer.
func (s *server) approvalsPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := url.Values{"limit": {strconv.Itoa(consolePage)}}
	if c := r.URL.Query().Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var page struct {
		Approvals []actions.View `json:"approvals"`
		Total     int            `json:"total"`
		Next      string         `json:"next"`
	}
	if err := s.consoleAPI(r, http.MethodGet, "/api/v1/approvals?"+q.Encode(), nil, &page); err != nil {
		s.apiFailed(w, p, err)
		return
	}
	v := approvalsView{Total: page.Total}
	for _, a := range page.Approvals {
		row := approvalRow{View: a}
		if a.Waiting != nil {
			row.Team = a.Waiting.Team
		}
		row.CanAnswer = p.MayAnswer(row.Team)
		v.CanAnswer = v.CanAnswer || row.CanAnswer
		v.Rows = append(v.Rows, row)
	}
	slices.SortStableFunc(v.Rows, func(a, b approvalRow) int {
		if c := cmp.Compare(a.Team, b.Team); c != 0 {
			return c
		}
		return cmp.Compare(waited(b.View), waited(a.View))
	})
	if page.Next != "" {
		v.Next = "/approvals?" + url.Values{"cursor": {page.Next}}.Encode()
	}
	s.render(w, r, http.StatusOK, "approvals", "Approvals", p, v)
}

func waited(v actions.View) float64 {
	if v.Waiting == nil {
		return 0
	}
	return v.Waiting.AgeSeconds
}

// answerForm reads an answer's form: approve or reject, and the reason.
func answerForm(r *http.Request) (answer, reason string, msg string) {
	answer, reason = r.PostFormValue("answer"), strings.TrimSpace(r.PostFormValue("reason"))
	if answer != "approve" && answer != "reject" {
		return "", "", "The form's answer must be approve or reject."
	}
	if msg := checkReason(reason, true); msg != "" {
		return "", "", msg
	}
	return answer, reason, ""
}

// answerDecision answers decision id through the API, as the signed-in user.
func (s *server) answerDecision(r *http.Request, id, answer, reason string) error {
	return s.consoleAPI(r, http.MethodPost, "/api/v1/approvals/"+url.PathEscape(id)+"/"+answer,
		map[string]string{"reason": reason}, nil)
}

// answerOne serves POST /approvals/{id}/answer (form: answer, reason,
// csrf_token): it answers through the API and goes back to /approvals with
// what happened; a refusal (a viewer, another team's decision, one answered
// already) is answered with the API's status and why.
func (s *server) answerOne(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	answer, reason, msg := answerForm(r)
	if msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	if err := s.answerDecision(r, id, answer, reason); err != nil {
		s.apiFailed(w, p, err)
		return
	}
	s.redirectWithFlash(w, r, "/approvals", flash{Msg: fmt.Sprintf("Decision %s %s by %s.", id, pastTense(answer), p.Name)})
}

func pastTense(answer string) string {
	if answer == "approve" {
		return "approved"
	}
	return "rejected"
}

// selection reads the decisions a bulk form selected (the form signedIn read):
// at least one, at most maxSelection, each once. It stops past maxSelection, so
// it takes time linear in the form's fields.
func selection(r *http.Request) ([]string, string) {
	var ids []string
	for _, id := range r.PostForm["decision"] {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
			if len(ids) == maxSelection {
				return nil, fmt.Sprintf("More than %d decisions are selected: answer at most %d at once.", maxSelection, maxSelection)
			}
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, "Select at least one decision (the checkboxes of the table)."
	}
	return ids, ""
}

// previewItem is a selected decision, as the preview shows it before it is
// answered.
type previewItem struct {
	ID    string
	View  *actions.View
	Error string // why it could not be read
}

// previewView is the preview page's data.
type previewView struct {
	Items          []previewItem
	Answer, Reason string
}

// previewAnswers serves POST /approvals/preview (form: decision..., answer,
// reason): the selected decisions as they stand, and the form that confirms the
// answer; nothing is answered yet.
func (s *server) previewAnswers(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ids, msg := selection(r)
	if msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	v := previewView{Answer: r.PostFormValue("answer"), Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	if v.Answer != "approve" && v.Answer != "reject" {
		s.consoleError(w, p, http.StatusBadRequest, "The form's answer must be approve or reject.")
		return
	}
	// The reason may still be typed on the preview, but not one the answer
	// would refuse.
	if msg := checkReason(v.Reason, false); msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	for _, id := range ids {
		it := previewItem{ID: id}
		var dv actions.View
		if err := s.consoleAPI(r, http.MethodGet, "/api/v1/decisions/"+url.PathEscape(id), nil, &dv); err != nil {
			it.Error = err.Error()
			if ae := new(apiError); errors.As(err, &ae) {
				it.Error = ae.Msg
			}
		} else {
			it.View = &dv
		}
		v.Items = append(v.Items, it)
	}
	s.render(w, r, http.StatusOK, "preview", "Confirm answers", p, v)
}

// applyAnswers serves POST /approvals/apply (form: decision..., answer,
// reason): it answers each selected decision through the API and goes back to
// /approvals with how many were answered and why any was refused. When none
// is answered the page says why with the first refusal's status.
func (s *server) applyAnswers(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ids, msg := selection(r)
	if msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	answer, reason, msg := answerForm(r)
	if msg != "" {
		s.consoleError(w, p, http.StatusBadRequest, msg)
		return
	}
	var done, refused []string
	var first error
	for _, id := range ids {
		err := s.answerDecision(r, id, answer, reason)
		if err == nil {
			done = append(done, id)
			continue
		}
		if first == nil {
			first = err
		}
		why := err.Error()
		if ae := new(apiError); errors.As(err, &ae) {
			why = ae.Msg
		}
		refused = append(refused, id+": "+why)
	}
	if len(done) == 0 {
		s.apiFailed(w, p, first)
		return
	}
	f := flash{Msg: fmt.Sprintf("%d %s by %s: %s.", len(done), pastTense(answer), p.Name, strings.Join(done, ", "))}
	if len(refused) > 0 {
		f.Error = true
		f.Msg += fmt.Sprintf(" %d refused: %s.", len(refused), strings.Join(refused, "; "))
	}
	s.redirectWithFlash(w, r, "/approvals", f)
}
