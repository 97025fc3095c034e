package auth

import (
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestCookiesSecureBehindATLSProxy: a proxy that ends TLS and forwards plain
// HTTP says so with X-Forwarded-Proto: https. From a trusted proxy the
// session, sign-out and sign-in form cookies are Secure then, so a browser
// never sends them over plain HTTP; from anyone else the header is ignored.
func TestCookiesSecureBehindATLSProxy(t *testing.T) {
	a, _ := newTestAuth(t, Options{ProxyHeader: "X-Forwarded-User", ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	form := url.Values{"name": {"amy"}, "password": {"correct horse"}}.Encode()
	for _, c := range []struct {
		remote, proto string
		secure        bool
	}{
		{"10.1.2.3:5000", "https", true},
		{"10.1.2.3:5000", "http", false},
		{"10.1.2.3:5000", "", false},
		{"192.0.2.7:5000", "https", false}, // not the proxy: the header is anyone's
	} {
		r := httptest.NewRequest("POST", "/signin", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = c.remote
		if c.proto != "" {
			r.Header.Set("X-Forwarded-Proto", c.proto)
		}
		ck, err := a.SignIn(r, "amy", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		if ck.Secure != c.secure {
			t.Errorf("session cookie from %s with X-Forwarded-Proto %q: Secure %v, want %v", c.remote, c.proto, ck.Secure, c.secure)
		}
		if out := a.SignOut(r); out.Secure != c.secure {
			t.Errorf("sign-out cookie from %s with %q: Secure %v, want %v", c.remote, c.proto, out.Secure, c.secure)
		}
		pre := httptest.NewRequest("GET", "/signin", nil)
		pre.RemoteAddr = r.RemoteAddr
		pre.Header = r.Header.Clone()
		w := httptest.NewRecorder()
		a.PreSessionToken(w, pre)
		if got := strings.Contains(w.Header().Get("Set-Cookie"), "; Secure"); got != c.secure {
			t.Errorf("sign-in form cookie from %s with %q: %s, want Secure %v", c.remote, c.proto, w.Header().Get("Set-Cookie"), c.secure)
		}
	}
}
