package auth

import (
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "orderwatch_session"

// session is what a session cookie holds, signed: its id (what CSRF tokens are
// bound to), the user's name and when it ends. The user's role and teams are
// read from the users file at each request, so a change there applies at once.
type session struct {
	id   string
	name string
	exp  time.Time
}

func (a *Authenticator) sealSession(s session) string {
	payload := "1|" + s.id + "|" + strconv.FormatInt(s.exp.Unix(), 10) + "|" + s.name
	return a.sign.seal("session", []byte(payload))
}

func (a *Authenticator) openSession(v string) (session, bool) {
	b, ok := a.sign.open("session", v)
	if !ok {
		return session{}, false
	}
	parts := strings.SplitN(string(b), "|", 4)
	if len(parts) != 4 || parts[0] != "1" {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || !a.o.Clock().Before(time.Unix(exp, 0)) {
		return session{}, false
	}
	return session{id: parts[1], name: parts[3], exp: time.Unix(exp, 0)}, true
}

// SignIn checks name and password and returns the session cookie to set.
// Failures are counted per name and per client address (r.RemoteAddr): after
// FreeFailures in a row, further attempts wait (ThrottledError) before the
// password is even compared; beyond MaxPasswordChecks sign-ins at once, the
// others are refused the same way (retry in a second). Failures are logged without the password. The
// cookie is HttpOnly, SameSite=Lax, Secure when r came over TLS, and ends with
// the session. Secure is also set behind a proxy that ends TLS (secure).
func (a *Authenticator) SignIn(r *http.Request, name, password string) (*http.Cookie, error) {
	addr := clientAddr(r)
	keys := []string{"name:" + shorten(name), "addr:" + addr}
	if wait := a.throttle.Wait(keys...); wait > 0 {
		a.m.signIns.WithLabelValues(signInThrottled).Inc()
		return nil, &ThrottledError{Wait: int(max(1, (wait+time.Second-1)/time.Second))}
	}
	select {
	case a.checking <- struct{}{}:
		defer func() { <-a.checking }()
	default:
		a.m.signIns.WithLabelValues(signInThrottled).Inc()
		return nil, &ThrottledError{Wait: 1}
	}
	u, found := a.users.Load().Lookup(name)
	hash := u.Password
	if !found {
		hash = ""
	}
	if !passwordMatches(hash, password) {
		n := a.throttle.Failed(keys...)
		a.m.signIns.WithLabelValues(signInWrong).Inc()
		a.log.Warn("sign-in failed", "user", shorten(name), "known", found, "addr", addr, "failures", n)
		return nil, ErrSignIn
	}
	a.throttle.Succeeded(keys...)
	a.m.signIns.WithLabelValues(signInOK).Inc()
	now := a.o.Clock()
	s := session{id: base64.RawURLEncoding.EncodeToString(randomBytes(16)), name: u.Name, exp: now.Add(a.o.SessionTTL)}
	a.log.Info("signed in", "user", u.Name, "role", string(u.Role), "addr", addr)
	return &http.Cookie{
		Name: SessionCookie, Value: a.sealSession(s), Path: "/",
		Expires: s.exp, MaxAge: int(a.o.SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secure(r),
	}, nil
}

// secure reports whether r reached the browser's side over TLS: served over TLS
// here, or through a trusted proxy (--auth-proxy-trusted) that ended TLS and
// says so with X-Forwarded-Proto: https. The cookies set then are Secure, so
// the browser never sends them over plain HTTP. Anyone else's header is
// ignored.
func (a *Authenticator) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") && a.trustedPeer(r.RemoteAddr)
}

// SignOut returns the cookie that clears the session in the browser. Sessions
// are signed, not stored: one copied before it was cleared stays valid until it
// ends (SessionTTL).
func (a *Authenticator) SignOut(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secure(r)}
}

// clientAddr is the address a request came from, without the port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return shorten(r.RemoteAddr)
	}
	return host
}

// CSRF tokens: a mutating request of a browser (session or proxy) carries, in
// the header CSRFHeader or the form field CSRFField, a token bound to its
// session: an HMAC of the session's id with the group's key. Another site can
// make the browser send the cookie, never read the token.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
	// PreSessionCookie carries the double-submitted token of the sign-in form,
	// before there is a session.
	PreSessionCookie = "orderwatch_csrf"
)

// CSRFToken returns the CSRF token of p's requests, "" when p needs none.
func (a *Authenticator) CSRFToken(p Principal) string {
	if !p.NeedsCSRF() {
		return ""
	}
	return a.sign.token("csrf", p.binding)
}

// CheckCSRF reports whether r carries p's CSRF token (always true when p needs
// none). A form's field is read only from a form body.
func (a *Authenticator) CheckCSRF(p Principal, r *http.Request) bool {
	if !p.NeedsCSRF() {
		return true
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" && isForm(r) {
		got = r.PostFormValue(CSRFField)
	}
	return got != "" && constantEqual(got, a.CSRFToken(p))
}

// PreSessionToken returns the token of a sign-in form, and sets it in a cookie
// when r has none: the form posts it back and CheckPreSession compares the two.
func (a *Authenticator) PreSessionToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(PreSessionCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	v := base64.RawURLEncoding.EncodeToString(randomBytes(32))
	http.SetCookie(w, &http.Cookie{Name: PreSessionCookie, Value: v, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: a.secure(r), MaxAge: int(time.Hour / time.Second)})
	return v
}

// CheckPreSession reports whether a sign-in form's token matches its cookie.
func (a *Authenticator) CheckPreSession(r *http.Request) bool {
	c, err := r.Cookie(PreSessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return constantEqual(r.PostFormValue(CSRFField), c.Value)
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")
}

func constantEqual(a, b string) bool {
	return len(a) == len(b) && subtleEq(a, b)
}
