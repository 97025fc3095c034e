package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

const exceptionsPolicy = `
version: exceptions-api-test
escalation:
  warehouse: [{team: floor-lead, sla: 15m}]
  finance: [{team: credit-desk, sla: 10m}]
exception_owners: {warehouse_capacity: warehouse, credit: finance}
deadlines:
  - {id: released-not-picked, after: pick.released, expect: pick.confirmed, within: 60m, class: warehouse_capacity, category: execution}
  - {id: credit-hold-open, after: credit.hold, expect: credit.released, within: 4h, class: credit, category: policy}
rules:
  - {id: shadow-only, action: notify_customer_service, mode: shadow, when: {risk: {gte: 0.99}}}
`

// TestExceptionsEndpoint: GET /api/v1/exceptions lists the exception records
// the pipeline wrote, filtered by owner, class, open and order, a page at a
// time; GET /api/v1/orders/{id} shows the order's; with TokenForReads the
// list needs the token like the other reads.
func TestExceptionsEndpoint(t *testing.T) {
	st := openStore(t)
	pol, err := actions.ParsePolicy([]byte(exceptionsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	clock := t0
	p, err := process.New(process.Options{Store: st, Policy: actions.NewLive(pol), Clock: func() time.Time { return clock },
		DeadLetter: func(context.Context, *process.Message, string, string) error {
			return fmt.Errorf("unexpected dead letter")
		}})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	send := func(typ, order string, at time.Duration) {
		t.Helper()
		seq++
		clock = t0.Add(at)
		data := "{}"
		if typ == features.TypeOrderCreated {
			data = fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(20*time.Hour).Format(time.RFC3339))
		}
		tok := features.OrderToken(order)
		m := &process.Message{Seq: uint64(seq), Subject: fmt.Sprintf("orders.%d.%s.%s", features.Partition(tok, 16), typ, tok),
			Data: fmt.Appendf(nil, `{"id":"e-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`,
				seq, typ, order, clock.Format(time.RFC3339), data)}
		if _, err := p.Process(context.Background(), []*process.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	// Five orders: SO-1..3 released and not picked in time (SO-3 picked late),
	// SO-4 on credit hold too long, SO-5 picked in time.
	for i := 1; i <= 5; i++ {
		send(features.TypeOrderCreated, fmt.Sprintf("SO-%d", i), 0)
	}
	for _, o := range []string{"SO-1", "SO-2", "SO-3", "SO-5"} {
		send(features.TypePickReleased, o, time.Hour)
	}
	send(features.TypeCreditHold, "SO-4", time.Hour)
	send(features.TypePickConfirmed, "SO-5", 90*time.Minute)
	clock = t0.Add(6 * time.Hour)
	if _, err := p.Tick(); err != nil {
		t.Fatal(err)
	}
	send(features.TypePickConfirmed, "SO-3", 7*time.Hour)

	const token = "read-token"
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Token: token, TokenForReads: true}))
	defer srv.Close()
	get := func(path string, tok string, v any) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("GET %s: %v: %s", path, err, b)
			}
		}
		return resp.StatusCode
	}
	type list struct {
		Exceptions []process.Exception `json:"exceptions"`
		Next       string              `json:"next"`
	}
	// all follows the pages of a list.
	all := func(query string, limit int) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 10 {
			var l list
			path := fmt.Sprintf("/api/v1/exceptions?limit=%d&cursor=%s&%s", limit, cursor, query)
			if code := get(path, token, &l); code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, code)
			}
			if len(l.Exceptions) > limit {
				t.Fatalf("GET %s: %d exceptions, limit %d", path, len(l.Exceptions), limit)
			}
			for _, x := range l.Exceptions {
				s := x.Order + ":" + x.Deadline
				if !x.Open {
					s += ":closed"
				}
				out = append(out, s)
			}
			if cursor = l.Next; cursor == "" {
				return out
			}
		}
		t.Fatalf("%s: more than 10 pages", query)
		return nil
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{"SO-1:released-not-picked", "SO-2:released-not-picked", "SO-3:released-not-picked:closed", "SO-4:credit-hold-open"}},
		{"open=1", []string{"SO-1:released-not-picked", "SO-2:released-not-picked", "SO-4:credit-hold-open"}},
		{"open=0", []string{"SO-3:released-not-picked:closed"}},
		{"owner=warehouse&open=1", []string{"SO-1:released-not-picked", "SO-2:released-not-picked"}},
		{"owner=finance", []string{"SO-4:credit-hold-open"}},
		{"class=credit&owner=warehouse", nil},
		{"class=warehouse_capacity", []string{"SO-1:released-not-picked", "SO-2:released-not-picked", "SO-3:released-not-picked:closed"}},
		{"order=SO-3", []string{"SO-3:released-not-picked:closed"}},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 2, 100} {
			if got := all(c.query, limit); !slices.Equal(got, c.want) {
				t.Errorf("?%s (limit %d): %v, want %v", c.query, limit, got, c.want)
			}
		}
	}
	if code := get("/api/v1/exceptions?open=maybe", token, nil); code != http.StatusBadRequest {
		t.Errorf("?open=maybe: %d, want 400", code)
	}
	if code := get("/api/v1/exceptions", "", nil); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", code)
	}
	var order struct {
		Exceptions []process.Exception `json:"exceptions"`
	}
	if code := get("/api/v1/orders/SO-3", token, &order); code != http.StatusOK || len(order.Exceptions) != 1 ||
		order.Exceptions[0].Open || order.Exceptions[0].Owner != "warehouse" || order.Exceptions[0].ClosedBy != process.ClosedExpected {
		t.Errorf("GET /api/v1/orders/SO-3: %d %+v, want its closed released-not-picked exception", code, order.Exceptions)
	}
}

// TestExceptionRemindersReadNow: the reminders of an open overdue exception
// are not written one by one; GET /api/v1/exceptions, GET /api/v1/orders/{id}
// and the console's order page show them as of the time they are read, one
// each remind_every since the deadline passed, and the last one's time.
func TestExceptionRemindersReadNow(t *testing.T) {
	st := openStore(t)
	pol, err := actions.ParsePolicy([]byte(strings.Replace(exceptionsPolicy, "category: execution}", "category: execution, remind_every: 30m}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	clock := t0
	p, err := process.New(process.Options{Store: st, Policy: actions.NewLive(pol), Clock: func() time.Time { return clock },
		DeadLetter: func(context.Context, *process.Message, string, string) error {
			return fmt.Errorf("unexpected dead letter")
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []string{features.TypeOrderCreated, features.TypePickReleased} {
		clock = t0.Add(time.Duration(i) * time.Hour)
		data := "{}"
		if typ == features.TypeOrderCreated {
			data = fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(20*time.Hour).Format(time.RFC3339))
		}
		tok := features.OrderToken("SO-1")
		m := &process.Message{Seq: uint64(i + 1), Subject: fmt.Sprintf("orders.%d.%s.%s", features.Partition(tok, 16), typ, tok),
			Data: fmt.Appendf(nil, `{"id":"e-%d","type":%q,"order_id":"SO-1","occurred_at":%q,"source":"test","schema":1,"data":%s}`,
				i+1, typ, clock.Format(time.RFC3339), data)}
		if _, err := p.Process(context.Background(), []*process.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	// Due at 2h: overdue at the tick of 2h01, reminded at 2h30 and 3h.
	for _, at := range []time.Duration{121, 151, 181} {
		clock = t0.Add(at * time.Minute)
		if _, err := p.Tick(); err != nil {
			t.Fatal(err)
		}
	}
	ppl := newPeople(t, auth.Options{})
	srv := httptest.NewServer(api.Handler(api.Options{Store: st, Auth: ppl.a, Clock: func() time.Time { return clock }}))
	t.Cleanup(srv.Close)
	b := signedIn(t, srv.URL, "vic")
	check := func(n int, last time.Duration) {
		t.Helper()
		var l, o struct {
			Exceptions []process.Exception `json:"exceptions"`
		}
		getJSON(t, srv.URL+"/api/v1/exceptions", &l)
		getJSON(t, srv.URL+"/api/v1/orders/SO-1", &o)
		for name, xs := range map[string][]process.Exception{"GET /api/v1/exceptions": l.Exceptions, "GET /api/v1/orders/SO-1": o.Exceptions} {
			if len(xs) != 1 || !xs[0].Open || xs[0].Reminders != n || !xs[0].RemindedAt.Equal(t0.Add(last)) {
				t.Errorf("%s at %v: %+v, want it open with %d reminders, the last at %v", name, clock.Sub(t0), xs, n, last)
			}
		}
		if _, body := b.page(srv.URL + "/orders/SO-1"); !strings.Contains(body, fmt.Sprintf("overdue, %d reminders", n)) {
			t.Errorf("GET /orders/SO-1 at %v does not say %q", clock.Sub(t0), fmt.Sprintf("overdue, %d reminders", n))
		}
	}
	check(2, 3*time.Hour)
	// Read at 3h31, before any tick: the reminder of 3h30 is there.
	clock = t0.Add(211 * time.Minute)
	check(3, 3*time.Hour+30*time.Minute)
}
