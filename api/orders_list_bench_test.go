package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

// benchPolicy sends a credit hold to one of four teams by the customer's tier
// (an approval waiting on the team) and notifies customer service of the
// riskiest orders (an auto decision, left queued: no executor runs), so the
// pages' rows have decisions to read, waiting or not.
const benchPolicy = `version: bench-1
escalation:
  credit: [{team: credit-desk, sla: 10m}, {team: finance-controller, sla: 30m}]
  accounts: [{team: key-accounts, sla: 10m}]
  vip: [{team: vip-desk, sla: 10m}]
  standard: [{team: order-desk, sla: 10m}]
rules:
- {id: hold-standard, action: flag_finance, mode: approval, escalation: standard, when: {features: {on_credit_hold: {eq: 1}, customer_tier: {eq: 1}}}}
- {id: hold-silver, action: flag_finance, mode: approval, escalation: credit, when: {features: {on_credit_hold: {eq: 1}, customer_tier: {eq: 2}}}}
- {id: hold-gold, action: flag_finance, mode: approval, escalation: accounts, when: {features: {on_credit_hold: {eq: 1}, customer_tier: {eq: 3}}}}
- {id: hold-platinum, action: flag_finance, mode: approval, escalation: vip, when: {features: {on_credit_hold: {eq: 1}, customer_tier: {eq: 4}}}}
- {id: high-risk, action: notify_customer_service, mode: auto, when: {risk: {gte: 0.8}}}
`

// benchTeams are the teams benchPolicy's approvals wait on.
var benchTeams = []string{"order-desk", "credit-desk", "key-accounts", "vip-desk"}

// BenchmarkAtRiskAPI measures GET /api/v1/orders?at_risk=1 end to end, through
// the API's mux (index query, the team's orders, the decisions of the page's
// rows, JSON), with 100,000 open orders in 40 warehouses, 5,000 of them (one
// in twenty) waiting for an approval on one of four teams and a fifth of them
// with a queued auto decision. Each case is a page size (50, 500), with or
// without team= (the four teams in turn) and a sort, over first and deep
// pages (up to the 2,000th row, by the cursor); it reports the p50 and p99 of
// the requests' durations:
//
//	go test -run '^$' -bench AtRiskAPI -benchtime 400x ./api/
func BenchmarkAtRiskAPI(b *testing.B) {
	const open = 100_000
	m := newPolicyMember(b, benchPolicy)
	var msgs []*process.Message
	flush := func() {
		if _, err := m.proc.Process(context.Background(), msgs); err != nil {
			b.Fatal(err)
		}
		msgs = msgs[:0]
	}
	for i := range open {
		order := fmt.Sprintf("SO-%06d", i)
		at := time.Duration(i) * time.Millisecond
		evs := []string{createdEvent(order, fmt.Sprintf("WH-%02d", i%40), features.CustomerTiers[(i/20)%4], at, time.Duration(2+i%70)*time.Hour)}
		if i%20 == 0 {
			evs = append(evs, orderEvent("credit.hold", order, at+time.Microsecond, ""))
		}
		for _, e := range evs {
			m.seq++
			msgs = append(msgs, &process.Message{Seq: uint64(m.seq), Data: []byte(e), Partition: listPart(order)})
		}
		if len(msgs) >= 1024 {
			flush()
		}
	}
	if len(msgs) > 0 {
		flush()
	}
	if n := m.idx.Len(); n != open {
		b.Fatalf("%d open orders indexed, want %d", n, open)
	}
	items, err := m.st.OpenItems()
	if err != nil || len(items) != open/20 {
		b.Fatalf("%d open items (%v), want %d", len(items), err, open/20)
	}
	h := api.Handler(api.Options{Store: m.st, OpenOrders: m.idx})
	get := func(query string) (int, []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/orders?"+query, nil))
		return rec.Code, rec.Body.Bytes()
	}
	for _, limit := range []string{"50", "500"} {
		for _, team := range []bool{false, true} {
			for _, sort := range []string{"risk", "cutoff"} {
				// The case's queries: the first page and up to three after
				// it, of each team in turn.
				var qs []string
				filters := []string{"at_risk=1"}
				if team {
					filters = nil
					for _, t := range benchTeams {
						filters = append(filters, "at_risk=1&team="+t)
					}
				}
				for _, f := range filters {
					q := f + "&sort=" + sort + "&limit=" + limit
					qs = append(qs, q)
					code, body := get(q)
					for range 3 {
						var p struct {
							Orders []json.RawMessage
							Next   string
						}
						if code != http.StatusOK || json.Unmarshal(body, &p) != nil || len(p.Orders) == 0 {
							b.Fatalf("?%s: %d %s", q, code, body)
						}
						if p.Next == "" {
							break
						}
						qs = append(qs, q+"&cursor="+url.QueryEscape(p.Next))
						code, body = get(qs[len(qs)-1])
					}
				}
				name := fmt.Sprintf("limit=%s/team=%t/sort=%s", limit, team, sort)
				b.Run(name, func(b *testing.B) {
					durations := make([]time.Duration, 0, b.N)
					for i := range b.N {
						q := qs[i%len(qs)]
						start := time.Now()
						code, body := get(q)
						durations = append(durations, time.Since(start))
						if code != http.StatusOK {
							b.Fatalf("?%s: %d %s", q, code, body)
						}
					}
					slices.Sort(durations)
					at := func(q float64) float64 {
						return float64(durations[min(len(durations)-1, int(q*float64(len(durations))))]) / float64(time.Millisecond)
					}
					b.ReportMetric(at(0.50), "p50_ms")
					b.ReportMetric(at(0.99), "p99_ms")
					b.ReportMetric(float64(len(qs)), "queries")
				})
			}
		}
	}
}
