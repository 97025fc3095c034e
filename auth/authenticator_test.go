package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/internal/natstest"
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestAuth(t *testing.T, o Options) (*Authenticator, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)}
	if o.Users == nil {
		u, err := ParseUsers([]byte(`users:
- {name: amy, role: approver, teams: [credit-desk], password: "` + testHash(t, "correct horse") + `"}
- {name: vic, role: viewer, password: "` + testHash(t, "viewer pass") + `"}
`))
		if err != nil {
			t.Fatal(err)
		}
		o.Users = u
	}
	o.Clock = c.Now
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a, c
}

// signInServer serves POST /signin with a's SignIn, and GET /who with Resolve.
func signInServer(a *Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signin", func(w http.ResponseWriter, r *http.Request) {
		c, err := a.SignIn(r, r.PostFormValue("name"), r.PostFormValue("password"))
		if te := new(ThrottledError); errors.As(err, &te) {
			http.Error(w, err.Error(), http.StatusTooManyRequests)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, c)
	})
	mux.HandleFunc("POST /signout", func(w http.ResponseWriter, r *http.Request) { http.SetCookie(w, a.SignOut(r)) })
	mux.HandleFunc("GET /who", func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := a.Resolve(r)
		if err != nil || !ok {
			http.Error(w, "nobody", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(p.Name + " " + string(p.Role) + " " + p.Via))
	})
	return mux
}

func post(t *testing.T, c *http.Client, u string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestSignInSetsASessionCookie: a sign-in sets an HttpOnly, SameSite cookie
// (Secure over TLS) with which the next request is the user's; sign-out clears
// it.
func TestSignInSetsASessionCookie(t *testing.T) {
	a, _ := newTestAuth(t, Options{})
	for _, useTLS := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(signInServer(a))
		if useTLS {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		client := srv.Client()
		resp := post(t, client, srv.URL+"/signin", url.Values{"name": {"amy"}, "password": {"correct horse"}})
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == SessionCookie {
				session = c
			}
		}
		if resp.StatusCode != 200 || session == nil {
			t.Fatalf("tls=%v: sign-in = %d, cookies %v", useTLS, resp.StatusCode, resp.Cookies())
		}
		if !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure != useTLS || session.MaxAge <= 0 || session.MaxAge > int(MaxSessionTTL/time.Second) {
			t.Errorf("tls=%v: cookie %+v, want HttpOnly, SameSite=Lax, Secure=%v, a bounded MaxAge", useTLS, session, useTLS)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/who", nil)
		req.AddCookie(session)
		r2, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(r2)
		if r2.StatusCode != 200 || body != "amy approver session" {
			t.Errorf("tls=%v: with the cookie = %d %q, want amy approver session", useTLS, r2.StatusCode, body)
		}
		out := post(t, client, srv.URL+"/signout", nil)
		if cs := out.Cookies(); len(cs) != 1 || cs[0].Name != SessionCookie || cs[0].Value != "" || cs[0].MaxAge >= 0 {
			t.Errorf("tls=%v: sign-out cookies %v, want the session cleared", useTLS, cs)
		}
		srv.Close()
	}
}

func readAll(r *http.Response) string {
	defer r.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// TestWrongPasswordIsRefusedAndSlowed: wrong passwords are refused and counted
// per name and per address; past FreeFailures the next attempt is throttled
// before the password is compared (even the right one), until its wait has
// passed; a success forgets the failures. Sessions end with their TTL.
func TestWrongPasswordIsRefusedAndSlowed(t *testing.T) {
	a, clk := newTestAuth(t, Options{SessionTTL: time.Hour})
	req := httptest.NewRequest("POST", "/signin", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	for i := 1; i <= FreeFailures; i++ {
		if _, err := a.SignIn(req, "amy", "wrong"); !errors.Is(err, ErrSignIn) {
			t.Fatalf("attempt %d: err %v, want ErrSignIn", i, err)
		}
	}
	if n, m := a.Throttle().Failures("name:amy"), a.Throttle().Failures("addr:192.0.2.7"); n != FreeFailures || m != FreeFailures {
		t.Errorf("failures name %d addr %d, want %d each", n, m, FreeFailures)
	}
	_, err := a.SignIn(req, "amy", "correct horse")
	var te *ThrottledError
	if !errors.As(err, &te) || te.Wait < 1 {
		t.Fatalf("right password while throttled: %v, want ErrThrottled", err)
	}
	// The address is throttled for another name too.
	if _, err := a.SignIn(req, "vic", "viewer pass"); !errors.Is(err, ErrThrottled) {
		t.Errorf("other name from the throttled address: %v, want ErrThrottled", err)
	}
	clk.Add(time.Duration(te.Wait) * time.Second)
	c, err := a.SignIn(req, "amy", "correct horse")
	if err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if n := a.Throttle().Failures("name:amy"); n != 0 {
		t.Errorf("failures after success = %d, want 0", n)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	if p, ok, _ := a.Resolve(r); !ok || p.Name != "amy" {
		t.Errorf("session = %+v %v, want amy", p, ok)
	}
	clk.Add(time.Hour)
	if _, ok, _ := a.Resolve(r); ok {
		t.Error("a session past its TTL is still accepted")
	}
	// An unknown name fails the same way.
	if _, err := a.SignIn(req, "nobody", "whatever1"); !errors.Is(err, ErrSignIn) {
		t.Errorf("unknown name: %v, want ErrSignIn", err)
	}
}

// TestThrottleIsBounded: the throttle never holds more than MaxKeys keys.
func TestThrottleIsBounded(t *testing.T) {
	th := NewThrottle(nil)
	for i := range MaxKeys + 50 {
		th.Failed("name:" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
	}
	if n := th.Len(); n > MaxKeys {
		t.Errorf("throttle holds %d keys, want at most %d", n, MaxKeys)
	}
}

// TestResolve: bearer tokens (shared and per-user), a forged or tampered
// cookie, the proxy header from untrusted and trusted peers, CSRF tokens bound
// to the session, principals sealed for a peer.
func TestResolve(t *testing.T) {
	trusted, err := ParseCIDRs("10.1.0.0/16, 192.0.2.9")
	if err != nil {
		t.Fatal(err)
	}
	plain, tok := NewToken(time.Now())
	u, err := ParseUsers([]byte("users:\n- {name: amy, role: approver, teams: [credit-desk], password: \"" + testHash(t, "correct horse") + "\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	amy, _ := u.Lookup("amy")
	amy.Tokens = []Token{tok}
	if u, err = u.With(amy); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAuth(t, Options{Users: u, SharedToken: "shared-secret", ProxyHeader: "X-Forwarded-User", ProxyTrusted: trusted})
	resolve := func(mut func(r *http.Request)) (Principal, bool, error) {
		r := httptest.NewRequest("GET", "/api/v1/whoami", nil)
		r.RemoteAddr = "203.0.113.5:4000"
		mut(r)
		return a.Resolve(r)
	}
	cases := []struct {
		name string
		mut  func(r *http.Request)
		want string // name role via, or "" for nobody
		err  error
	}{
		{"nothing", func(*http.Request) {}, "", nil},
		{"shared token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer shared-secret") }, "service service shared-token", nil},
		{"user token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+plain) }, "amy approver user-token", nil},
		{"wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer owu_nope") }, "", ErrBadCredentials},
		{"basic auth", func(r *http.Request) { r.SetBasicAuth("amy", "correct horse") }, "", ErrBadCredentials},
		{"proxy header untrusted", func(r *http.Request) { r.Header.Set("X-Forwarded-User", "amy") }, "", nil},
		{"proxy header trusted", func(r *http.Request) {
			r.RemoteAddr = "10.1.2.3:4000"
			r.Header.Set("X-Forwarded-User", "amy")
		}, "amy approver proxy", nil},
		{"proxy unknown user is a viewer", func(r *http.Request) {
			r.RemoteAddr = "192.0.2.9:4000"
			r.Header.Set("X-Forwarded-User", "zed@example.com")
		}, "zed@example.com viewer proxy", nil},
		{"proxy cannot name service", func(r *http.Request) {
			r.RemoteAddr = "10.1.2.3:4000"
			r.Header.Set("X-Forwarded-User", "service")
		}, "", nil},
		{"forged cookie", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: SessionCookie, Value: signer{key: make([]byte, 32)}.seal("session", []byte("1|x|9999999999|amy"))})
		}, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, ok, err := resolve(c.mut)
			got := ""
			if ok {
				got = p.Name + " " + string(p.Role) + " " + p.Via
			}
			if got != c.want || !errors.Is(err, c.err) {
				t.Errorf("= %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}

	// CSRF: bound to the session, needed by browsers only.
	req := httptest.NewRequest("POST", "/signin", nil)
	c1, err := a.SignIn(req, "amy", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := a.SignIn(req, "amy", "correct horse")
	p1, _, _ := resolve(func(r *http.Request) { r.AddCookie(c1) })
	p2, _, _ := resolve(func(r *http.Request) { r.AddCookie(c2) })
	if !p1.NeedsCSRF() || a.CSRFToken(p1) == "" || a.CSRFToken(p1) == a.CSRFToken(p2) {
		t.Errorf("session CSRF tokens %q %q: want one per session", a.CSRFToken(p1), a.CSRFToken(p2))
	}
	post := httptest.NewRequest("POST", "/api/v1/killswitch", nil)
	if a.CheckCSRF(p1, post) {
		t.Error("a POST without a CSRF token passed")
	}
	post.Header.Set(CSRFHeader, a.CSRFToken(p2))
	if a.CheckCSRF(p1, post) {
		t.Error("another session's CSRF token passed")
	}
	post.Header.Set(CSRFHeader, a.CSRFToken(p1))
	if !a.CheckCSRF(p1, post) {
		t.Error("the session's CSRF token did not pass")
	}
	svc, _, _ := resolve(func(r *http.Request) { r.Header.Set("Authorization", "Bearer shared-secret") })
	if svc.NeedsCSRF() || !a.CheckCSRF(svc, httptest.NewRequest("POST", "/", nil)) {
		t.Error("a bearer token needs a CSRF token")
	}

	// A principal sealed for a peer opens with the same key only.
	sealed := a.SealPrincipal(p1)
	if p, err := a.OpenPrincipal(sealed); err != nil || p.Name != "amy" || p.Role != RoleApprover || p.NeedsCSRF() {
		t.Errorf("opened %+v %v, want amy the approver, no CSRF", p, err)
	}
	other, _ := newTestAuth(t, Options{})
	if _, err := other.OpenPrincipal(sealed); err == nil {
		t.Error("a principal sealed with another key opened")
	}
	if _, err := a.OpenPrincipal(sealed[:len(sealed)-2] + "AA"); err == nil {
		t.Error("a tampered principal opened")
	}
}

// TestGroupKeyIsSharedByTheGroup: the first member creates the key in the
// state bucket, the next reads the same one.
func TestGroupKeyIsSharedByTheGroup(t *testing.T) {
	ns := natstest.Start(t, nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "orderwatch_g_state"})
	if err != nil {
		t.Fatal(err)
	}
	k1, err := GroupKey(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GroupKey(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeyBytes || string(k1) != string(k2) {
		t.Errorf("keys %x and %x: want the same %d bytes", k1, k2, KeyBytes)
	}
	a1, _ := newTestAuth(t, Options{Key: k1})
	a2, _ := newTestAuth(t, Options{Key: k2})
	c, err := a1.SignIn(httptest.NewRequest("POST", "/", nil), "amy", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	if p, ok, _ := a2.Resolve(r); !ok || p.Name != "amy" {
		t.Errorf("another member with the group key resolves %+v %v, want amy", p, ok)
	}
}

// TestPasswordChecksAreBounded: while MaxPasswordChecks sign-ins compare a
// password, another is refused as throttled, without counting a failure.
func TestPasswordChecksAreBounded(t *testing.T) {
	a, _ := newTestAuth(t, Options{})
	for range MaxPasswordChecks {
		a.checking <- struct{}{}
	}
	req := httptest.NewRequest("POST", "/signin", nil)
	if _, err := a.SignIn(req, "amy", "correct horse"); !errors.Is(err, ErrThrottled) {
		t.Errorf("sign-in with every check slot taken: %v, want ErrThrottled", err)
	}
	if n := a.Throttle().Failures("name:amy"); n != 0 {
		t.Errorf("failures = %d, want 0: a busy refusal is not a wrong password", n)
	}
	<-a.checking
	if _, err := a.SignIn(req, "amy", "correct horse"); err != nil {
		t.Errorf("sign-in with a slot free: %v", err)
	}
}
