package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
)

// blockingModels is a model registry whose Status waits until release is
// closed, so the test holds API requests inside their handler for as long as it
// wants, and counts how many are inside at once.
type blockingModels struct {
	release chan struct{}
	inside  atomic.Int32
	most    atomic.Int32
	entered chan struct{}
}

func (b *blockingModels) Status() any {
	n := b.inside.Add(1)
	defer b.inside.Add(-1)
	for {
		m := b.most.Load()
		if n <= m || b.most.CompareAndSwap(m, n) {
			break
		}
	}
	b.entered <- struct{}{}
	<-b.release
	return map[string]string{"status": "ok"}
}
func (b *blockingModels) Activate(string, string) error { return nil }
func (b *blockingModels) Validate(string) error         { return nil }

// TestConcurrentAPIRequestsAreBounded: with MaxInFlight 4, ten concurrent API
// requests put at most four handlers to work; the six others are refused at once
// with 503 and Retry-After, and counted. While the API is saturated, /metrics,
// /healthz and /readyz still answer.
func TestConcurrentAPIRequestsAreBounded(t *testing.T) {
	const maxInFlight, clients = 4, 10
	st := openStore(t)
	reg := prometheus.NewRegistry()
	models := &blockingModels{release: make(chan struct{}), entered: make(chan struct{}, clients)}
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Gatherer: reg, Registerer: reg, Models: models, MaxInFlight: maxInFlight}))
	defer srv.Close()
	var released sync.Once
	release := func() { released.Do(func() { close(models.release) }) }
	defer release()

	type answer struct {
		code       int
		retryAfter string
	}
	answers := make(chan answer, clients)
	for range clients {
		go func() {
			resp, err := http.Get(srv.URL + "/api/v1/models")
			if err != nil {
				answers <- answer{code: -1, retryAfter: err.Error()}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
	}
	// The refused answer at once; the others are inside, waiting.
	got := map[int]int{}
	for range clients - maxInFlight {
		select {
		case a := <-answers:
			got[a.code]++
			if a.code == http.StatusServiceUnavailable && a.retryAfter == "" {
				t.Error("503 without Retry-After")
			}
		case <-time.After(heldOpen):
			t.Fatalf("only %v answered while %d handlers were inside; want %d refused at once", got, models.inside.Load(), clients-maxInFlight)
		}
	}
	if got[http.StatusServiceUnavailable] != clients-maxInFlight {
		t.Errorf("answers while saturated: %v, want %d x 503", got, clients-maxInFlight)
	}
	for range maxInFlight {
		<-models.entered
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s while the API is saturated: %d, want 200", path, resp.StatusCode)
		}
		if path == "/metrics" && !strings.Contains(string(body), "orderwatch_api_requests_in_flight 4") {
			t.Errorf("/metrics while saturated does not show 4 requests in flight")
		}
	}
	release()
	for range maxInFlight {
		if a := <-answers; a.code != 200 {
			t.Errorf("a request let in: %d, want 200", a.code)
		}
	}
	if most := models.most.Load(); most > maxInFlight {
		t.Errorf("%d handlers ran at once, want at most %d", most, maxInFlight)
	}
	if n := testutil.ToFloat64(counterOf(t, reg, "orderwatch_api_requests_refused_total", "busy")); n != clients-maxInFlight {
		t.Errorf("orderwatch_api_requests_refused_total{reason=busy} = %v, want %d", n, clients-maxInFlight)
	}
}

// counterOf finds the series of a metric with the given reason label in reg.
func counterOf(t *testing.T, reg *prometheus.Registry, name, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("%s{reason=%q} is not in the registry", name, reason)
	return nil
}

// fixedPolicy is a policy file that reloads to the same policy.
type fixedPolicy struct{ p *actions.Policy }

func (f fixedPolicy) Policy() *actions.Policy          { return f.p }
func (f fixedPolicy) Reload() (*actions.Policy, error) { return f.p, nil }

// TestEveryPOSTRefusesABigBody: every POST endpoint answers a body over 64 KiB
// with 413 before its handler reads it, and a body that hides its size (chunked)
// is cut at 64 KiB.
func TestEveryPOSTRefusesABigBody(t *testing.T) {
	e := newApprovalsEnv(t, testToken)
	id := e.creditHold("SO-BIG", time.Now().Add(-time.Minute))
	p, err := actions.ParsePolicy([]byte(approvalsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	admin := httptest.NewServer(api.Handler(api.Options{Store: e.st, Registerer: reg, Token: testToken,
		Models: &blockingModels{release: make(chan struct{}), entered: make(chan struct{}, 1)}, Policy: fixedPolicy{p}}))
	defer admin.Close()

	big := `{"by":"amy","reason":"` + strings.Repeat("x", 100<<10) + `"}`
	for _, c := range []struct{ base, path string }{
		{e.srv.URL, "/api/v1/approvals/" + id + "/approve"},
		{e.srv.URL, "/api/v1/approvals/" + id + "/reject"},
		{e.srv.URL, "/api/v1/decisions/" + id + "/ack"},
		{e.srv.URL, "/api/v1/killswitch"},
		{admin.URL, "/api/v1/models/cutoff_risk/activate"},
		{admin.URL, "/api/v1/models/validate"},
		{admin.URL, "/api/v1/policy/reload"},
	} {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(bytes.NewReader([]byte(big))) // no length known: sent chunked
			}
			req, err := http.NewRequest(http.MethodPost, c.base+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("POST %s: %v", c.path, err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := http.StatusRequestEntityTooLarge
			if resp.StatusCode != want {
				t.Errorf("POST %s with a 100 KiB body (chunked %v): %d %s, want %d", c.path, chunked, resp.StatusCode, msg, want)
			}
		}
	}
	if v := e.view(id); v.Waiting == nil || len(v.Trail) != 0 {
		t.Errorf("the decision was answered by a refused request: %+v", v)
	}
}

// TestTricklingBodyHoldsNoSlot: a client that sends a POST body a trickle at a
// time, with no token, must not hold one of the API's slots while it does:
// with every slot so held, approvals and the kill switch would get 503.
func TestTricklingBodyHoldsNoSlot(t *testing.T) {
	st := openStore(t)
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, MaxInFlight: 1}))
	defer srv.Close()
	for _, chunked := range []bool{false, true} {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/policy/reload", pr)
		if !chunked {
			req.ContentLength = 1000
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		_, _ = pw.Write([]byte(`{"x":`)) // and nothing more for now
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get(srv.URL + "/api/v1/stats")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /api/v1/stats while a body trickles in (chunked %v) = %d, want 200", chunked, resp.StatusCode)
		}
		pw.CloseWithError(io.ErrUnexpectedEOF)
		<-done
	}
}
