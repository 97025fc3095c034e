package process

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// spreadScorer scores each row from its feature values, deterministically and
// spread over [0, 1], with a most likely class from the same values: the index
// tests need risks and classes that move as orders change, without a model.
type spreadScorer struct{}

func (spreadScorer) Score(rows []float32, _ [][]string, risk, classes []float32) (Scored, error) {
	nf, nc := features.NumFeatures, len(features.ExceptionClasses)
	for i := range risk {
		var h float64
		for j, v := range rows[i*nf : (i+1)*nf] {
			h += float64(v) * (0.6180339887 + float64(j)*0.1)
		}
		_, frac := math.Modf(math.Abs(h))
		risk[i] = float32(frac)
		c := classes[i*nc : (i+1)*nc]
		for j := range c {
			c[j] = 0
		}
		c[int(frac*997)%nc] = 1
	}
	return Scored{Risk: actions.ModelRef{Name: "cutoff_risk", Version: "t1"}, Threshold: 0.5,
		ClassModel: &actions.ModelRef{Name: "exception_class", Version: "t1"}, ClassLabels: features.ExceptionClasses,
		Release: func() {}}, nil
}

// indexBase is the time of the index tests' streams; their fixed clock is an
// hour later.
var indexBase = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

const indexParts = 4

func partOfOrder(order string) int { return features.Partition(features.OrderToken(order), indexParts) }

// newIndexedProcessor is a processor on st keeping idx, with four partitions
// and a fixed clock (timers do not fire on their own).
func newIndexedProcessor(t *testing.T, st *store.Store, idx *OpenIndex) *Processor {
	t.Helper()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Store: st, Policy: actions.NewLive(policy), Scorer: spreadScorer{}, OpenOrders: idx,
		Clock:      func() time.Time { return indexBase.Add(time.Hour) },
		Partitions: indexParts, PartitionOf: partOfOrder,
		DeadLetter: func(context.Context, *Message, string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// eventStream writes events of orders as messages, numbered from its seq.
type eventStream struct {
	seq  int
	msgs []*Message
}

func (s *eventStream) add(typ, order string, at time.Duration, data string) {
	s.seq++
	s.msgs = append(s.msgs, &Message{Seq: uint64(s.seq), Subject: storedSubject(typ, order), Partition: partOfOrder(order),
		Data: fmt.Appendf(nil, `{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{%s}}`,
			s.seq, typ, indexBase.Add(at).Format(time.RFC3339Nano), order, data)})
}

func (s *eventStream) created(order, wh, tier string, at, cutoff time.Duration) {
	s.add("order.created", order, at, fmt.Sprintf(`"warehouse":%q,"customer_tier":%q,"ship_cutoff":%q,"customer_id":"C-1","lines":2,"units":3,"value":40`,
		wh, tier, indexBase.Add(cutoff).Format(time.RFC3339)))
}

// take returns the messages written and empties the stream.
func (s *eventStream) take() []*Message {
	m := s.msgs
	s.msgs = nil
	return m
}

var (
	indexWarehouses = []string{"DAL", "ATL", "RNO", "SEA"}
	indexTiers      = []string{"standard", "silver", "gold", "platinum"}
)

// mixedStream writes a stream of n orders with closes, orphans that become
// known (an event before order.created), warehouse moves and credit holds that
// move the risk; several orders share a cutoff.
func mixedStream(s *eventStream, rng *rand.Rand, n int) {
	for i := range n {
		order := fmt.Sprintf("SO-%04d", i)
		at := time.Duration(i) * time.Second
		if i%9 == 0 {
			s.add("note.added", order, at, `"text":"call before delivery"`) // an orphan until created
		}
		s.created(order, indexWarehouses[rng.IntN(len(indexWarehouses))], indexTiers[rng.IntN(len(indexTiers))],
			at+time.Millisecond, time.Duration(2+rng.IntN(20))*time.Hour)
	}
	for i := range n {
		order := fmt.Sprintf("SO-%04d", rng.IntN(n))
		at := time.Duration(n+i) * time.Second
		switch rng.IntN(6) {
		case 0:
			s.add("shipment.confirmed", order, at, "")
		case 1:
			s.add("order.cancelled", order, at, "")
		case 2:
			s.add("order.changed", order, at, fmt.Sprintf(`"warehouse":%q`, indexWarehouses[rng.IntN(len(indexWarehouses))]))
		default:
			s.add("credit.hold", order, at, "")
		}
	}
}

// process applies msgs in batches of varied sizes.
func processAll(t *testing.T, p *Processor, rng *rand.Rand, msgs []*Message) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), 1+rng.IntN(40))
		if _, err := p.Process(context.Background(), msgs[:n]); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

// storedOpen reads the open orders from the store, as the index should hold
// them.
func storedOpen(t *testing.T, st *store.Store) []OpenOrder {
	t.Helper()
	var out []OpenOrder
	err := st.Orders(func(id string, raw []byte) error {
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil {
			return err
		}
		if !rec.State.Open() {
			return nil
		}
		o := OpenOrder{ID: id, Cutoff: rec.State.ShipCutoff, Warehouse: rec.State.Warehouse, Tier: rec.State.CustomerTier,
			AtRisk: rec.Risk != nil && *rec.Risk >= rec.Eval.threshold()}
		if rec.Risk != nil {
			o.Risk, o.Scored = *rec.Risk, true
		}
		if rec.Eval != nil {
			o.Class = rec.Eval.Class
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// indexed reads every entry of the index, by id.
func indexed(idx *OpenIndex) []OpenOrder {
	page := idx.Query(OpenQuery{Sort: SortRisk, Limit: math.MaxInt32})
	slices.SortFunc(page.Orders, func(a, b OpenOrder) int { return cmp.Compare(a.ID, b.ID) })
	return page.Orders
}

func sameOrders(t *testing.T, what string, got, want []OpenOrder) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d orders, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s: order %d is %+v, want %+v", what, i, got[i], want[i])
			return
		}
	}
}

// bruteForce filters and sorts the open orders as q says, with no index.
func bruteForce(all []OpenOrder, q OpenQuery) []OpenOrder {
	var out []OpenOrder
	for _, o := range all {
		if (q.AtRisk && !o.AtRisk) || (q.Warehouse != "" && o.Warehouse != q.Warehouse) ||
			(q.Class != "" && o.Class != q.Class) || (q.Tier != "" && o.Tier != q.Tier) {
			continue
		}
		if q.Orders != nil && !slices.Contains(q.Orders, o.ID) {
			continue
		}
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b OpenOrder) int {
		ka, kb := a.Key(), b.Key()
		var c int
		if q.Sort == SortCutoff {
			c = cmp.Compare(cutoffKey(ka.Cutoff), cutoffKey(kb.Cutoff))
		} else {
			c = cmp.Compare(kb.Risk, ka.Risk)
		}
		return cmp.Or(c, cmp.Compare(a.ID, b.ID))
	})
	return out
}

// walk pages through q's rows with pages of limit, and returns them.
func walk(t *testing.T, idx *OpenIndex, q OpenQuery, limit int) []OpenOrder {
	t.Helper()
	q.Limit = limit
	var out []OpenOrder
	for range 100_000 {
		page := idx.Query(q)
		out = append(out, page.Orders...)
		if !page.More {
			return out
		}
		if len(page.Orders) == 0 {
			t.Fatal("a page with more after it is empty")
		}
		k := page.Orders[len(page.Orders)-1].Key()
		q.After = &k
	}
	t.Fatal("pagination does not end")
	return nil
}

// TestOpenIndexIsTheStoresOpenOrders: after a stream with closes, orphans that
// become orders, warehouse moves and risk changes, and after a partition is
// dropped, the index holds exactly the store's open orders as stored; a
// processor started on the store loads the same; every filter and both sorts,
// paged, give what a brute-force filter and sort of the store gives.
func TestOpenIndexIsTheStoresOpenOrders(t *testing.T) {
	_, st, _ := newTestProcessor(t, store.Options{}, Options{}) // only for its store
	idx := NewOpenIndex()
	p := newIndexedProcessor(t, st, idx)
	rng := rand.New(rand.NewPCG(16, 1))
	var s eventStream
	mixedStream(&s, rng, 300)
	processAll(t, p, rng, s.take())

	want := storedOpen(t, st)
	if len(want) < 100 {
		t.Fatalf("only %d open orders: the stream should leave more", len(want))
	}
	var scored, atRisk, classed int
	for _, o := range want {
		if o.Scored {
			scored++
		}
		if o.AtRisk {
			atRisk++
		}
		if o.Class != "" {
			classed++
		}
	}
	if scored == 0 || atRisk == 0 || atRisk == len(want) || classed == 0 {
		t.Fatalf("the stream should give scored, at-risk, not at-risk and classified orders: %d scored, %d at risk, %d classified of %d", scored, atRisk, classed, len(want))
	}
	sameOrders(t, "after the stream", indexed(idx), want)

	dropped, err := p.DropPartition(2)
	if err != nil {
		t.Fatal(err)
	}
	if dropped == 0 {
		t.Fatal("partition 2 held no orders: the test drops nothing")
	}
	want = storedOpen(t, st)
	sameOrders(t, "after dropping partition 2", indexed(idx), want)
	for _, o := range indexed(idx) {
		if partOfOrder(o.ID) == 2 {
			t.Fatalf("order %s of the dropped partition is still indexed", o.ID)
		}
	}

	// More events after the drop, then a new processor on the same store.
	mixedStream(&s, rng, 40)
	processAll(t, p, rng, s.take())
	want = storedOpen(t, st)
	sameOrders(t, "after more events", indexed(idx), want)
	loaded := NewOpenIndex()
	newIndexedProcessor(t, st, loaded)
	sameOrders(t, "loaded at start", indexed(loaded), want)

	var waiting []string
	for _, o := range want[:len(want)/3] {
		waiting = append(waiting, o.ID, o.ID) // repeated ids count once
	}
	queries := []OpenQuery{{}, {AtRisk: true}, {Warehouse: "ATL"}, {Tier: "gold"}, {Class: want[0].Class},
		{AtRisk: true, Warehouse: "DAL", Tier: "silver"}, {Warehouse: "nowhere"}, {Orders: waiting}, {Orders: []string{}},
		{Orders: waiting, AtRisk: true}}
	for _, q := range queries {
		for _, sort := range []OpenSort{SortRisk, SortCutoff} {
			q.Sort = sort
			exp := bruteForce(want, q)
			for _, limit := range []int{1, 7, 500} {
				got := walk(t, idx, q, limit)
				sameOrders(t, fmt.Sprintf("query %+v, pages of %d", q, limit), got, exp)
			}
			if page := idx.Query(OpenQuery{Sort: q.Sort, AtRisk: q.AtRisk, Warehouse: q.Warehouse, Class: q.Class, Tier: q.Tier,
				Orders: q.Orders, Limit: 3}); page.Total != len(exp) {
				t.Errorf("query %+v: total %d, want %d", q, page.Total, len(exp))
			}
		}
	}
}

// TestOpenIndexPagesWhileThePipelineWrites: pages walked while batches commit
// (new orders, and holds that move the risk of others) show no order twice
// and every order open throughout whose key does not move exactly once: by
// cutoff all of them, by risk those that get no event.
func TestOpenIndexPagesWhileThePipelineWrites(t *testing.T) {
	_, st, _ := newTestProcessor(t, store.Options{}, Options{})
	idx := NewOpenIndex()
	p := newIndexedProcessor(t, st, idx)
	rng := rand.New(rand.NewPCG(16, 2))
	var s eventStream
	const initial = 400
	for i := range initial {
		s.created(fmt.Sprintf("SO-%04d", i), indexWarehouses[i%4], indexTiers[i%3], time.Duration(i)*time.Second, time.Duration(2+i%7)*time.Hour)
	}
	processAll(t, p, rng, s.take())
	// Timers due by the fixed clock fire now, not while the pages are walked.
	if _, err := p.Tick(); err != nil {
		t.Fatal(err)
	}
	if n := idx.Len(); n != initial {
		t.Fatalf("%d orders indexed, want %d", n, initial)
	}
	// The writer holds some of the initial orders (their risk moves) and
	// creates new ones; it never closes one.
	moved := map[string]bool{}
	for i := range initial {
		if i%5 == 0 {
			moved[fmt.Sprintf("SO-%04d", i)] = true
		}
	}
	for _, sort := range []OpenSort{SortCutoff, SortRisk} {
		t.Run(fmt.Sprint(sort), func(t *testing.T) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var rounds atomic.Int64
			var werr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 0; ; round++ {
					select {
					case <-stop:
						return
					default:
					}
					var w eventStream
					w.seq = 1_000_000*(int(sort)+1) + round*100
					for i := range 10 {
						w.created(fmt.Sprintf("SN-%d-%d-%d", sort, round, i), "SEA", "gold", time.Hour, time.Duration(1+i)*time.Hour)
					}
					for id := range moved {
						if rng.IntN(8) == 0 {
							w.add("credit.hold", id, time.Hour+time.Duration(round)*time.Second, "")
						}
					}
					if _, err := p.Process(context.Background(), w.take()); err != nil {
						werr = err
						return
					}
					rounds.Add(1)
				}
			}()
			// Walk until batches committed during the walks, three walks at least.
			var got []OpenOrder
			walks := 0
			for start := rounds.Load(); walks < 3 || rounds.Load()-start < 3; walks++ {
				if walks == 1000 {
					t.Fatal("the writer committed fewer than three batches during a thousand walks")
				}
				got = append(got, walk(t, idx, OpenQuery{Sort: sort}, 9)...)
			}
			close(stop)
			wg.Wait()
			if werr != nil {
				t.Fatal(werr)
			}
			// Every order open throughout with a stable key once in each walk.
			seen := map[string]int{}
			for _, o := range got {
				seen[o.ID]++
			}
			for i := range initial {
				id := fmt.Sprintf("SO-%04d", i)
				if sort == SortRisk && moved[id] {
					continue
				}
				if seen[id] != walks {
					t.Errorf("order %s shown %d times in %d walks, want once in each", id, seen[id], walks)
				}
			}
			for id, n := range seen {
				if n > walks && !(sort == SortRisk && moved[id]) {
					t.Errorf("order %s shown %d times in %d walks", id, n, walks)
				}
			}
		})
	}
}
