package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

// BenchmarkAtRiskAPI measures GET /api/v1/orders end to end (index query,
// open items, the decisions of the page's rows, JSON) with 100,000 open orders
// in 40 warehouses, 2% of them waiting on team credit-desk, across filters,
// both sorts, pages of 100 and 500 and deep pages. It reports the p50 and p99
// of the requests' durations:
//
//	go test -run '^$' -bench AtRiskAPI -benchtime 400x ./api/
func BenchmarkAtRiskAPI(b *testing.B) {
	const open = 100_000
	m := newListMember(b)
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
		evs := []string{createdEvent(order, fmt.Sprintf("WH-%02d", i%40), features.CustomerTiers[i%4], at, time.Duration(2+i%70)*time.Hour)}
		if i%50 == 0 {
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
	h := api.Handler(api.Options{Store: m.st, OpenOrders: m.idx})
	get := func(query string) (int, []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/orders?"+query, nil))
		return rec.Code, rec.Body.Bytes()
	}
	var queries []string
	for _, f := range []string{"", "at_risk=1", "warehouse=WH-07", "at_risk=1&warehouse=WH-13&tier=gold", "class=credit",
		"team=credit-desk", "at_risk=1&team=credit-desk"} {
		for _, sort := range []string{"risk", "cutoff"} {
			for _, limit := range []string{"100", "500"} {
				q := f + "&sort=" + sort + "&limit=" + limit
				queries = append(queries, q)
				// A deep page: after the 2,000th row.
				code, body := get(f + "&sort=" + sort + "&limit=500")
				for range 3 {
					var p struct{ Next string }
					if code != http.StatusOK || json.Unmarshal(body, &p) != nil || p.Next == "" {
						break
					}
					code, body = get(f + "&sort=" + sort + "&limit=500&cursor=" + url.QueryEscape(p.Next))
					if code == http.StatusOK {
						queries = append(queries, q+"&cursor="+url.QueryEscape(p.Next))
					}
				}
			}
		}
	}
	for _, limit := range []string{"100", "500"} {
		b.Run("limit="+limit, func(b *testing.B) {
			var qs []string
			for _, q := range queries {
				if strings.Contains(q, "&limit="+limit) {
					qs = append(qs, q)
				}
			}
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
