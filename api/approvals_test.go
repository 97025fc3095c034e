package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

const testToken = "t0ken-for-tests"

// approvalsEnv serves the API over real parts: Badger on a temp dir, an embedded
// nats-server with the streams, the executor publishing to it and the governor.
type approvalsEnv struct {
	t    *testing.T
	srv  *httptest.Server
	h    http.Handler
	nc   *nats.Conn
	st   *store.Store
	js   jetstream.JetStream
	reg  *prometheus.Registry
	p    *actions.Policy
	full *atomic.Bool // the store refuses writes as on a nearly full disk
}

const approvalsPolicy = `version: api-1
escalation:
  finance: [{team: credit-desk, sla: 10m}, {team: finance-controller, sla: 30m}]
rules:
- {id: credit-hold, action: flag_finance, mode: approval, escalation: finance, when: {features: {on_credit_hold: {eq: 1}}}}
`

// newApprovalsEnv serves the API with the shared token, set further by with.
func newApprovalsEnv(t *testing.T, token string, with ...func(*api.Options)) *approvalsEnv {
	t.Helper()
	dir := t.TempDir()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	full := new(atomic.Bool)
	st, err := store.Open(store.Options{Dir: dir + "/badger", CheckSpace: func() error {
		if full.Load() {
			return errors.New("disk full: 5 MiB free")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := actions.ParsePolicy([]byte(approvalsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := actions.OpenKillSwitch(st)
	if err != nil {
		t.Fatal(err)
	}
	p.UseKillSwitch(ks)
	reg := prometheus.NewRegistry()
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Policy: actions.NewLive(p), Registerer: reg, Interval: 20 * time.Millisecond,
		Publish: func(ctx context.Context, subject, msgID string, data []byte) error {
			_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	gov, err := actions.NewGovernor(actions.GovernorOptions{Store: st, Policy: actions.NewLive(p), Wake: exec.Wake, Registerer: reg, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- exec.Run(ctx) }()
	o := api.Options{Store: st, Gatherer: reg, Governor: gov, Token: token}
	for _, w := range with {
		w(&o)
	}
	h := api.Handler(o)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("executor: %v", err)
		}
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &approvalsEnv{t: t, srv: srv, h: h, nc: nc, st: st, js: js, reg: reg, p: p, full: full}
}

// creditHold stores an order on credit hold and lets the policy decide about it,
// as the pipeline does; it returns the decision id.
func (e *approvalsEnv) creditHold(order string, at time.Time) string {
	e.t.Helper()
	state := features.OrderState{OrderID: order, Known: true, Warehouse: "DAL", CustomerID: "C-7", CustomerTier: "gold"}
	var v features.Vector
	v[features.FOnCreditHold] = 1
	b := e.st.NewBatch()
	defer b.Discard()
	rec, _ := json.Marshal(map[string]any{"state": state})
	if err := b.PutOrder(order, rec, 0); err != nil {
		e.t.Fatal(err)
	}
	ev := fmt.Appendf(nil, `{"id":"h-%s","type":"credit.hold","order_id":%q,"occurred_at":%q,"source":"finance","actor":"credit-engine","schema":1,"data":{"reason":"over_limit"}}`,
		order, order, at.Format(time.RFC3339Nano))
	if err := b.AppendTimeline(order, at, "h-"+order, ev, 0); err != nil {
		e.t.Fatal(err)
	}
	ds, err := e.p.Decide(b, &actions.Input{OrderID: order, At: at, TriggerEvent: "h-" + order, TriggerType: "event",
		Risk: 0.8, Features: &v, State: &state}, actions.Memory{}, nil)
	if err != nil || len(ds) != 1 || ds[0].Status != actions.StatusPendingApproval {
		e.t.Fatalf("decide: %v %+v, want one decision pending approval", err, ds)
	}
	if err := e.p.Record(b, &ds[0]); err != nil {
		e.t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		e.t.Fatal(err)
	}
	return ds[0].ID
}

func (e *approvalsEnv) do(method, path, token, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *approvalsEnv) view(id string) actions.View {
	e.t.Helper()
	code, body := e.do("GET", "/api/v1/decisions/"+id, "", "")
	if code != 200 {
		e.t.Fatalf("GET decision %s = %d %s", id, code, body)
	}
	var v actions.View
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *approvalsEnv) commands(subject string) []actions.Command {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), pipeline.StreamActions)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []actions.Command
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			return out
		}
		if m.Subject != subject {
			continue
		}
		var c actions.Command
		if err := json.Unmarshal(m.Data, &c); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 15s waiting for %s", what)
		}
	}
}

// TestApprovalWithoutValidTokenChangesNothing: every refused approval (no token
// configured, none sent, a wrong one, a body without who or why) leaves the
// decision pending, its trail empty and ACTIONS empty.
func TestApprovalWithoutValidTokenChangesNothing(t *testing.T) {
	cases := []struct {
		name, configured, sent, body string
		code                         int
		says                         string
	}{
		{"no token configured", "", testToken, `{"by":"amy","reason":"ok"}`, 403, "ORDERWATCH_API_TOKEN"},
		{"no token sent", testToken, "", `{"by":"amy","reason":"ok"}`, 401, "bearer token"},
		{"wrong token", testToken, "guess", `{"by":"amy","reason":"ok"}`, 401, "bearer token"},
		{"a by with control characters", testToken, testToken, `{"by":"amy\u0007","reason":"ok"}`, 400, "by holds control characters"},
		{"no reason", testToken, testToken, `{"by":"amy"}`, 400, "reason is required"},
		{"unknown field", testToken, testToken, `{"by":"amy","reason":"ok","force":true}`, 400, "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newApprovalsEnv(t, c.configured)
			id := e.creditHold("SO-1", time.Now().UTC())
			for _, verb := range []string{"approve", "reject"} {
				code, body := e.do("POST", "/api/v1/approvals/"+id+"/"+verb, c.sent, c.body)
				if code != c.code || !strings.Contains(body, c.says) {
					t.Errorf("%s = %d %s, want %d saying %q", verb, code, body, c.code, c.says)
				}
			}
			time.Sleep(100 * time.Millisecond) // executor passes
			v := e.view(id)
			if v.State != actions.StatePending || len(v.Trail) != 0 || len(v.Queued) != 0 {
				t.Errorf("after refused approvals: state %s trail %v queued %v, want pending and untouched", v.State, v.Trail, v.Queued)
			}
			if n := len(e.commands(actions.Subject(actions.ActionFlagFinance))); n != 0 {
				t.Errorf("ACTIONS holds %d commands, want 0", n)
			}
		})
	}
}

// TestApproveOverHTTP: the approval queues the command, the executor publishes it
// with the approver, and the decision, the approvals list, the order's history
// and the metrics all show who approved it.
func TestApproveOverHTTP(t *testing.T) {
	e := newApprovalsEnv(t, testToken)
	at := time.Now().UTC().Add(-2 * time.Minute)
	id := e.creditHold("SO-1", at)
	other := e.creditHold("SO-2", at.Add(time.Second))

	code, body := e.do("GET", "/api/v1/approvals", "", "")
	var list struct{ Approvals []actions.View }
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Approvals) != 2 || list.Approvals[0].Decision.ID != id {
		t.Fatalf("GET approvals = %d %s, want both, oldest first", code, body)
	}
	if w := list.Approvals[0].Waiting; w.AgeSeconds < 100 || w.Team != "credit-desk" {
		t.Errorf("waiting = %+v, want an age of about 120s with credit-desk", w)
	}
	if got := testutil.ToFloat64(gatherGauge(t, e.reg, "orderwatch_approvals_pending")); got != 2 {
		t.Errorf("orderwatch_approvals_pending = %v, want 2", got)
	}
	if got := testutil.ToFloat64(gatherGauge(t, e.reg, "orderwatch_approval_oldest_age_seconds")); got < 100 {
		t.Errorf("orderwatch_approval_oldest_age_seconds = %v, want about 120", got)
	}

	code, body = e.do("POST", "/api/v1/approvals/"+id+"/approve", testToken, `{"by":"amy","reason":"customer paid by wire"}`)
	if code != 200 {
		t.Fatalf("approve = %d %s", code, body)
	}
	var cmds []actions.Command
	waitUntil(t, "the approved command published", func() bool {
		cmds = e.commands(actions.Subject(actions.ActionFlagFinance))
		return len(cmds) == 1
	})
	if c := cmds[0]; c.DecisionID != id || c.ApprovedBy != "service" || c.ApprovalReason != "customer paid by wire" || c.OrderID != "SO-1" {
		t.Errorf("command = %+v, want SO-1's approved by the service", c)
	}
	waitUntil(t, "the decision published", func() bool { return e.view(id).State == actions.StatePublished })
	v := e.view(id)
	if len(v.Trail) != 1 || v.Trail[0].Kind != actions.TrailApproved || v.Trail[0].By != "service" || v.Trail[0].OnBehalfOf != "amy" || v.Trail[0].Reason != "customer paid by wire" {
		t.Errorf("trail = %+v, want the service's approval for amy with her reason", v.Trail)
	}

	code, body = e.do("POST", "/api/v1/approvals/"+id+"/reject", testToken, `{"by":"bob","reason":"no"}`)
	if code != 409 || !strings.Contains(body, "approved by service for amy") {
		t.Errorf("reject after approve = %d %s, want 409 naming the service and amy", code, body)
	}
	if code, body := e.do("POST", "/api/v1/approvals/0000000000000000-none/approve", testToken, `{"by":"amy","reason":"x"}`); code != 404 {
		t.Errorf("approve unknown = %d %s, want 404", code, body)
	}
	code, body = e.do("POST", "/api/v1/approvals/"+other+"/reject", testToken, `{"by":"bob","reason":"order cancelled by phone"}`)
	if code != 200 || e.view(other).State != actions.StateRejected {
		t.Errorf("reject = %d %s, want the decision rejected", code, body)
	}

	code, body = e.do("GET", "/api/v1/orders/SO-1", "", "")
	var order struct {
		History []struct{ Kind, What, Who string }
	}
	if err := json.Unmarshal([]byte(body), &order); code != 200 || err != nil {
		t.Fatalf("GET order = %d %s", code, body)
	}
	var kinds []string
	for _, h := range order.History {
		kinds = append(kinds, h.Kind)
		if h.Kind == actions.TrailApproved && (h.Who != "service for amy" || !strings.Contains(h.What, "customer paid by wire")) {
			t.Errorf("history approval = %+v, want the service for amy and her reason", h)
		}
	}
	if want := "event score decision approved attempt outcome"; strings.Join(kinds, " ") != want {
		t.Errorf("history kinds = %v, want %s (in time order)", kinds, want)
	}
	if code, body := e.do("GET", "/api/v1/approvals", "", ""); code != 200 || !strings.Contains(body, `"approvals": []`) {
		t.Errorf("GET approvals after answering = %d %s, want none", code, body)
	}
	if got := testutil.ToFloat64(gatherGauge(t, e.reg, "orderwatch_approvals_pending")); got != 0 {
		t.Errorf("orderwatch_approvals_pending = %v, want 0", got)
	}
}

func TestKillSwitchAndDecisionQueriesOverHTTP(t *testing.T) {
	e := newApprovalsEnv(t, testToken)
	t0 := time.Now().UTC().Add(-time.Hour)
	first := e.creditHold("SO-1", t0)
	second := e.creditHold("SO-2", t0.Add(30*time.Minute))

	if code, _ := e.do("POST", "/api/v1/killswitch", "", `{"on":true,"by":"ops","reason":"incident"}`); code != 401 {
		t.Errorf("kill switch without token = %d, want 401", code)
	}
	code, body := e.do("POST", "/api/v1/killswitch", testToken, `{"on":true,"by":"ops","reason":"incident 42"}`)
	if code != 200 || !strings.Contains(body, `"halted": true`) {
		t.Fatalf("kill switch on = %d %s", code, body)
	}
	if code, body := e.do("POST", "/api/v1/approvals/"+first+"/approve", testToken, `{"by":"amy","reason":"ok"}`); code != 409 || !strings.Contains(body, "kill switch") {
		t.Errorf("approve under the kill switch = %d %s, want 409", code, body)
	}
	if got := testutil.ToFloat64(gatherGauge(t, e.reg, "orderwatch_kill_switch")); got != 1 {
		t.Errorf("orderwatch_kill_switch = %v, want 1", got)
	}
	if code, body := e.do("POST", "/api/v1/killswitch", testToken, `{"on":false,"by":"ops","reason":"resolved"}`); code != 200 || !strings.Contains(body, `"halted": false`) {
		t.Errorf("kill switch off = %d %s", code, body)
	}

	cases := []struct {
		query string
		code  int
		ids   []string
	}{
		{"", 200, []string{second, first}},
		{"?order=SO-1", 200, []string{first}},
		{"?since=" + t0.Add(10*time.Minute).Format(time.RFC3339), 200, []string{second}},
		{"?since=45m", 200, []string{second}},
		{"?order=SO-2&since=2h", 200, []string{second}},
		{"?limit=1", 200, []string{second}},
		{"?since=yesterday", 400, nil},
		{"?limit=0", 400, nil},
	}
	for _, c := range cases {
		t.Run("decisions"+c.query, func(t *testing.T) {
			code, body := e.do("GET", "/api/v1/decisions"+c.query, "", "")
			if code != c.code {
				t.Fatalf("GET = %d %s, want %d", code, body, c.code)
			}
			if c.code != 200 {
				return
			}
			var out struct{ Decisions []actions.View }
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, v := range out.Decisions {
				ids = append(ids, v.Decision.ID)
			}
			if strings.Join(ids, ",") != strings.Join(c.ids, ",") {
				t.Errorf("ids = %v, want %v", ids, c.ids)
			}
		})
	}
}

// gatherGauge finds an unlabelled metric in reg by name.
func gatherGauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			v := m.GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("metric %s not found", name)
	return nil
}

// TestWritesRefusedForSpaceAnswer503: while the store takes no writes (its disk
// nearly full), an approval and the kill switch answer 503 with the reason, and
// nothing changes; once space returns they go through.
func TestWritesRefusedForSpaceAnswer503(t *testing.T) {
	e := newApprovalsEnv(t, testToken)
	id := e.creditHold("SO-1", time.Now().UTC().Add(-time.Hour))
	e.full.Store(true)
	time.Sleep(300 * time.Millisecond) // past the store's cached answer
	for _, c := range []struct{ path, body string }{
		{"/api/v1/approvals/" + id + "/approve", `{"by":"amy","reason":"ok"}`},
		{"/api/v1/killswitch", `{"on":true,"by":"ops","reason":"incident"}`},
	} {
		if code, body := e.do("POST", c.path, testToken, c.body); code != 503 || !strings.Contains(body, "disk full: 5 MiB free") {
			t.Errorf("POST %s while the disk is full = %d %s, want 503 with the reason", c.path, code, body)
		}
	}
	if code, body := e.do("GET", "/api/v1/killswitch", testToken, ""); code != 200 || !strings.Contains(body, `"halted": false`) {
		t.Errorf("kill switch after a refused write = %d %s, want still off", code, body)
	}
	e.full.Store(false)
	time.Sleep(300 * time.Millisecond)
	if code, body := e.do("POST", "/api/v1/approvals/"+id+"/approve", testToken, `{"by":"amy","reason":"ok"}`); code != 200 {
		t.Errorf("approve once space returned = %d %s", code, body)
	}
}
