package api

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/orderwatch/orderwatch/auth"
)

//go:embed templates/signin.html
var templates embed.FS

// signinPage is the sign-in form: enough for a browser to sign in; the console
// builds its pages on the session it sets.
var signinPage = template.Must(template.ParseFS(templates, "templates/signin.html"))

// afterSignIn is where a sign-in goes when the form names no local page.
const afterSignIn = "/"

// maxSignInName is the longest name of a user (the users file's rule).
const maxSignInName = 128

type signinData struct {
	Token, Next, Name, Error string
	HasUsers                 bool
	SignedIn, SignOutToken   string
}

// signInPage serves GET /signin: the form, with its own CSRF token (a cookie it
// must match, as there is no session yet), or the sign-out button when the
// browser is signed in.
func (s *server) signInPage(w http.ResponseWriter, r *http.Request) {
	d := signinData{Next: localPath(r.URL.Query().Get("next")), HasUsers: s.auth.Users().Len() > 0}
	if p, ok := auth.FromContext(r.Context()); ok && p.NeedsCSRF() {
		d.SignedIn, d.SignOutToken = p.Name, s.auth.CSRFToken(p)
	} else {
		d.Token = s.auth.PreSessionToken(w, r)
	}
	s.page(w, http.StatusOK, d)
}

// signIn serves POST /signin (form: name, password, csrf_token, next): it sets
// the session cookie and redirects (303) to next, or answers the form again
// with why not: 401 for a wrong name or password, 429 while throttled, 403
// without the form's CSRF token.
//
// A name longer than a user's (maxSignInName) or a password longer than
// bcrypt reads (auth.MaxPasswordLen) is answered 400 at once: nobody has them,
// so they are neither hashed nor counted as a failure of the name or address.
func (s *server) signIn(w http.ResponseWriter, r *http.Request) {
	if code, msg := s.readForm(w, r); msg != "" {
		s.page(w, code, signinData{Token: s.auth.PreSessionToken(w, r), Next: afterSignIn, HasUsers: s.auth.Users().Len() > 0, Error: msg})
		return
	}
	if !s.auth.CheckPreSession(r) {
		s.refuse(w, http.StatusForbidden, refusedCSRF, "sign-in form without its CSRF token: load /signin and sign in from there")
		return
	}
	name, next, password := strings.TrimSpace(r.PostFormValue("name")), localPath(r.PostFormValue("next")), r.PostFormValue("password")
	if len(name) > maxSignInName || len(password) > auth.MaxPasswordLen {
		s.page(w, http.StatusBadRequest, signinData{Token: s.auth.PreSessionToken(w, r), Next: next, HasUsers: s.auth.Users().Len() > 0,
			Error: fmt.Sprintf("A name is at most %d bytes and a password at most %d bytes (bcrypt reads no more): nobody signs in with these.", maxSignInName, auth.MaxPasswordLen)})
		return
	}
	c, err := s.auth.SignIn(r, name, password)
	if err != nil {
		d := signinData{Token: s.auth.PreSessionToken(w, r), Next: next, Name: name, HasUsers: s.auth.Users().Len() > 0}
		code := http.StatusUnauthorized
		d.Error = "Wrong name or password."
		if te := new(auth.ThrottledError); errors.As(err, &te) {
			code = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(te.Wait))
			d.Error = "Too many failed sign-ins: try again in " + strconv.Itoa(te.Wait) + " seconds."
		}
		s.page(w, code, d)
		return
	}
	http.SetCookie(w, c)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut serves POST /signout (form: csrf_token): it clears the session
// cookie and redirects to /signin.
func (s *server) signOut(w http.ResponseWriter, r *http.Request) {
	if code, msg := s.readForm(w, r); msg != "" {
		writeError(w, code, msg)
		return
	}
	if p, ok := auth.FromContext(r.Context()); ok && !s.auth.CheckCSRF(p, r) {
		s.refuse(w, http.StatusForbidden, refusedCSRF, "sign-out form without its CSRF token")
		return
	}
	http.SetCookie(w, s.auth.SignOut(r))
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

func (s *server) page(w http.ResponseWriter, code int, d signinData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(code)
	if err := signinPage.Execute(w, d); err != nil {
		s.log.Warn("write the sign-in page", "err", err)
	}
}

// localPath returns p when it is a path on this server, else afterSignIn: a
// sign-in never redirects to another site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || len(p) > 512 {
		return afterSignIn
	}
	return p
}
