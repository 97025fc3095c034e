package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/cluster"
)

// people are the users of the identity tests: an approver of the team the
// test policy's decisions wait on (credit-desk), one of another team, a viewer
// and an admin, each with a password ("<name> password") and a token.
type people struct {
	a      *auth.Authenticator
	tokens map[string]string
}

// peopleHashes are the bcrypt hashes of "<name> password" at the least cost a
// users file takes (10), made once: under -race each costs about a second.
var peopleHashes = map[string]string{
	"amy":  "$2a$10$LWJ6/8jI.ckWURhgArAn2OZ5mqVDXXo8B18Vcn.AkRh/Yl8HxZ2P.",
	"bob":  "$2a$10$QUOdooXIY4i138vMokZ2B.c/WXkvYJisfBGdT1NcBqW6Lh/Rctlme",
	"vic":  "$2a$10$v5MlCcKg.SRFxXqGsz.CTuWaTuQXjcR8CSnuIr5JTOnMR0XcU/HJi",
	"root": "$2a$10$9edDaAn9oTHpbZ/Ak2A9l.DD5gXcrNiDfV4DLs2NXdYaSAzrniELa",
}

func newPeople(t *testing.T, o auth.Options) *people {
	t.Helper()
	list := []auth.User{
		{Name: "amy", Role: auth.RoleApprover, Teams: []string{"credit-desk"}},
		{Name: "bob", Role: auth.RoleApprover, Teams: []string{"warehouse-ops"}},
		{Name: "vic", Role: auth.RoleViewer},
		{Name: "root", Role: auth.RoleAdmin},
	}
	var u *auth.Users
	tokens := map[string]string{}
	for _, e := range list {
		plain, tok := auth.NewToken(time.Now())
		e.Password, e.Tokens, tokens[e.Name] = peopleHashes[e.Name], []auth.Token{tok}, plain
		var err error
		if u, err = u.With(e); err != nil {
			t.Fatal(err)
		}
	}
	o.Users, o.SharedToken = u, testToken
	a, err := auth.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &people{a: a, tokens: tokens}
}

func withAuth(a *auth.Authenticator) func(*api.Options) {
	return func(o *api.Options) { o.Auth = a }
}

// TestApprovalNeedsTheDecisionsTeam: an approver of the team a decision waits
// on approves it with her own token and the trail records her, not the body's
// "by"; an approver of another team and a viewer are refused 403 and change
// nothing; the shared token still approves, as "service", with the body's by.
func TestApprovalNeedsTheDecisionsTeam(t *testing.T) {
	ppl := newPeople(t, auth.Options{})
	e := newApprovalsEnv(t, testToken, withAuth(ppl.a))
	id := e.creditHold("SO-1", time.Now().UTC())
	for _, who := range []string{"bob", "vic"} {
		code, body := e.do("POST", "/api/v1/approvals/"+id+"/approve", ppl.tokens[who], `{"reason":"looks fine"}`)
		if code != http.StatusForbidden {
			t.Errorf("%s approves = %d %s, want 403", who, code, body)
		}
	}
	if v := e.view(id); v.State != actions.StatePending || len(v.Trail) != 0 {
		t.Fatalf("after refused approvals: %s %v, want pending, no trail", v.State, v.Trail)
	}
	code, body := e.do("POST", "/api/v1/approvals/"+id+"/approve", ppl.tokens["amy"], `{"by":"mallory","reason":"customer paid"}`)
	if code != 200 {
		t.Fatalf("amy approves = %d %s, want 200", code, body)
	}
	if v := e.view(id); len(v.Trail) != 1 || v.Trail[0].By != "amy" || v.Trail[0].Team != "credit-desk" {
		t.Errorf("trail = %+v, want amy's approval for credit-desk", v.Trail)
	}

	// The shared token: still works, and is recorded as the service; a by it
	// sends is kept apart, as whom it acts for, never as the approver.
	other := e.creditHold("SO-2", time.Now().UTC())
	if code, body := e.do("POST", "/api/v1/approvals/"+other+"/reject", testToken, `{"by":"ops-bot","reason":"no"}`); code != 200 {
		t.Errorf("service rejects = %d %s, want 200", code, body)
	}
	if v := e.view(other); len(v.Trail) != 1 || v.Trail[0].By != "service" || v.Trail[0].OnBehalfOf != "ops-bot" {
		t.Errorf("trail = %+v, want by service on behalf of ops-bot", v.Trail)
	}
	third := e.creditHold("SO-3", time.Now().UTC())
	if code, body := e.do("POST", "/api/v1/approvals/"+third+"/approve", testToken, `{"reason":"paid"}`); code != 200 {
		t.Errorf("service approves without by = %d %s, want 200", code, body)
	}
	if v := e.view(third); len(v.Trail) != 1 || v.Trail[0].By != "service" || v.Trail[0].OnBehalfOf != "" {
		t.Errorf("trail = %+v, want by service alone", v.Trail)
	}
	code, body = e.do("GET", "/api/v1/whoami", testToken, "")
	var who struct{ Name, Role, Via string }
	if err := json.Unmarshal([]byte(body), &who); code != 200 || err != nil || who.Name != "service" || who.Role != "service" {
		t.Errorf("whoami with the shared token = %d %s, want service", code, body)
	}
	if code, _ := e.do("GET", "/api/v1/whoami", "", ""); code != http.StatusUnauthorized {
		t.Errorf("whoami with nothing = %d, want 401", code)
	}
	if code, _ := e.do("GET", "/api/v1/whoami", "owu_not-a-token", ""); code != http.StatusUnauthorized {
		t.Errorf("whoami with a wrong token = %d, want 401", code)
	}
}

// TestKillSwitchNeedsAdmin: an admin turns the kill switch and is recorded as
// who did; a viewer and an approver cannot.
func TestKillSwitchNeedsAdmin(t *testing.T) {
	ppl := newPeople(t, auth.Options{})
	e := newApprovalsEnv(t, testToken, withAuth(ppl.a))
	for _, who := range []string{"vic", "amy"} {
		if code, body := e.do("POST", "/api/v1/killswitch", ppl.tokens[who], `{"on":true,"reason":"incident"}`); code != http.StatusForbidden {
			t.Errorf("%s turns the kill switch = %d %s, want 403", who, code, body)
		}
	}
	code, body := e.do("POST", "/api/v1/killswitch", ppl.tokens["root"], `{"on":true,"by":"someone else","reason":"incident 7"}`)
	if code != 200 || !strings.Contains(body, `"halted": true`) || !strings.Contains(body, `"by": "root"`) {
		t.Errorf("root turns the kill switch = %d %s, want it on, by root", code, body)
	}
}

// browser is an HTTP client with a cookie jar, as a browser signs in.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, u, contentType, body string, hdr map[string]string) (int, string, http.Header) {
	b.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// signIn signs in through the sign-in page, as a browser does.
func (b *browser) signIn(base, name, password string) (int, string) {
	b.t.Helper()
	code, page, _ := b.do("GET", base+"/signin", "", "", nil)
	m := csrfField.FindStringSubmatch(page)
	if code != 200 || m == nil {
		b.t.Fatalf("GET /signin = %d %s, want a form with a csrf_token", code, page)
	}
	form := url.Values{"name": {name}, "password": {password}, "csrf_token": {m[1]}}
	code, body, hdr := b.do("POST", base+"/signin", "application/x-www-form-urlencoded", form.Encode(), nil)
	return code, body + hdr.Get("Location")
}

// TestSignInAndCSRF: a browser signs in through the form (whose own CSRF token
// is needed), then a POST to the API with its session cookie is refused 403
// without the session's CSRF token and accepted with it; a wrong password is
// refused and counted by the throttle; sign-out clears the session.
func TestSignInAndCSRF(t *testing.T) {
	ppl := newPeople(t, auth.Options{})
	e := newApprovalsEnv(t, testToken, withAuth(ppl.a))
	id := e.creditHold("SO-1", time.Now().UTC())
	b := newBrowser(t)

	// The sign-in form without its token.
	form := url.Values{"name": {"amy"}, "password": {"amy password"}}
	if code, body, _ := b.do("POST", e.srv.URL+"/signin", "application/x-www-form-urlencoded", form.Encode(), nil); code != http.StatusForbidden {
		t.Errorf("sign-in form without its CSRF token = %d %s, want 403", code, body)
	}
	if code, body := b.signIn(e.srv.URL, "amy", "wrong password"); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong name or password") {
		t.Errorf("wrong password = %d %s, want 401", code, body)
	}
	if n := ppl.a.Throttle().Failures("name:amy"); n != 1 {
		t.Errorf("failures of amy = %d, want 1", n)
	}
	if code, where := b.signIn(e.srv.URL, "amy", "amy password"); code != http.StatusSeeOther || !strings.HasSuffix(where, "/") {
		t.Fatalf("sign-in = %d %s, want 303 to /", code, where)
	}
	code, body, _ := b.do("GET", e.srv.URL+"/api/v1/whoami", "", "", nil)
	var who struct {
		Name, Role string
		Teams      []string
		CSRF       string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(body), &who); code != 200 || err != nil || who.Name != "amy" || who.Role != "approver" || len(who.Teams) != 1 || who.CSRF == "" {
		t.Fatalf("whoami = %d %s, want amy the approver of credit-desk with a CSRF token", code, body)
	}

	approve := e.srv.URL + "/api/v1/approvals/" + id + "/approve"
	if code, body, _ := b.do("POST", approve, "application/json", `{"reason":"paid"}`, nil); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Errorf("cookie POST without a CSRF token = %d %s, want 403", code, body)
	}
	if code, body, _ := b.do("POST", approve, "application/json", `{"reason":"paid"}`, map[string]string{auth.CSRFHeader: "x" + who.CSRF}); code != http.StatusForbidden {
		t.Errorf("cookie POST with a wrong CSRF token = %d %s, want 403", code, body)
	}
	if v := e.view(id); v.State != actions.StatePending {
		t.Fatalf("after refused POSTs the decision is %s, want pending", v.State)
	}
	if code, body, _ := b.do("POST", approve, "application/json", `{"reason":"paid"}`, map[string]string{auth.CSRFHeader: who.CSRF}); code != 200 {
		t.Fatalf("cookie POST with the CSRF token = %d %s, want 200", code, body)
	}
	if v := e.view(id); len(v.Trail) != 1 || v.Trail[0].By != "amy" {
		t.Errorf("trail = %+v, want amy", v.Trail)
	}

	// Sign-out is a form POST too.
	if code, _, _ := b.do("POST", e.srv.URL+"/signout", "application/x-www-form-urlencoded", "", nil); code != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token = %d, want 403", code)
	}
	if code, _, _ := b.do("POST", e.srv.URL+"/signout", "application/x-www-form-urlencoded", url.Values{"csrf_token": {who.CSRF}}.Encode(), nil); code != http.StatusSeeOther {
		t.Errorf("sign-out = %d, want 303", code)
	}
	if code, _, _ := b.do("GET", e.srv.URL+"/api/v1/whoami", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("whoami after sign-out = %d, want 401", code)
	}
}

// TestProxyHeader: the proxy's user header is ignored from an address outside
// the trusted ones and honoured from a trusted one (the test server's peer is
// 127.0.0.1).
func TestProxyHeader(t *testing.T) {
	for _, c := range []struct {
		trusted string
		want    int
	}{{"192.0.2.0/24", http.StatusUnauthorized}, {"127.0.0.1/32", http.StatusOK}} {
		ppl := newPeople(t, auth.Options{ProxyHeader: "X-Forwarded-User", ProxyTrusted: []netip.Prefix{netip.MustParsePrefix(c.trusted)}})
		e := newApprovalsEnv(t, testToken, withAuth(ppl.a))
		code, body, _ := newBrowser(t).do("GET", e.srv.URL+"/api/v1/whoami", "", "", map[string]string{"X-Forwarded-User": "root"})
		if code != c.want || (c.want == 200 && !strings.Contains(body, `"role": "admin"`)) {
			t.Errorf("trusted %s: whoami = %d %s, want %d", c.trusted, code, body, c.want)
		}
	}
}

// TestForwardedRequestKeepsItsPrincipal: a member that does not know a decision
// forwards the approval, over NATS, to the member that does, which records the
// signed-in user of the first (its session cookie never travels); an HTTP
// request that sets the internal principal header itself, even signed with the
// group's key, is not believed.
func TestForwardedRequestKeepsItsPrincipal(t *testing.T) {
	key := make([]byte, auth.KeyBytes)
	copy(key, "the group's key, shared by all")
	pplA := newPeople(t, auth.Options{Key: key})
	// B knows nobody: only the principal A forwards makes the request amy's.
	authB, err := auth.New(auth.Options{Key: key, SharedToken: testToken})
	if err != nil {
		t.Fatal(err)
	}
	var peersB *cluster.Peers
	b := newApprovalsEnv(t, testToken, withAuth(authB), func(o *api.Options) { o.Peers = lazyPeers{&peersB} })
	id := b.creditHold("SO-1", time.Now().UTC())

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	member := func(name string) *cluster.Membership {
		js, err := jetstream.New(b.nc)
		if err != nil {
			t.Fatal(err)
		}
		m, err := cluster.New(cluster.Options{JetStream: js, Group: "idtest", Member: name, Partitions: 1,
			LeaseTTL: 2 * time.Second, Renew: 200 * time.Millisecond, Guard: 600 * time.Millisecond, HandoffWait: 200 * time.Millisecond,
			Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			go func() {
				for c := range m.Changes() {
					if !c.Owned {
						m.Handoff(c.Partition)
					}
				}
			}()
			_ = m.Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-done })
		return m
	}
	mA, mB := member("a"), member("b")
	part := func(string) int { return 0 }
	peersA := cluster.NewPeers(b.nc, mA, part, nil)
	peersB = cluster.NewPeers(b.nc, mB, part, nil)
	if err := peersB.Serve(b.h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peersB.Stop() })
	waitUntil(t, "a to see b alive", func() bool { return len(peersA.Others()) == 1 })

	// Member A: its own (empty) store, amy signs in there.
	a := newApprovalsEnv(t, testToken, withAuth(pplA.a), func(o *api.Options) { o.Peers = peersA })
	br := newBrowser(t)
	if code, where := br.signIn(a.srv.URL, "amy", "amy password"); code != http.StatusSeeOther {
		t.Fatalf("sign-in on a = %d %s", code, where)
	}
	_, body, _ := br.do("GET", a.srv.URL+"/api/v1/whoami", "", "", nil)
	var who struct {
		CSRF string `json:"csrf_token"`
	}
	_ = json.Unmarshal([]byte(body), &who)

	// An HTTP client on B that sets the internal header itself.
	sealed := pplA.a.SealPrincipal(auth.Principal{Name: "amy", Role: auth.RoleAdmin})
	code, body, _ := newBrowser(t).do("POST", b.srv.URL+"/api/v1/approvals/"+id+"/approve", "application/json", `{"reason":"forged"}`,
		map[string]string{cluster.HeaderPrincipal: sealed, cluster.HeaderForwarded: "a"})
	if code != http.StatusUnauthorized {
		t.Errorf("HTTP request with the internal principal header = %d %s, want 401", code, body)
	}

	code, body, hdr := br.do("POST", a.srv.URL+"/api/v1/approvals/"+id+"/approve", "application/json", `{"by":"mallory","reason":"paid"}`,
		map[string]string{auth.CSRFHeader: who.CSRF})
	if code != 200 || hdr.Get("Orderwatch-Member") != "b" {
		t.Fatalf("approve on a = %d %s (member %q), want 200 from b", code, body, hdr.Get("Orderwatch-Member"))
	}
	if v := b.view(id); len(v.Trail) != 1 || v.Trail[0].By != "amy" {
		t.Errorf("trail on b = %+v, want amy", v.Trail)
	}
}

// lazyPeers is B's api.Peers, set once the test has made them.
type lazyPeers struct{ p **cluster.Peers }

func (l lazyPeers) Self() string                { return (*l.p).Self() }
func (l lazyPeers) OwnerOf(order string) string { return (*l.p).OwnerOf(order) }
func (l lazyPeers) Others() []string            { return (*l.p).Others() }
func (l lazyPeers) Forward(ctx context.Context, m string, r *http.Request, body []byte) (cluster.Forwarded, error) {
	return (*l.p).Forward(ctx, m, r, body)
}
