package process

import (
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// OpenIndex is an in-memory index of the open orders a Processor holds (the
// partitions it owns), for the at-risk queue of the API: a query filters and
// sorts it without reading Badger. The Processor loads it from the store in New,
// changes it after each batch commits (never with what did not commit) and
// forgets a partition with DropPartition.
//
// It is safe for concurrent use: the Processor writes while readers query, and a
// query sees a batch's changes all or none (a read-write mutex; a query holds
// the read lock for one pass over the entries).
type OpenIndex struct {
	// mu guards rows and at.
	mu sync.RWMutex
	// rows holds one entry per open order, densely (a removed one is replaced
	// by the last), so that a query is one pass over a contiguous slice.
	rows []openRow
	// at is the position of each order's entry in rows.
	at map[string]int
}

// openRow is one open order's entry. Its strings are the record's own (bounded
// by the event decoder: an id 128 bytes, a warehouse or tier 64; the class is a
// model label), so an entry costs about a hundred bytes beside them.
type openRow struct {
	id        string
	warehouse string
	tier      string
	class     string
	risk      float64 // noRisk until the order is scored
	cutoff    int64   // the ship cutoff in Unix nanoseconds; noCutoff when none
	atRisk    bool
}

// noRisk is the risk key of an order not scored yet: after every scored one.
const noRisk = -1

// noCutoff is the cutoff key of an order without one: after every other.
const noCutoff = math.MaxInt64

// openUpdate is what a batch changes of one order in the index: its entry when
// it is open, its removal when not. A batch collects them as it writes its
// records and applies them once it has committed.
type openUpdate struct {
	row  openRow
	open bool
}

// NewOpenIndex returns an empty index, for Options.OpenOrders.
func NewOpenIndex() *OpenIndex { return &OpenIndex{at: map[string]int{}} }

// OpenSort is the order of an index query's rows.
type OpenSort uint8

const (
	// SortRisk puts the highest risk first (orders not scored yet last), then
	// the order ids in byte order.
	SortRisk OpenSort = iota
	// SortCutoff puts the earliest ship cutoff first, then the order ids in
	// byte order.
	SortCutoff
)

// String names the sort as the API does: risk or cutoff.
func (s OpenSort) String() string {
	if s == SortCutoff {
		return "cutoff"
	}
	return "risk"
}

// OpenKey is where an order stands in a sort: the key of the last row of a
// page, from which the next page starts. Only the field of the query's sort is
// read, with the id.
type OpenKey struct {
	Risk   float64   // SortRisk: the risk, or -1 for an order not scored yet
	Cutoff time.Time // SortCutoff: the ship cutoff (zero: none)
	ID     string
}

// OpenQuery selects and sorts open orders. Empty filters select everything.
type OpenQuery struct {
	Sort OpenSort
	// AtRisk keeps the orders whose risk is at or above their model's act
	// threshold (those orderwatch_orders_at_risk counts).
	AtRisk    bool
	Warehouse string
	Class     string // the most likely exception class
	Tier      string // the customer tier
	// Orders, when not nil, keeps only these orders (for a filter the index
	// does not hold, such as the team a decision waits on).
	Orders []string
	// After starts the page past this key (the last row of the page before);
	// nil starts at the first row.
	After *OpenKey
	// Limit bounds the rows of the page; it must be above zero.
	Limit int
}

// OpenOrder is an open order as the index holds it.
type OpenOrder struct {
	ID        string
	Risk      float64 // meaningful when Scored
	Scored    bool
	AtRisk    bool
	Cutoff    time.Time // zero when the order has none
	Warehouse string
	Tier      string
	Class     string // the most likely exception class; "" when not known
}

// Key returns where the order stands in either sort.
func (o *OpenOrder) Key() OpenKey {
	k := OpenKey{ID: o.ID, Risk: noRisk, Cutoff: o.Cutoff}
	if o.Scored {
		k.Risk = o.Risk
	}
	return k
}

// OpenPage is the answer to an OpenQuery.
type OpenPage struct {
	Orders []OpenOrder
	// Total counts the orders the filters select, on every page alike.
	Total int
	// More says that rows follow this page.
	More bool
}

// Len returns the number of open orders in the index.
func (x *OpenIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.rows)
}

// Query returns a page of the open orders q selects, in q's sort. Pages are
// stable under concurrent changes: a page starts strictly after the key of the
// page before, so an order whose key did not change between pages is shown on
// exactly one of them; one whose key changed meanwhile may be shown twice or
// not at all.
func (x *OpenIndex) Query(q OpenQuery) OpenPage {
	limit := max(q.Limit, 1)
	var after openRow
	if q.After != nil {
		after = openRow{id: q.After.ID, risk: q.After.Risk, cutoff: cutoffKey(q.After.Cutoff)}
	}
	before := riskBefore
	if q.Sort == SortCutoff {
		before = cutoffBefore
	}
	// The first limit+1 rows after the cursor, kept in a heap whose top is the
	// last of them: one pass, and a row past the top is dropped at once.
	top := pageHeap{before: before, rows: make([]openRow, 0, min(limit+1, 1024))}
	var total int
	consider := func(r *openRow) {
		if !q.matches(r) {
			return
		}
		total++
		if q.After != nil && !before(&after, r) {
			return
		}
		top.offer(r, limit+1)
	}
	x.mu.RLock()
	if q.Orders != nil {
		ids := slices.Clone(q.Orders)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			if i, ok := x.at[id]; ok {
				consider(&x.rows[i])
			}
		}
	} else {
		for i := range x.rows {
			consider(&x.rows[i])
		}
	}
	x.mu.RUnlock()

	rows := top.rows
	slices.SortFunc(rows, func(a, b openRow) int {
		if before(&a, &b) {
			return -1
		}
		return 1
	})
	page := OpenPage{Total: total, More: len(rows) > limit}
	rows = rows[:min(len(rows), limit)]
	page.Orders = make([]OpenOrder, len(rows))
	for i := range rows {
		page.Orders[i] = rows[i].order()
	}
	return page
}

func (q *OpenQuery) matches(r *openRow) bool {
	return (!q.AtRisk || r.atRisk) &&
		(q.Warehouse == "" || r.warehouse == q.Warehouse) &&
		(q.Class == "" || r.class == q.Class) &&
		(q.Tier == "" || r.tier == q.Tier)
}

// riskBefore reports whether a comes before b by risk, highest first.
func riskBefore(a, b *openRow) bool {
	if a.risk != b.risk {
		return a.risk > b.risk
	}
	return strings.Compare(a.id, b.id) < 0
}

// cutoffBefore reports whether a comes before b by cutoff, earliest first.
func cutoffBefore(a, b *openRow) bool {
	if a.cutoff != b.cutoff {
		return a.cutoff < b.cutoff
	}
	return strings.Compare(a.id, b.id) < 0
}

// pageHeap keeps the first n rows offered, in a max-heap by before: its top
// is the last of them.
type pageHeap struct {
	before func(a, b *openRow) bool
	rows   []openRow
}

func (h *pageHeap) offer(r *openRow, n int) {
	if len(h.rows) < n {
		h.rows = append(h.rows, *r)
		h.up(len(h.rows) - 1)
		return
	}
	if !h.before(r, &h.rows[0]) {
		return
	}
	h.rows[0] = *r
	h.down(0)
}

// later reports whether row i comes after row j: the heap's order.
func (h *pageHeap) later(i, j int) bool { return h.before(&h.rows[j], &h.rows[i]) }

func (h *pageHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.later(i, parent) {
			return
		}
		h.rows[i], h.rows[parent] = h.rows[parent], h.rows[i]
		i = parent
	}
}

func (h *pageHeap) down(i int) {
	n := len(h.rows)
	for {
		last, l, r := i, 2*i+1, 2*i+2
		if l < n && h.later(l, last) {
			last = l
		}
		if r < n && h.later(r, last) {
			last = r
		}
		if last == i {
			return
		}
		h.rows[i], h.rows[last] = h.rows[last], h.rows[i]
		i = last
	}
}

func (r *openRow) order() OpenOrder {
	o := OpenOrder{ID: r.id, AtRisk: r.atRisk, Warehouse: r.warehouse, Tier: r.tier, Class: r.class}
	if r.risk != noRisk {
		o.Risk, o.Scored = r.risk, true
	}
	if r.cutoff != noCutoff {
		o.Cutoff = time.Unix(0, r.cutoff).UTC()
	}
	return o
}

// cutoffKey is the key of a ship cutoff: Unix nanoseconds, noCutoff for none.
func cutoffKey(t time.Time) int64 {
	if t.IsZero() {
		return noCutoff
	}
	return t.UnixNano()
}

// openRowOf is the index entry of an order record as written.
func openRowOf(rec *orderRecord) openRow {
	s := &rec.State
	r := openRow{id: s.OrderID, warehouse: s.Warehouse, tier: s.CustomerTier, risk: noRisk,
		cutoff: cutoffKey(s.ShipCutoff), atRisk: rec.Gauge.AtRisk}
	if rec.Risk != nil && *rec.Risk >= 0 && *rec.Risk <= 1 { // a probability; NaN is not
		r.risk = *rec.Risk
	}
	if rec.Eval != nil {
		r.class = rec.Eval.Class
	}
	return r
}

// replace sets the index to rows, the open orders read at start.
func (x *OpenIndex) replace(rows []openRow) {
	at := make(map[string]int, len(rows))
	for i := range rows {
		at[rows[i].id] = i
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.rows, x.at = rows, at
}

// apply changes the index by a committed batch's updates, in order.
func (x *OpenIndex) apply(ups []openUpdate) {
	if len(ups) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range ups {
		u := &ups[i]
		if !u.open {
			x.remove(u.row.id)
			continue
		}
		if at, ok := x.at[u.row.id]; ok {
			x.rows[at] = u.row
			continue
		}
		x.at[u.row.id] = len(x.rows)
		x.rows = append(x.rows, u.row)
	}
}

// drop removes the given orders (a partition given up), and lets the memory
// of the entries go when most of it is free.
func (x *OpenIndex) drop(orders map[string]bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id := range orders {
		x.remove(id)
	}
	if cap(x.rows) > 4*len(x.rows)+1024 {
		x.rows = slices.Clone(x.rows)
	}
}

// remove takes an order's entry out, the last entry taking its place. The
// caller holds the write lock.
func (x *OpenIndex) remove(id string) {
	at, ok := x.at[id]
	if !ok {
		return
	}
	last := len(x.rows) - 1
	if at != last {
		x.rows[at] = x.rows[last]
		x.at[x.rows[at].id] = at
	}
	x.rows[last] = openRow{} // let its strings go
	x.rows = x.rows[:last]
	delete(x.at, id)
}
