package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/process"
)

// consolePages are the console's pages, each with the elements of the DOM
// contract the browser tests rely on.
var consolePages = map[string][]string{
	"/":           {`<table id="at-risk">`, `<form id="filters" method="get"`, `name="warehouse"`, `name="class"`, `name="team"`, `name="tier"`, `name="sort"`, `<meta http-equiv="refresh" content="30">`},
	"/approvals":  {`<table id="approvals">`},
	"/models":     {`<table id="models">`},
	"/operations": {`<section id="killswitch"`, `<table id="dead-letters">`, `<table id="lag">`},
}

// page is a console page as a signed-in browser gets it.
func (b *browser) page(u string) (int, string) {
	b.t.Helper()
	code, body, _ := b.do("GET", u, "", "", nil)
	return code, body
}

// post sends a console form as a browser does.
func (b *browser) post(u string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	return b.do("POST", u, "application/x-www-form-urlencoded", form.Encode(), nil)
}

// csrfOf is the csrf_token a page's forms carry.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf_token in the page:\n%s", page)
	}
	return m[1]
}

// signedIn returns a browser signed in as name (its password is "<name>
// password").
func signedIn(t *testing.T, base, name string) *browser {
	t.Helper()
	b := newBrowser(t)
	if code, where := b.signIn(base, name, name+" password"); code != http.StatusSeeOther {
		t.Fatalf("%s signs in = %d %s, want 303", name, code, where)
	}
	return b
}

// consoleEnv serves the API with the console, people and everything the pages
// read: a real store, governor, open-orders index, policy, and models.
type consoleEnv struct {
	*approvalsEnv
	ppl *people
}

// fixedModels is the model registry's answer for the models page: the parts
// the page reads, as GET /api/v1/models shows them.
type fixedModels struct{}

func (fixedModels) Status() any {
	return []map[string]any{{
		"name":   "cutoff_risk",
		"live":   map[string]any{"version": "1.1.0", "sha256": "abc123", "threshold": 0.42, "metrics": map[string]any{"roc_auc": 0.888}},
		"shadow": map[string]any{"version": "1.2.0", "sha256": "def456", "threshold": 0.5},
		"pinned": "1.1.0",
		"versions": []map[string]any{
			{"version": "1.0.0", "state": "standby"},
			{"version": "1.1.0", "state": "serving"},
			{"version": "1.2.0", "state": "shadow"},
			{"version": "1.3.0", "state": "rejected", "reason": "bad_outputs", "error": "outputs NaN on the probe rows"},
		},
	}}
}
func (fixedModels) Activate(string, string) error { return nil }
func (fixedModels) Validate(string) error         { return nil }

// envPolicy is the env's policy, known once the env is made.
type envPolicy struct{ e **approvalsEnv }

func (p envPolicy) Policy() *actions.Policy          { return (*p.e).p }
func (p envPolicy) Reload() (*actions.Policy, error) { return (*p.e).p, nil }

func newConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	ppl := newPeople(t, auth.Options{})
	var e *approvalsEnv
	e = newApprovalsEnv(t, testToken, withAuth(ppl.a), func(o *api.Options) {
		o.OpenOrders = process.NewOpenIndex()
		o.Models = fixedModels{}
		o.Policy = envPolicy{&e}
	})
	return &consoleEnv{approvalsEnv: e, ppl: ppl}
}

// TestConsoleNeedsSignIn: every page and form sends a browser that is not
// signed in to /signin, and back to the page after.
func TestConsoleNeedsSignIn(t *testing.T) {
	e := newConsoleEnv(t)
	b := newBrowser(t)
	for _, p := range []string{"/", "/?sort=cutoff", "/orders/SO-1", "/orders", "/approvals", "/models", "/operations"} {
		code, _, hdr := b.do("GET", e.srv.URL+p, "", "", nil)
		if want := "/signin?next=" + url.QueryEscape(p); code != http.StatusSeeOther || hdr.Get("Location") != want {
			t.Errorf("GET %s = %d to %q, want 303 to %q", p, code, hdr.Get("Location"), want)
		}
	}
	for _, p := range []string{"/approvals/d-1/answer", "/approvals/preview", "/approvals/apply", "/operations/killswitch", "/operations/policy/reload"} {
		code, _, hdr := b.post(e.srv.URL+p, url.Values{"answer": {"approve"}, "reason": {"x"}})
		if code != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/signin?next=") {
			t.Errorf("POST %s = %d to %q, want 303 to /signin", p, code, hdr.Get("Location"))
		}
	}
}

// TestConsolePagesRender: each page renders for a signed-in viewer with the
// elements of the DOM contract, the navigation to the five pages, who is
// signed in and a sign-out button; an unknown order is a 404 page.
func TestConsolePagesRender(t *testing.T) {
	e := newConsoleEnv(t)
	b := signedIn(t, e.srv.URL, "vic")
	for p, want := range consolePages {
		code, body := b.page(e.srv.URL + p)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200:\n%s", p, code, body)
			continue
		}
		want = append(want, `<nav id="nav"`, `href="/"`, `href="/orders"`, `href="/approvals"`, `href="/models"`, `href="/operations"`,
			`>vic <span class="role">viewer`, `action="/signout"`, `name="csrf_token"`)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %s in the page", p, w)
			}
		}
	}
	if code, body := b.page(e.srv.URL + "/orders/SO-404"); code != http.StatusNotFound || !strings.Contains(body, "order SO-404 is not known") {
		t.Errorf("GET an unknown order = %d, want 404 saying so:\n%s", code, body)
	}
}

var (
	rowRe      = regexp.MustCompile(`<tr data-order="([^"]+)"`)
	linkRe     = regexp.MustCompile(`<a class="order-link" href="/orders/([^"]+)">`)
	nextRe     = regexp.MustCompile(`<a id="next" href="([^"]+)">`)
	decisionRe = regexp.MustCompile(`<tr data-decision="([^"]+)"`)
)

// TestConsoleAtRiskPage: the queue shows one row per order of GET
// /api/v1/orders, each linking to its order page, follows the filters and
// pages with a#next, and shows the API's refusal of a bad filter.
func TestConsoleAtRiskPage(t *testing.T) {
	ppl := newPeople(t, auth.Options{})
	m := newListMember(t)
	listStream(t, 70, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx, Auth: ppl.a}))
	t.Cleanup(srv.Close)
	b := signedIn(t, srv.URL, "vic")

	_, all := getList(t, srv.URL, "limit=500")
	seen := map[string]bool{}
	u := srv.URL + "/?at_risk=0"
	for range 5 {
		code, body := b.page(u)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d:\n%s", u, code, body)
		}
		rows, links := rowRe.FindAllStringSubmatch(body, -1), linkRe.FindAllStringSubmatch(body, -1)
		if len(rows) == 0 || len(rows) != len(links) {
			t.Fatalf("GET %s: %d rows and %d order links, want one link per row", u, len(rows), len(links))
		}
		for i, r := range rows {
			if links[i][1] != r[1] || seen[r[1]] {
				t.Errorf("row %s links to %s, or is shown twice", r[1], links[i][1])
			}
			seen[r[1]] = true
		}
		next := nextRe.FindStringSubmatch(body)
		if next == nil {
			break
		}
		u = srv.URL + strings.ReplaceAll(next[1], "&amp;", "&")
	}
	if len(seen) != all.Total || all.Total == 0 {
		t.Errorf("the pages showed %d orders, the API lists %d", len(seen), all.Total)
	}

	// Only at risk (the default), in one warehouse: the API's rows, in its order.
	_, api := getList(t, srv.URL, "at_risk=1&warehouse=DAL&sort=cutoff")
	code, body := b.page(srv.URL + "/?warehouse=DAL&sort=cutoff")
	rows := rowRe.FindAllStringSubmatch(body, -1)
	if code != 200 || len(rows) != len(api.Orders) || len(rows) == 0 {
		t.Fatalf("filtered page = %d with %d rows, the API has %d", code, len(rows), len(api.Orders))
	}
	for i, r := range rows {
		if r[1] != api.Orders[i].OrderID {
			t.Errorf("row %d = %s, the API's is %s", i, r[1], api.Orders[i].OrderID)
		}
	}
	if !strings.Contains(body, `<option value="cutoff" selected>`) || !strings.Contains(body, `name="warehouse" size="8" value="DAL"`) {
		t.Error("the filters form does not show the filters in force")
	}
	if code, body := b.page(srv.URL + "/?class=bogus"); code != http.StatusBadRequest || !strings.Contains(body, "class must be one of") {
		t.Errorf("a bad filter = %d, want 400 with the API's why:\n%s", code, body)
	}
}

// TestConsoleOrderPage: the order page shows the state, milestones with times,
// one timeline entry per history entry of the API, the risk chart and the
// decisions with their reasons and model versions.
func TestConsoleOrderPage(t *testing.T) {
	ppl := newPeople(t, auth.Options{})
	m := newPolicyMember(t, approvalsPolicy+`exception_owners: {credit: finance}
deadlines:
- {id: credit-hold-open, after: credit.hold, expect: credit.released, within: 4h, open: start, class: credit, category: policy}
`)
	listStream(t, 6, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx, Auth: ppl.a}))
	t.Cleanup(srv.Close)
	b := signedIn(t, srv.URL, "vic")

	var order struct {
		History    []struct{ Kind string }  `json:"history"`
		Scores     []struct{ Risk float64 } `json:"scores"`
		Exceptions []struct{ ID string }    `json:"exceptions"`
	}
	getJSON(t, srv.URL+"/api/v1/orders/SO-000", &order)
	if len(order.Scores) == 0 {
		t.Fatalf("GET /api/v1/orders/SO-000 has no scores: the chart has nothing to draw")
	}
	code, body := b.page(srv.URL + "/orders/SO-000")
	if code != http.StatusOK {
		t.Fatalf("GET /orders/SO-000 = %d:\n%s", code, body)
	}
	for _, w := range []string{`<section id="state"`, `<span class="milestone">created</span> <time datetime="2026-06-01T08:00:00Z">`,
		`<svg id="risk-chart"`, `<polyline points="`, `<ol id="timeline">`, `data-decision="`, "credit hold", "policy api-1"} {
		if !strings.Contains(body, w) {
			t.Errorf("order page: no %s", w)
		}
	}
	// SO-000's credit hold opened an exception, owned by finance, open.
	if len(order.Exceptions) != 1 {
		t.Fatalf("GET /api/v1/orders/SO-000 has %d exceptions, want its credit hold's", len(order.Exceptions))
	}
	row := body[strings.Index(body, `<section id="exceptions"`):]
	row = row[:strings.Index(row, "</section>")]
	for _, w := range []string{`<tr data-exception="` + order.Exceptions[0].ID + `">`, "<td>credit-hold-open</td>", "<td>finance</td>", `<td class="state">open</td>`} {
		if !strings.Contains(row, w) {
			t.Errorf("order page's exceptions: no %s in\n%s", w, row)
		}
	}
	if code, body := b.page(srv.URL + "/orders/SO-001"); code != http.StatusOK || !strings.Contains(body, "No exception on this order.") {
		t.Errorf("GET /orders/SO-001 (no credit hold) = %d, want it to say it has no exception", code)
	}
	tl := body[strings.Index(body, `<ol id="timeline">`):]
	tl = tl[:strings.Index(tl, "</ol>")]
	if n := strings.Count(tl, "<li"); n != len(order.History) || n == 0 {
		t.Errorf("timeline has %d entries, the API's history %d", n, len(order.History))
	}
}

// TestConsoleApprovals: an approver of the team sees the answer form and the
// selection; answering records the signed-in user in the trail and comes back
// with a flash message; a viewer and another team's approver see no form and
// their POST is refused, changing nothing; a form without its CSRF token is
// refused 403.
func TestConsoleApprovals(t *testing.T) {
	e := newConsoleEnv(t)
	now := time.Now().UTC()
	ids := []string{e.creditHold("SO-1", now.Add(-3*time.Minute)), e.creditHold("SO-2", now.Add(-2*time.Minute)), e.creditHold("SO-3", now.Add(-time.Minute))}
	form := func(csrf string) url.Values {
		return url.Values{"csrf_token": {csrf}, "answer": {"approve"}, "reason": {"customer paid"}}
	}

	for _, who := range []string{"vic", "bob"} {
		b := signedIn(t, e.srv.URL, who)
		code, body := b.page(e.srv.URL + "/approvals")
		if code != 200 || len(decisionRe.FindAllString(body, -1)) != 3 {
			t.Fatalf("%s: GET /approvals = %d, want 200 with 3 rows:\n%s", who, code, body)
		}
		for _, no := range []string{`class="answer"`, `name="decision"`, `value="approve"`, `id="bulk"`} {
			if strings.Contains(body, no) {
				t.Errorf("%s may not answer, yet the page has %s", who, no)
			}
		}
		code, body, _ = b.post(e.srv.URL+"/approvals/"+ids[0]+"/answer", form(csrfOf(t, body)))
		if code != http.StatusForbidden || !strings.Contains(body, `id="flash"`) {
			t.Errorf("%s answers = %d, want 403 saying why:\n%s", who, code, body)
		}
	}
	if v := e.view(ids[0]); v.State != actions.StatePending || len(v.Trail) != 0 {
		t.Fatalf("after refused answers: %s %+v, want pending with no trail", v.State, v.Trail)
	}

	amy := signedIn(t, e.srv.URL, "amy")
	code, body := amy.page(e.srv.URL + "/approvals")
	for _, id := range ids {
		for _, w := range []string{`<tr data-decision="` + id + `"`, `<form class="answer" method="post" action="/approvals/` + id + `/answer">`,
			`name="decision" value="` + id + `"`} {
			if !strings.Contains(body, w) {
				t.Errorf("amy's approvals page: no %s", w)
			}
		}
	}
	for _, w := range []string{`name="reason"`, `name="answer" value="approve"`, `name="answer" value="reject"`, `<form id="bulk" method="post" action="/approvals/preview">`} {
		if !strings.Contains(body, w) {
			t.Errorf("amy's approvals page: no %s", w)
		}
	}
	if order := decisionRe.FindAllStringSubmatch(body, -1); code != 200 || len(order) != 3 || order[0][1] != ids[0] {
		t.Errorf("rows = %v, want the longest waiting (%s) first", order, ids[0])
	}
	csrf := csrfOf(t, body)

	// Without the CSRF token, or another session's: 403, nothing answered.
	for _, bad := range []string{"", csrfOf(t, mustPage(t, signedIn(t, e.srv.URL, "root"), e.srv.URL+"/approvals"))} {
		if code, _, _ := amy.post(e.srv.URL+"/approvals/"+ids[0]+"/answer", form(bad)); code != http.StatusForbidden {
			t.Errorf("answer with csrf %q = %d, want 403", bad, code)
		}
	}
	if v := e.view(ids[0]); v.State != actions.StatePending {
		t.Fatalf("after forms without their token: %s, want pending", v.State)
	}

	code, _, hdr := amy.post(e.srv.URL+"/approvals/"+ids[0]+"/answer", form(csrf))
	if code != http.StatusSeeOther || hdr.Get("Location") != "/approvals" {
		t.Fatalf("amy approves = %d to %q, want 303 to /approvals", code, hdr.Get("Location"))
	}
	if v := e.view(ids[0]); len(v.Trail) != 1 || v.Trail[0].By != "amy" || v.Trail[0].Kind != actions.TrailApproved || v.Trail[0].Reason != "customer paid" {
		t.Errorf("trail = %+v, want amy's approval with her reason", v.Trail)
	}
	if _, body := amy.page(e.srv.URL + "/approvals"); !strings.Contains(body, `<p id="flash" class="ok"`) || !strings.Contains(body, ids[0]+" approved by amy") {
		t.Errorf("after answering, no flash message:\n%s", body)
	} else if _, body := amy.page(e.srv.URL + "/approvals"); strings.Contains(body, `id="flash"`) {
		t.Error("the flash message shows again on the next page")
	}

	// A selection: previewed first (nothing answered), then applied.
	sel := url.Values{"csrf_token": {csrf}, "answer": {"reject"}, "reason": {"duplicate order"}, "decision": {ids[1], ids[2]}}
	code, body, _ = amy.post(e.srv.URL+"/approvals/preview", sel)
	if code != 200 || !strings.Contains(body, `<ul id="preview">`) || !strings.Contains(body, `<form id="confirm" method="post" action="/approvals/apply">`) {
		t.Fatalf("preview = %d, want the list and the confirm form:\n%s", code, body)
	}
	for _, id := range ids[1:] {
		if !strings.Contains(body, `<li data-decision="`+id+`"`) || !strings.Contains(body, `name="decision" value="`+id+`"`) {
			t.Errorf("preview does not list %s", id)
		}
		if v := e.view(id); v.State != actions.StatePending {
			t.Errorf("after the preview, %s is %s, want still pending", id, v.State)
		}
	}
	if code, _, hdr := amy.post(e.srv.URL+"/approvals/apply", sel); code != http.StatusSeeOther || hdr.Get("Location") != "/approvals" {
		t.Fatalf("apply = %d to %q, want 303 to /approvals", code, hdr.Get("Location"))
	}
	for _, id := range ids[1:] {
		if v := e.view(id); v.State != actions.StateRejected || len(v.Trail) != 1 || v.Trail[0].By != "amy" {
			t.Errorf("after apply, %s: %s %+v, want rejected by amy", id, v.State, v.Trail)
		}
	}
	// Applying again: each is refused (answered already), and the page says so.
	if code, body, _ := amy.post(e.srv.URL+"/approvals/apply", sel); code != http.StatusConflict || !strings.Contains(body, `id="flash"`) {
		t.Errorf("apply again = %d, want 409 saying why:\n%s", code, body)
	}
}

func mustPage(t *testing.T, b *browser, u string) string {
	t.Helper()
	code, body := b.page(u)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", u, code, body)
	}
	return body
}

// TestConsoleModelsPage: every version of the registry's status is a row,
// with its state, the pin, the served ones' cards and the live quality from
// orderwatch_model_outcomes_total.
func TestConsoleModelsPage(t *testing.T) {
	e := newConsoleEnv(t)
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderwatch_model_outcomes_total", Help: "test"}, []string{"model", "version", "predicted", "actual"})
	e.reg.MustRegister(outcomes)
	outcomes.WithLabelValues("cutoff_risk", "1.1.0", "flagged", "missed").Add(3)
	outcomes.WithLabelValues("cutoff_risk", "1.1.0", "flagged", "met").Add(1)
	outcomes.WithLabelValues("cutoff_risk", "1.1.0", "not_flagged", "missed").Add(1)
	outcomes.WithLabelValues("cutoff_risk", "1.1.0", "not_flagged", "met").Add(5)
	body := mustPage(t, signedIn(t, e.srv.URL, "vic"), e.srv.URL+"/models")
	for _, w := range []string{`data-version="1.0.0" class="state-standby"`, `data-version="1.1.0" class="state-serving"`,
		`data-version="1.2.0" class="state-shadow"`, `data-version="1.3.0" class="state-rejected"`, "bad outputs", "outputs NaN on the probe rows",
		"pinned", "roc_auc", "10 orders judged, precision 0.75, recall 0.75"} {
		if !strings.Contains(body, w) {
			t.Errorf("models page: no %s", w)
		}
	}
}

// TestConsoleOperations: an admin sees the kill switch form, which needs the
// confirmation box and then turns it as her; a viewer sees the state without
// the form and her POST is refused; dead letters and lag come from the
// metrics.
func TestConsoleOperations(t *testing.T) {
	e := newConsoleEnv(t)
	dlq := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orderwatch_dlq_total", Help: "test"}, []string{"reason"})
	e.reg.MustRegister(dlq)
	dlq.WithLabelValues("bad_json").Add(4)
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "orderwatch_consumer_pending_messages", Help: "test"})
	e.reg.MustRegister(pending)
	pending.Set(17)

	vic := signedIn(t, e.srv.URL, "vic")
	body := mustPage(t, vic, e.srv.URL+"/operations")
	for _, w := range []string{"Off: actions are executed", "<td><code>bad_json</code></td><td class=\"num\">4</td>", "<td class=\"num\">17</td>"} {
		if !strings.Contains(body, w) {
			t.Errorf("operations page: no %s", w)
		}
	}
	if strings.Contains(body, `id="killswitch-confirm"`) || strings.Contains(body, `id="policy-reload"`) {
		t.Error("a viewer is shown the kill switch or reload form")
	}
	turn := url.Values{"csrf_token": {csrfOf(t, body)}, "on": {"true"}, "reason": {"incident 7"}, "confirm": {"yes"}}
	if code, _, _ := vic.post(e.srv.URL+"/operations/killswitch", turn); code != http.StatusForbidden {
		t.Errorf("a viewer turns the kill switch = %d, want 403", code)
	}

	root := signedIn(t, e.srv.URL, "root")
	body = mustPage(t, root, e.srv.URL+"/operations")
	for _, w := range []string{`<form id="killswitch-confirm" method="post" action="/operations/killswitch">`, `type="checkbox" name="confirm"`, `name="reason" required`} {
		if !strings.Contains(body, w) {
			t.Errorf("admin's operations page: no %s", w)
		}
	}
	turn.Set("csrf_token", csrfOf(t, body))
	unconfirmed := url.Values{"csrf_token": turn["csrf_token"], "on": {"true"}, "reason": {"incident 7"}}
	if code, _, _ := root.post(e.srv.URL+"/operations/killswitch", unconfirmed); code != http.StatusBadRequest {
		t.Errorf("without the confirmation = %d, want 400", code)
	}
	if e.p.KillSwitch().State().On {
		t.Fatal("the kill switch is on after refused forms")
	}
	if code, _, hdr := root.post(e.srv.URL+"/operations/killswitch", turn); code != http.StatusSeeOther || hdr.Get("Location") != "/operations" {
		t.Fatalf("root turns the kill switch = %d to %q, want 303", code, hdr.Get("Location"))
	}
	if st := e.p.KillSwitch().State(); !st.On || st.By != "root" || st.Reason != "incident 7" {
		t.Errorf("kill switch = %+v, want on by root for incident 7", st)
	}
	if body := mustPage(t, root, e.srv.URL+"/operations"); !strings.Contains(body, `id="flash"`) || !strings.Contains(body, "On: no action is executed") {
		t.Errorf("after turning it: no flash or state:\n%s", body)
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestConsoleInAGroup: a member's console shows the group's queue, merged as
// the API merges it, and opens an order another member owns.
func TestConsoleInAGroup(t *testing.T) {
	a, b := newListMember(t), newListMember(t)
	owner := func(order string) string {
		if listPart(order) < 2 {
			return "a"
		}
		return "b"
	}
	listStream(t, 24, func(order string) *listMember {
		if owner(order) == "a" {
			return a
		}
		return b
	})
	ppl := newPeople(t, auth.Options{})
	urls := map[string]string{}
	var first *httptest.Server
	for _, m := range []struct {
		name string
		lm   *listMember
	}{{"a", a}, {"b", b}} {
		srv := httptest.NewServer(api.Handler(api.Options{Store: m.lm.st, OpenOrders: m.lm.idx, Auth: ppl.a,
			Peers: &listPeers{self: m.name, urls: urls, owner: owner}}))
		t.Cleanup(srv.Close)
		urls[m.name] = srv.URL
		if first == nil {
			first = srv
		}
	}
	want := rowIDs(walkList(t, first.URL, "at_risk=0&limit=100"))
	br := signedIn(t, first.URL, "vic")
	body := mustPage(t, br, first.URL+"/?at_risk=0")
	var got []string
	for _, r := range rowRe.FindAllStringSubmatch(body, -1) {
		got = append(got, r[1])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the console's queue on member a: %v\nthe group's API: %v", got, want)
	}
	var ofB string
	for _, id := range got {
		if owner(id) == "b" {
			ofB = id
			break
		}
	}
	if ofB == "" {
		t.Fatal("no order of member b in the group's queue")
	}
	if body := mustPage(t, br, first.URL+"/orders/"+ofB); !strings.Contains(body, "<h1>Order "+ofB+"</h1>") || !strings.Contains(body, `<ol id="timeline">`) {
		t.Errorf("member a's console does not show b's order %s:\n%s", ofB, body)
	}
}

// zeros is an endless body of 'x'.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// postRaw sends body to u as a browser's form, declared with its length
// (size >= 0) or chunked (size < 0), and returns the status and what the page
// says.
func (b *browser) postRaw(u, contentType string, body io.Reader, size int64) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest("POST", u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.ContentLength = size
	if size < 0 {
		req.TransferEncoding = []string{"chunked"}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(page)
}

// TestConsoleHostileForms: the console's forms and the sign-in refuse what
// would make the server read, keep or hash without bound, with a clear 4xx and
// nothing changed: a 100 MB body (declared or chunked), a reason over the API's
// 1000 bytes, 100,000 decision fields, a multipart body, a password over
// bcrypt's 72 bytes (not hashed: no failure counted) or a 60 KB name (not
// echoed), and a session cookie of 1 MB (the server's header bound).
func TestConsoleHostileForms(t *testing.T) {
	e := newConsoleEnv(t)
	id := e.creditHold("SO-H1", time.Now().Add(-time.Minute))
	root := signedIn(t, e.srv.URL, "root")
	csrf := csrfOf(t, mustPage(t, root, e.srv.URL+"/approvals"))
	const formType = "application/x-www-form-urlencoded"
	answer := "/approvals/" + id + "/answer"
	forms := []string{answer, "/approvals/preview", "/approvals/apply", "/operations/killswitch", "/operations/policy/reload", "/signout", "/signin"}

	t.Run("100 MB body", func(t *testing.T) {
		head := "csrf_token=" + csrf + "&answer=approve&on=true&confirm=yes&decision=" + id + "&reason="
		for _, p := range forms {
			for _, size := range []int64{100 << 20, -1} {
				body := io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, 100<<20-int64(len(head))))
				if code, page := root.postRaw(e.srv.URL+p, formType, body, size); code != http.StatusRequestEntityTooLarge {
					t.Errorf("POST %s with 100 MB (length %d) = %d, want 413: %.300s", p, size, code, page)
				}
			}
		}
	})

	t.Run("reason over 1000 bytes", func(t *testing.T) {
		for _, c := range []struct {
			path string
			form url.Values
		}{
			{answer, url.Values{"answer": {"approve"}}},
			{"/approvals/preview", url.Values{"answer": {"approve"}, "decision": {id}}},
			{"/approvals/apply", url.Values{"answer": {"approve"}, "decision": {id}}},
			{"/operations/killswitch", url.Values{"on": {"true"}, "confirm": {"yes"}}},
		} {
			c.form.Set("csrf_token", csrf)
			c.form.Set("reason", strings.Repeat("r", 1001))
			if code, page, _ := root.post(e.srv.URL+c.path, c.form); code != http.StatusBadRequest || !strings.Contains(page, "1000 bytes") {
				t.Errorf("POST %s with a reason of 1001 bytes = %d, want 400 saying 1000 bytes: %.500s", c.path, code, page)
			}
		}
		form := url.Values{"csrf_token": {csrf}, "answer": {"approve"}, "decision": {id}, "reason": {strings.Repeat("r", 1000)}}
		if code, page, _ := root.post(e.srv.URL+"/approvals/preview", form); code != http.StatusOK {
			t.Errorf("preview with a reason of 1000 bytes = %d, want 200: %.500s", code, page)
		}
		// The API's bound is the same.
		code, page, _ := newBrowser(t).do("POST", e.srv.URL+"/api/v1/approvals/"+id+"/approve", "application/json",
			`{"by":"amy","reason":"`+strings.Repeat("r", 1001)+`"}`, map[string]string{"Authorization": "Bearer " + testToken})
		if code != http.StatusBadRequest || !strings.Contains(page, "1000 bytes") {
			t.Errorf("the API with a reason of 1001 bytes = %d %s, want 400 saying 1000 bytes", code, page)
		}
	})

	t.Run("100,000 decision fields", func(t *testing.T) {
		for _, n := range []int{100000, 5000} {
			var sb strings.Builder
			sb.WriteString("csrf_token=" + csrf + "&answer=approve&reason=bulk")
			for i := range n {
				fmt.Fprintf(&sb, "&decision=d%d", i)
			}
			for _, p := range []string{"/approvals/preview", "/approvals/apply"} {
				if code, page := root.postRaw(e.srv.URL+p, formType, strings.NewReader(sb.String()), int64(sb.Len())); code < 400 || code > 499 {
					t.Errorf("POST %s with %d decision fields = %d, want a 4xx: %.300s", p, n, code, page)
				}
			}
		}
	})

	t.Run("multipart", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range map[string]string{"csrf_token": csrf, "answer": "approve", "decision": id, "reason": "multipart"} {
			_ = mw.WriteField(k, v)
		}
		_ = mw.Close()
		if code, page := root.postRaw(e.srv.URL+"/approvals/apply", mw.FormDataContentType(), &buf, int64(buf.Len())); code != http.StatusUnsupportedMediaType {
			t.Errorf("a multipart form = %d, want 415: %.300s", code, page)
		}
	})

	t.Run("sign-in", func(t *testing.T) {
		b := newBrowser(t)
		_, page, _ := b.do("GET", e.srv.URL+"/signin", "", "", nil)
		tok := csrfOf(t, page)
		for _, c := range []struct {
			name, password string
			code           int
			says           string
		}{
			{"amy", strings.Repeat("p", 10<<10), http.StatusBadRequest, "72 bytes"},
			{"amy", "amy password" + strings.Repeat("p", 61), http.StatusBadRequest, "72 bytes"},
			{strings.Repeat("n", 10<<10), "amy password", http.StatusBadRequest, "128 bytes"},
			{"amy", strings.Repeat("p", 60<<10), http.StatusRequestEntityTooLarge, "16 KiB"},
			{strings.Repeat("n", 60<<10), "amy password", http.StatusRequestEntityTooLarge, "16 KiB"},
		} {
			form := url.Values{"csrf_token": {tok}, "name": {c.name}, "password": {c.password}}
			code, page, _ := b.post(e.srv.URL+"/signin", form)
			if code != c.code || !strings.Contains(page, c.says) || len(page) > 4<<10 {
				t.Errorf("sign-in with a name of %d and a password of %d bytes = %d (%d bytes), want %d saying %s, the name not echoed: %.300s",
					len(c.name), len(c.password), code, len(page), c.code, c.says, page)
			}
		}
		if n := e.ppl.a.Throttle().Failures("name:amy"); n != 0 {
			t.Errorf("amy's failures = %d, want 0: a password no one can have is refused before it is compared", n)
		}
		if code, page := b.postRaw(e.srv.URL+"/signin", formType, strings.NewReader("csrf_token="+tok+"&name=amy&password="+strings.Repeat("p", 1<<20)), -1); code != http.StatusRequestEntityTooLarge {
			t.Errorf("sign-in with a password of 1 MB = %d, want 413: %.300s", code, page)
		}
		if code, where := b.signIn(e.srv.URL, "amy", "amy password"); code != http.StatusSeeOther {
			t.Errorf("amy signs in after them = %d %s, want 303", code, where)
		}
	})

	t.Run("1 MB cookie", func(t *testing.T) {
		addr := serveWith(t, e.h, api.ServerOptions{})
		req, _ := http.NewRequest("GET", "http://"+addr+"/approvals", nil)
		req.Header.Set("Cookie", auth.SessionCookie+"="+strings.Repeat("c", 1<<20))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("GET /approvals with a 1 MB session cookie = %d, want 431", resp.StatusCode)
		}
	})

	if v := e.view(id); v.State != actions.StatePending || len(v.Trail) != 0 {
		t.Errorf("after the hostile forms decision %s is %s with trail %+v, want pending, unanswered", id, v.State, v.Trail)
	}
	if e.p.KillSwitch().State().On {
		t.Error("the kill switch is on after the hostile forms")
	}
}

// TestConsoleFlashIsSigned: the one-time message a page shows after a POST
// comes from a cookie the console signed; one planted by someone else (a
// sibling subdomain can set cookies for the parent domain) is not shown.
func TestConsoleFlashIsSigned(t *testing.T) {
	e := newConsoleEnv(t)
	amy := signedIn(t, e.srv.URL, "amy")
	u, _ := url.Parse(e.srv.URL)
	planted := base64.RawURLEncoding.EncodeToString([]byte("error:Your session expired: sign in again at https://evil.example"))
	amy.c.Jar.SetCookies(u, []*http.Cookie{{Name: "orderwatch_flash", Value: planted, Path: "/"}})
	if _, body := amy.page(e.srv.URL + "/approvals"); strings.Contains(body, "evil.example") {
		t.Errorf("a planted flash cookie is shown:\n%s", body)
	}
}
