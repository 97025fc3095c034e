package process

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// BenchmarkAtRiskQuery measures the at-risk queue's query over 100,000 open
// orders in 40 warehouses, across filters, both sorts and deep pages, while a
// writer applies batches of 256 changed orders every 5 ms (about the live
// pipeline's rate). It reports the p50 and p99 of the queries' durations:
//
//	go test -run '^$' -bench AtRiskQuery -benchtime 2000x ./process/
func BenchmarkAtRiskQuery(b *testing.B) {
	const open = 100_000
	rng := rand.New(rand.NewPCG(16, 100))
	warehouses := make([]string, 40)
	for i := range warehouses {
		warehouses[i] = fmt.Sprintf("WH-%02d", i)
	}
	tiers := []string{"standard", "silver", "gold", "platinum"}
	row := func(rng *rand.Rand, i int) openRow {
		risk := rng.Float64()
		return openRow{id: fmt.Sprintf("SO-%07d", i), warehouse: warehouses[rng.IntN(len(warehouses))],
			tier: tiers[rng.IntN(len(tiers))], class: features.ExceptionClasses[rng.IntN(len(features.ExceptionClasses))],
			risk: risk, atRisk: risk >= 0.5, cutoff: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(72*60)) * time.Minute).UnixNano()}
	}
	rows := make([]openRow, open)
	for i := range rows {
		rows[i] = row(rng, i)
	}
	idx := NewOpenIndex()
	idx.replace(rows)
	waiting := make([]string, 2000) // the orders a team's decisions wait on
	for i := range waiting {
		waiting[i] = fmt.Sprintf("SO-%07d", rng.IntN(open))
	}
	queries := []OpenQuery{{}, {AtRisk: true}, {Warehouse: "WH-07"}, {AtRisk: true, Warehouse: "WH-13", Tier: "gold"},
		{Class: features.ExceptionCredit}, {AtRisk: true, Class: features.ExceptionCarrier, Tier: "platinum"},
		{Orders: waiting}, {AtRisk: true, Orders: waiting}}
	for _, limit := range []int{100, 500} {
		for _, q := range slices.Clone(queries) {
			for _, sort := range []OpenSort{SortRisk, SortCutoff} {
				q.Sort, q.Limit = sort, limit
				queries = append(queries, q)
				// A deep page: after the key of the 2,000th row.
				deep := q
				deep.Limit = 2000
				if p := idx.Query(deep); len(p.Orders) > 0 {
					k := p.Orders[len(p.Orders)-1].Key()
					q.After = &k
					queries = append(queries, q)
				}
			}
		}
	}
	queries = slices.DeleteFunc(queries, func(q OpenQuery) bool { return q.Limit == 0 }) // the filters alone

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wrng := rand.New(rand.NewPCG(16, 101))
		ups := make([]openUpdate, 256)
		next := open
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for i := range ups {
				if wrng.IntN(10) == 0 { // a new order, or one that closes
					ups[i] = openUpdate{row: row(wrng, next), open: true}
					next++
					continue
				}
				r := row(wrng, wrng.IntN(next))
				ups[i] = openUpdate{row: r, open: wrng.IntN(20) != 0}
			}
			idx.apply(ups)
		}
	}()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		page := idx.Query(queries[i%len(queries)])
		durations = append(durations, time.Since(start))
		if page.Total == 0 {
			b.Fatalf("query %+v selects nothing", queries[i%len(queries)])
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(durations)
	at := func(q float64) float64 {
		return float64(durations[min(len(durations)-1, int(q*float64(len(durations))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50_ms")
	b.ReportMetric(at(0.99), "p99_ms")
	b.ReportMetric(float64(idx.Len()), "open_orders")
}
