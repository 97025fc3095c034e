package api

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/orderwatch/orderwatch/auth"
)

// The console is the web pages served at /: server-rendered from the API's own
// answers, which each page asks of the API handler in-process with the
// browser's credentials (consoleAPI), so a page never shows what the API would
// not, and a group's member forwards as the API does.

//go:embed templates/console/*.html templates/console/console.css
var consoleFiles embed.FS

var consoleTemplates = template.Must(template.New("console").Funcs(consoleFuncs).ParseFS(consoleFiles, "templates/console/*.html"))

var consoleCSS = func() []byte {
	b, err := consoleFiles.ReadFile("templates/console/console.css")
	if err != nil {
		panic("api: " + err.Error()) // cannot happen: it is embedded
	}
	return b
}()

const (
	// flashCookie carries the message a page shows once after a POST redirects
	// to it (an answer, the kill switch, a reload).
	flashCookie = "orderwatch_flash"
	// maxFlashBytes bounds a flash message: a cookie holds 4 KiB.
	maxFlashBytes = 1500
	// consolePage is how many rows a page of the at-risk queue or the approvals
	// shows.
	consolePage = 50
	// maxFormBytes bounds the body of a console form (and of the sign-in): a
	// bulk answer of maxSelection decisions with a reason of formReasonBytes
	// fits several times. The API's 64 KiB bound (limit) comes first.
	maxFormBytes = 16 << 10
	// formReasonBytes bounds a reason typed in a form: the API's bound of the
	// reason of an answer and of the kill switch (api/actions.go).
	formReasonBytes = 1000
)

// consoleRoutes adds the console's pages to mux.
func (s *server) consoleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /console.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(consoleCSS)
	})
	mux.HandleFunc("GET /{$}", s.signedIn("/", s.atRiskPage))
	mux.HandleFunc("GET /orders", s.signedIn("/orders", s.findOrderPage))
	mux.HandleFunc("GET /orders/{id}", s.signedIn("/", s.orderPage))
	mux.HandleFunc("GET /approvals", s.signedIn("/approvals", s.approvalsPage))
	mux.HandleFunc("POST /approvals/{id}/answer", s.signedIn("/approvals", s.answerOne))
	mux.HandleFunc("POST /approvals/preview", s.signedIn("/approvals", s.previewAnswers))
	mux.HandleFunc("POST /approvals/apply", s.signedIn("/approvals", s.applyAnswers))
	mux.HandleFunc("GET /models", s.signedIn("/models", s.modelsPage))
	mux.HandleFunc("GET /operations", s.signedIn("/operations", s.operationsPage))
	mux.HandleFunc("POST /operations/killswitch", s.signedIn("/operations", s.turnKillSwitch))
	mux.HandleFunc("POST /operations/policy/reload", s.signedIn("/operations", s.reloadPolicyForm))
}

// consoleHandler is a page of the console, for a signed-in principal.
type consoleHandler func(w http.ResponseWriter, r *http.Request, p auth.Principal)

// signedIn guards a page: nobody signed in is sent to /signin (and back to the
// page after, or to back for a POST); a POST needs the session's CSRF token
// (403 without).
func (s *server) signedIn(back string, h consoleHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			next := back
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if code, msg := s.readForm(w, r); msg != "" {
				s.consoleError(w, p, code, msg)
				return
			}
		}
		if r.Method == http.MethodPost && !s.auth.CheckCSRF(p, r) {
			s.m.refused.WithLabelValues(refusedCSRF).Inc()
			s.consoleError(w, p, http.StatusForbidden, "This form was sent without its CSRF token (or with another session's): reload the page and send it again.")
			return
		}
		h(w, r, p)
	}
}

// readForm parses the body of a form a browser posted (r.PostForm): an
// application/x-www-form-urlencoded body (what the console's forms send) of at
// most maxFormBytes. Otherwise it returns the status and the message to show,
// and reads nothing more: a 415 for any other body, a 413 for a larger one, a
// 400 for one that cannot be read. A 413 is counted as
// orderwatch_api_requests_refused_total{reason="body_size"}.
func (s *server) readForm(w http.ResponseWriter, r *http.Request) (int, string) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		return http.StatusUnsupportedMediaType, "This form was not sent as a browser sends the console's forms (application/x-www-form-urlencoded): send it from its page."
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
			s.m.refused.WithLabelValues(refusedBodySize).Inc()
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("This form is larger than %d KiB: select fewer decisions or shorten the reason.", maxFormBytes>>10)
		}
		return http.StatusBadRequest, "This form could not be read: " + clip(err.Error(), 200)
	}
	return 0, ""
}

// checkReason says what is wrong with a reason typed in a form, "" when
// nothing: the API's rules (at most formReasonBytes, no control character),
// and required when the answer needs one.
func checkReason(reason string, required bool) string {
	switch {
	case reason == "" && required:
		return "A reason is required: the trail keeps who answered and why."
	case len(reason) > formReasonBytes:
		return fmt.Sprintf("The reason is %d bytes, longer than %d bytes: shorten it.", len(reason), formReasonBytes)
	case strings.ContainsFunc(reason, unicode.IsControl):
		return "The reason holds control characters: type it again."
	}
	return ""
}

// apiError is what the API answered instead of a success.
type apiError struct {
	Code int
	Msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("api: %d: %s", e.Code, e.Msg) }

// consoleAPI asks the API handler for method path (with body as JSON) on
// behalf of the browser's request r: with its credentials (cookie, proxy
// header, address), and for a change the session's CSRF token, which the
// console's form carried. A success is decoded into out; anything else is an
// *apiError with the API's own message.
func (s *server) consoleAPI(r *http.Request, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("api: console: encode the body of %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return fmt.Errorf("api: console: %s %s: %w", method, path, err)
	}
	req.Header = r.Header.Clone()
	req.Header.Del("Content-Length")
	req.Header.Del(auth.CSRFHeader)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.RemoteAddr, req.Host, req.TLS = r.RemoteAddr, r.Host, r.TLS
	if p, ok := auth.FromContext(r.Context()); ok && method != http.MethodGet {
		req.Header.Set(auth.CSRFHeader, s.auth.CSRFToken(p))
	}
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, req)
	if rec.Code < 200 || rec.Code > 299 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(clip(rec.Body.String(), 300))
		}
		return &apiError{Code: rec.Code, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		return fmt.Errorf("api: console: decode the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// pageData is what every page's template gets: the page's own data in Body.
type pageData struct {
	Title  string
	Active string // the nav entry of the page
	User   auth.Principal
	CSRF   string
	Flash  flash
	Status int
	Body   any
}

// flash is a message a page shows once, after a POST redirected to it.
type flash struct {
	Msg   string
	Error bool
}

// render writes page name with its data.
func (s *server) render(w http.ResponseWriter, r *http.Request, code int, name, title string, p auth.Principal, body any) {
	d := pageData{Title: title, Active: name, User: p, CSRF: s.auth.CSRFToken(p), Status: code, Body: body}
	if r != nil {
		d.Flash = s.takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := consoleTemplates.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("console page not rendered", "page", name, "err", err)
		code, buf = http.StatusInternalServerError, bytes.Buffer{}
		buf.WriteString("<!doctype html><title>orderwatch</title><p id=\"flash\">This page could not be drawn; the log says why.</p>")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// consoleError answers a page that could not be served, with why.
func (s *server) consoleError(w http.ResponseWriter, p auth.Principal, code int, msg string) {
	s.render(w, nil, code, "error", http.StatusText(code), p, msg)
}

// apiFailed answers a page whose API call failed: with the API's status and
// message, or 500 (logged) for a failure of the console itself.
func (s *server) apiFailed(w http.ResponseWriter, p auth.Principal, err error) {
	if ae := new(apiError); errors.As(err, &ae) {
		s.consoleError(w, p, ae.Code, ae.Msg)
		return
	}
	s.log.Error("console page failed", "err", err)
	s.consoleError(w, p, http.StatusInternalServerError, "The page could not be served: "+err.Error())
}

// redirectWithFlash sends the browser to page, which shows msg once. The
// cookie is signed: a message planted by anyone else is not shown.
func (s *server) redirectWithFlash(w http.ResponseWriter, r *http.Request, page string, f flash) {
	v := "ok:"
	if f.Error {
		v = "error:"
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: s.auth.Seal("flash", []byte(v+clip(f.Msg, maxFlashBytes))),
		Path: "/", MaxAge: 60, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, page, http.StatusSeeOther)
}

// takeFlash reads the flash message a redirect left, and clears it.
func (s *server) takeFlash(w http.ResponseWriter, r *http.Request) flash {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return flash{}
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	b, ok := s.auth.Unseal("flash", c.Value)
	if !ok {
		return flash{}
	}
	if msg, ok := strings.CutPrefix(string(b), "error:"); ok {
		return flash{Msg: msg, Error: true}
	}
	msg, _ := strings.CutPrefix(string(b), "ok:")
	return flash{Msg: msg}
}

// consoleFuncs are the templates' formatting functions.
var consoleFuncs = template.FuncMap{
	"pct": func(v any) string {
		switch f := v.(type) {
		case *float64:
			if f == nil {
				return "–"
			}
			return fmt.Sprintf("%.0f%%", *f*100)
		case float64:
			if math.IsNaN(f) {
				return "–"
			}
			return fmt.Sprintf("%.0f%%", f*100)
		}
		return "–"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"age": func(seconds float64) string { return age(time.Duration(seconds * float64(time.Second))) },
	"minutes": func(m *float64) string {
		if m == nil {
			return "–"
		}
		if *m < 0 {
			return age(time.Duration(-*m*float64(time.Minute))) + " ago"
		}
		return "in " + age(time.Duration(*m*float64(time.Minute)))
	},
	"orderURL": func(id string) string { return "/orders/" + url.PathEscape(id) },
	"answerURL": func(id string) string {
		return "/approvals/" + url.PathEscape(id) + "/answer"
	},
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
}

// age is a duration for people: 45s, 12m, 3h05m, 2d4h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
