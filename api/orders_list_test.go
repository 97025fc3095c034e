package api_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// spreadScorer scores each row from its feature values, deterministically and
// spread over [0, 1], with a most likely class from the same values: the
// processor then stores risks and classes without a model.
type spreadScorer struct{}

func (spreadScorer) Score(rows []float32, _ [][]string, risk, classes []float32) (process.Scored, error) {
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
	return process.Scored{Risk: actions.ModelRef{Name: "cutoff_risk", Version: "t1"}, Threshold: 0.5,
		ClassModel: &actions.ModelRef{Name: "exception_class", Version: "t1"}, ClassLabels: features.ExceptionClasses,
		Release: func() {}}, nil
}

const listParts = 4

func listPart(order string) int { return features.Partition(features.OrderToken(order), listParts) }

// listMember is one instance: a store, a processor keeping the index of open
// orders, and the API over both.
type listMember struct {
	st   *store.Store
	proc *process.Processor
	idx  *process.OpenIndex
	seq  int
}

func newListMember(t testing.TB) *listMember {
	t.Helper()
	return newPolicyMember(t, approvalsPolicy)
}

// newPolicyMember is a member whose processor decides by policy.
func newPolicyMember(t testing.TB, policy string) *listMember {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, err := actions.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	m := &listMember{st: st, idx: process.NewOpenIndex()}
	m.proc, err = process.New(process.Options{Store: st, Policy: actions.NewLive(p), Scorer: spreadScorer{}, EventTime: true,
		OpenOrders: m.idx, Partitions: listParts, PartitionOf: listPart,
		DeadLetter: func(context.Context, *process.Message, string, string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var listBase = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

// apply processes events of orders, one batch.
func (m *listMember) apply(t *testing.T, events ...string) {
	t.Helper()
	var msgs []*process.Message
	for _, e := range events {
		m.seq++
		var ev struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal([]byte(e), &ev); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &process.Message{Seq: uint64(m.seq), Data: []byte(e), Partition: listPart(ev.OrderID)})
	}
	if _, err := m.proc.Process(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// orderEvent is an event of an order, its id made of the order, type and time.
func orderEvent(typ, order string, at time.Duration, data string) string {
	return fmt.Sprintf(`{"id":"e-%s-%s-%d","type":%q,"schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{%s}}`,
		order, typ, at, typ, listBase.Add(at).Format(time.RFC3339Nano), order, data)
}

func createdEvent(order, wh, tier string, at, cutoff time.Duration) string {
	return orderEvent("order.created", order, at, fmt.Sprintf(`"warehouse":%q,"customer_tier":%q,"ship_cutoff":%q,"customer_id":"C-1","lines":2,"units":3,"value":40`,
		wh, tier, listBase.Add(cutoff).Format(time.RFC3339)))
}

// listStream gives the member (or, with owns, the member owning each order)
// n orders in four warehouses and tiers, a third of them on credit hold (a
// decision waiting on team credit-desk), some shipped or cancelled.
func listStream(t *testing.T, n int, member func(order string) *listMember) {
	t.Helper()
	for i := range n {
		order := fmt.Sprintf("SO-%03d", i)
		m := member(order)
		at := time.Duration(i) * time.Second
		m.apply(t, createdEvent(order, []string{"DAL", "ATL", "RNO", "SEA"}[i%4], features.CustomerTiers[i%4], at,
			time.Duration(2+i%11)*time.Hour))
		switch i % 6 {
		case 0, 3:
			m.apply(t, orderEvent("credit.hold", order, at+time.Minute, ""))
		case 1:
			m.apply(t, orderEvent("note.added", order, at+time.Minute, `"text":"call first"`))
		case 5:
			m.apply(t, orderEvent([]string{"shipment.confirmed", "order.cancelled"}[i%2], order, at+time.Minute, ""))
		}
	}
}

// listRow is a row of GET /api/v1/orders, as a client reads it.
type listRow struct {
	OrderID      string    `json:"order_id"`
	Risk         *float64  `json:"risk"`
	AtRisk       bool      `json:"at_risk"`
	ShipCutoff   time.Time `json:"ship_cutoff"`
	Minutes      *float64  `json:"minutes_to_cutoff"`
	Warehouse    string    `json:"warehouse"`
	CustomerTier string    `json:"customer_tier"`
	Class        string    `json:"class"`
	Team         string    `json:"team"`
	Reasons      []string  `json:"reasons"`
	Decision     *struct {
		ID     string `json:"id"`
		Action string `json:"action"`
		State  string `json:"state"`
	} `json:"decision"`
	Unreadable string `json:"unreadable"`
}

type listPage struct {
	Orders  []listRow `json:"orders"`
	Total   int       `json:"total"`
	Next    string    `json:"next"`
	Members []string  `json:"members"`
	Error   string    `json:"error"`
}

func getList(t *testing.T, base, query string) (int, listPage) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/orders?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p listPage
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("GET /api/v1/orders?%s: %d %s: %v", query, resp.StatusCode, b, err)
	}
	return resp.StatusCode, p
}

// walkList pages through a query with the cursor and returns every row.
func walkList(t *testing.T, base, query string) []listRow {
	t.Helper()
	var out []listRow
	cursor := ""
	for range 1000 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		code, p := getList(t, base, q)
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/orders?%s: %d %s", q, code, p.Error)
		}
		out = append(out, p.Orders...)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
	t.Fatal("pagination does not end")
	return nil
}

// storedRow is an open order as its stored record says.
type storedRow struct {
	id, warehouse, tier, class string
	risk                       float64 // -1 when not scored
	atRisk                     bool
	cutoff                     time.Time
}

// storedOpen reads the open orders of stores through the records' JSON view,
// as a brute force for the index.
func storedOpen(t *testing.T, stores ...*store.Store) []storedRow {
	t.Helper()
	var out []storedRow
	for _, st := range stores {
		err := st.Orders(func(id string, raw []byte) error {
			j, err := process.RecordJSON(raw)
			if err != nil {
				return err
			}
			var rec struct {
				State features.OrderState `json:"state"`
				Risk  *float64            `json:"risk"`
				Eval  *struct {
					Class string `json:"class"`
				} `json:"eval"`
				Gauge struct {
					AtRisk bool `json:"at_risk"`
				} `json:"gauge"`
			}
			if err := json.Unmarshal(j, &rec); err != nil {
				return err
			}
			if !rec.State.Open() {
				return nil
			}
			r := storedRow{id: id, warehouse: rec.State.Warehouse, tier: rec.State.CustomerTier, risk: -1,
				atRisk: rec.Gauge.AtRisk, cutoff: rec.State.ShipCutoff}
			if rec.Risk != nil {
				r.risk = *rec.Risk
			}
			if rec.Eval != nil {
				r.class = rec.Eval.Class
			}
			out = append(out, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// expectIDs filters and sorts stored rows as the API should.
func expectIDs(rows []storedRow, keep func(storedRow) bool, byCutoff bool) []string {
	rows = slices.Clone(rows)
	rows = slices.DeleteFunc(rows, func(r storedRow) bool { return !keep(r) })
	slices.SortFunc(rows, func(a, b storedRow) int {
		if byCutoff {
			return cmp.Or(a.cutoff.Compare(b.cutoff), cmp.Compare(a.id, b.id))
		}
		return cmp.Or(cmp.Compare(b.risk, a.risk), cmp.Compare(a.id, b.id))
	})
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	return ids
}

func rowIDs(rows []listRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.OrderID
	}
	return ids
}

// TestOrdersListValidatesParameters: every parameter out of its bounds is
// refused with 400 and an error that names it.
func TestOrdersListValidatesParameters(t *testing.T) {
	m := newListMember(t)
	listStream(t, 12, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx}))
	defer srv.Close()
	code, first := getList(t, srv.URL, "sort=risk&limit=2")
	if code != http.StatusOK || first.Next == "" {
		t.Fatalf("a first page of 2: %d %+v", code, first)
	}
	for _, c := range []struct{ query, names string }{
		{"limit=0", "limit"}, {"limit=501", "limit"}, {"limit=ten", "limit"},
		{"sort=age", "sort"}, {"class=weather", "class"}, {"tier=diamond", "tier"},
		{"warehouse=" + strings.Repeat("W", 65), "warehouse"}, {"warehouse=DAL%07", "warehouse"},
		{"team=credit%20desk", "team"}, {"team=" + strings.Repeat("t", 65), "team"},
		{"at_risk=maybe", "at_risk"}, {"cursor=bm90LWEtY3Vyc29y", "cursor"},
		{"sort=cutoff&cursor=" + first.Next, "cursor"}, {"warehouse=DAL&warehouse=ATL", "warehouse"},
	} {
		code, p := getList(t, srv.URL, c.query)
		if code != http.StatusBadRequest || !strings.Contains(p.Error, c.names) {
			t.Errorf("?%s: %d %q; want 400 naming %s", c.query, code, p.Error, c.names)
		}
	}
	for _, q := range []string{"", "at_risk=1", "at_risk=0", "at_risk=true", "sort=cutoff", "limit=500",
		"class=credit", "tier=gold", "warehouse=DAL", "team=credit-desk"} {
		if code, p := getList(t, srv.URL, q); code != http.StatusOK {
			t.Errorf("?%s: %d %s; want 200", q, code, p.Error)
		}
	}
}

// TestOrdersListServesTheIndex: the queue's rows, filters, sorts, totals and
// pages are what a brute-force filter and sort of the stored open orders
// gives; a row shows its order's waiting decision with its team and reasons.
func TestOrdersListServesTheIndex(t *testing.T) {
	m := newListMember(t)
	listStream(t, 60, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx}))
	defer srv.Close()
	stored := storedOpen(t, m.st)
	all := func(storedRow) bool { return true }
	waiting := map[string]bool{}
	for i := range 60 {
		if i%6 == 0 || i%6 == 3 {
			waiting[fmt.Sprintf("SO-%03d", i)] = true
		}
	}
	class := stored[0].class
	if class == "" {
		t.Fatal("the stream gave no order a class")
	}
	for _, c := range []struct {
		query string
		keep  func(storedRow) bool
	}{
		{"", all},
		{"at_risk=1", func(r storedRow) bool { return r.atRisk }},
		{"warehouse=ATL", func(r storedRow) bool { return r.warehouse == "ATL" }},
		{"tier=gold&at_risk=1", func(r storedRow) bool { return r.tier == "gold" && r.atRisk }},
		{"class=" + class, func(r storedRow) bool { return r.class == class }},
		{"team=credit-desk", func(r storedRow) bool { return waiting[r.id] }},
		{"team=finance-controller", func(storedRow) bool { return false }},
	} {
		for _, sort := range []string{"risk", "cutoff"} {
			want := expectIDs(stored, c.keep, sort == "cutoff")
			q := c.query + "&sort=" + sort
			if got := rowIDs(walkList(t, srv.URL, q+"&limit=4")); !slices.Equal(got, want) {
				t.Errorf("?%s in pages of 4: %v\nwant %v", q, got, want)
			}
			code, p := getList(t, srv.URL, q+"&limit=500")
			if code != http.StatusOK || p.Total != len(want) || !slices.Equal(rowIDs(p.Orders), want) {
				t.Errorf("?%s: %d, total %d, %v\nwant total %d, %v", q, code, p.Total, rowIDs(p.Orders), len(want), want)
			}
		}
	}
	_, p := getList(t, srv.URL, "team=credit-desk&limit=500")
	if len(p.Orders) == 0 {
		t.Fatal("no order waits on credit-desk")
	}
	for _, r := range p.Orders {
		if r.Team != "credit-desk" || r.Decision == nil || r.Decision.State != actions.StatePending ||
			r.Decision.Action != "flag_finance" || len(r.Reasons) == 0 || r.Risk == nil || r.Minutes == nil || r.Warehouse == "" || r.CustomerTier == "" {
			t.Errorf("row of an order waiting on credit-desk: %+v", r)
		}
	}

	// A damaged decision record: its order's row is shown, saying why it has
	// no decision, and the others are not held up.
	damaged, rows := p.Orders[0].OrderID, len(p.Orders)
	b := m.st.NewBatch()
	if err := b.PutDecision(p.Orders[0].Decision.ID, damaged, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	code, p := getList(t, srv.URL, "team=credit-desk&limit=500")
	if code != http.StatusOK || len(p.Orders) != rows {
		t.Fatalf("with a damaged decision: %d %s, %d rows", code, p.Error, len(p.Orders))
	}
	for _, r := range p.Orders {
		if (r.OrderID == damaged) != (r.Unreadable != "") || (r.OrderID != damaged && r.Decision == nil) {
			t.Errorf("row %s with a damaged decision of %s: decision %+v, unreadable %q", r.OrderID, damaged, r.Decision, r.Unreadable)
		}
	}
}

// listPeers is the group of two members over their HTTP servers on
// 127.0.0.1, as cluster.Peers forwards over NATS: each member owns two of the
// four partitions.
type listPeers struct {
	self string
	urls map[string]string
	// owner names the member of an order's partition.
	owner func(order string) string
}

func (p *listPeers) Self() string                { return p.self }
func (p *listPeers) OwnerOf(order string) string { return p.owner(order) }
func (p *listPeers) Others() []string {
	var out []string
	for m := range p.urls {
		if m != p.self {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

func (p *listPeers) Forward(ctx context.Context, member string, r *http.Request, body []byte) (cluster.Forwarded, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, p.urls[member]+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return cluster.Forwarded{}, err
	}
	req.Header.Set(cluster.HeaderForwarded, p.self)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cluster.Forwarded{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return cluster.Forwarded{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, err
}

// TestOrdersListMergesTheGroup: on a group of two members, each holding the
// orders of its partitions, any member answers the queue over both, merged in
// the sort and paged with one cursor; an order a member still holds of a
// partition it gave up is shown once, from its owner.
func TestOrdersListMergesTheGroup(t *testing.T) {
	a, b := newListMember(t), newListMember(t)
	owner := func(order string) string {
		if listPart(order) < 2 {
			return "a"
		}
		return "b"
	}
	member := func(order string) *listMember {
		if owner(order) == "a" {
			return a
		}
		return b
	}
	listStream(t, 60, member)
	// b holds a stale copy of one of a's orders, with another risk.
	var stale string
	for i := range 60 {
		if id := fmt.Sprintf("SO-%03d", i); owner(id) == "a" && i%6 == 2 {
			stale = id
			break
		}
	}
	b.apply(t, createdEvent(stale, "DAL", "gold", time.Hour, 3*time.Hour), orderEvent("credit.hold", stale, time.Hour+time.Second, ""))
	if p := b.idx.Query(process.OpenQuery{Orders: []string{stale}, Limit: 1}); len(p.Orders) != 1 {
		t.Fatalf("b does not hold its stale copy of %s", stale)
	}

	urls := map[string]string{}
	var servers []*httptest.Server
	for _, m := range []struct {
		name string
		lm   *listMember
	}{{"a", a}, {"b", b}} {
		h := api.Handler(api.Options{Store: m.lm.st, OpenOrders: m.lm.idx,
			Peers: &listPeers{self: m.name, urls: urls, owner: owner}})
		srv := httptest.NewServer(h)
		defer srv.Close()
		urls[m.name] = srv.URL
		servers = append(servers, srv)
	}
	stored := storedOpen(t, a.st)
	for _, r := range storedOpen(t, b.st) {
		if r.id != stale {
			stored = append(stored, r)
		}
	}
	for _, c := range []struct {
		query string
		keep  func(storedRow) bool
	}{
		{"", func(storedRow) bool { return true }},
		{"at_risk=1", func(r storedRow) bool { return r.atRisk }},
		{"warehouse=RNO", func(r storedRow) bool { return r.warehouse == "RNO" }},
	} {
		for _, sort := range []string{"risk", "cutoff"} {
			want := expectIDs(stored, c.keep, sort == "cutoff")
			for i, srv := range servers {
				q := c.query + "&sort=" + sort
				if got := rowIDs(walkList(t, srv.URL, q+"&limit=4")); !slices.Equal(got, want) {
					t.Errorf("member %d, ?%s in pages of 4: %v\nwant %v", i, q, got, want)
				}
			}
		}
	}
	code, p := getList(t, servers[1].URL, "limit=1")
	if code != http.StatusOK || !slices.Equal(p.Members, []string{"b", "a"}) {
		t.Errorf("members of a group page: %d %v, want [b a]", code, p.Members)
	}
}

// TestOrdersListRefusesGarbageCursors: a cursor this server did not give
// (oversized, random bytes, another encoding, a key that is no number, a risk
// that is not finite, a key written otherwise than the server writes it) is
// a 400 that names the cursor and does not echo all of it.
func TestOrdersListRefusesGarbageCursors(t *testing.T) {
	m := newListMember(t)
	listStream(t, 12, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx}))
	defer srv.Close()
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(i*131 + 7)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct{ name, sort, cursor string }{
		{"100 KB", "risk", strings.Repeat("A", 100<<10)},
		{"100 KB of a valid cursor's text", "risk", enc("o1:risk:0.5:" + strings.Repeat("S", 75<<10))},
		{"random bytes", "risk", string(random)},
		{"random bytes in base64", "risk", base64.RawURLEncoding.EncodeToString(random)},
		{"padded base64", "risk", base64.URLEncoding.EncodeToString([]byte("o1:risk:0.5:SO-01"))},
		{"no version", "risk", enc("risk:0.5:SO-001")},
		{"no order", "risk", enc("o1:risk:0.5:")},
		{"risk not a number", "risk", enc("o1:risk:high:SO-001")},
		{"risk NaN", "risk", enc("o1:risk:NaN:SO-001")},
		{"risk infinite", "risk", enc("o1:risk:+Inf:SO-001")},
		{"risk out of range", "risk", enc("o1:risk:1e400:SO-001")},
		{"risk written otherwise", "risk", enc("o1:risk:0.50:SO-001")},
		{"cutoff not a number", "cutoff", enc("o1:cutoff:noon:SO-001")},
		{"cutoff written otherwise", "cutoff", enc("o1:cutoff:+0001:SO-001")},
	} {
		code, p := getList(t, srv.URL, "sort="+c.sort+"&cursor="+url.QueryEscape(c.cursor))
		if code != http.StatusBadRequest || !strings.Contains(p.Error, "cursor") || len(p.Error) > 400 {
			t.Errorf("%s: %d %.200q; want 400 naming the cursor, briefly", c.name, code, p.Error)
		}
	}
	// What the server gives is taken back, in both sorts.
	for _, sort := range []string{"risk", "cutoff"} {
		if rows := walkList(t, srv.URL, "sort="+sort+"&limit=1"); len(rows) != 10 {
			t.Errorf("sort=%s in pages of 1: %d rows, want the 10 open orders", sort, len(rows))
		}
	}
}

// TestOrdersListTeamFollowsTheOpenItems: team= follows the open items as
// they change between queries of the same server: an escalated wait moves to
// its new team, an answered one leaves, a new one joins.
func TestOrdersListTeamFollowsTheOpenItems(t *testing.T) {
	m := newListMember(t)
	listStream(t, 24, func(string) *listMember { return m })
	srv := httptest.NewServer(api.Handler(api.Options{Store: m.st, OpenOrders: m.idx}))
	defer srv.Close()
	team := func(name string) []string {
		t.Helper()
		code, p := getList(t, srv.URL, "team="+name+"&limit=500")
		if code != http.StatusOK {
			t.Fatalf("team=%s: %d %s", name, code, p.Error)
		}
		ids := rowIDs(p.Orders)
		slices.Sort(ids)
		return ids
	}
	items, err := m.st.OpenItems()
	if err != nil || len(items) < 3 {
		t.Fatalf("%d open items, %v", len(items), err)
	}
	waits := make([]actions.OpenItem, len(items))
	var all []string
	for i, oi := range items {
		if err := json.Unmarshal(oi.Value, &waits[i]); err != nil {
			t.Fatal(err)
		}
		all = append(all, waits[i].OrderID)
	}
	slices.Sort(all)
	if got := team("credit-desk"); !slices.Equal(got, all) {
		t.Fatalf("team=credit-desk: %v, want %v", got, all)
	}
	// The first escalates, the second is answered; then the second waits
	// again, on finance-controller.
	write := func(fn func(b *store.Batch) error) {
		t.Helper()
		b := m.st.NewBatch()
		if err := fn(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put := func(b *store.Batch, it actions.OpenItem) error {
		v, err := json.Marshal(it)
		if err != nil {
			return err
		}
		return b.PutOpen(it.DecisionID, v)
	}
	escalated, answered := waits[0], waits[1]
	escalated.Tier, escalated.Team = 1, "finance-controller"
	write(func(b *store.Batch) error {
		if err := put(b, escalated); err != nil {
			return err
		}
		return b.DeleteOpen(answered.DecisionID)
	})
	rest := slices.DeleteFunc(slices.Clone(all), func(o string) bool { return o == escalated.OrderID || o == answered.OrderID })
	if got := team("credit-desk"); !slices.Equal(got, rest) {
		t.Errorf("team=credit-desk after an escalation and an answer: %v, want %v", got, rest)
	}
	if got := team("finance-controller"); !slices.Equal(got, []string{escalated.OrderID}) {
		t.Errorf("team=finance-controller after an escalation: %v, want %v", got, []string{escalated.OrderID})
	}
	answered.Team = "finance-controller"
	write(func(b *store.Batch) error { return put(b, answered) })
	want := []string{escalated.OrderID, answered.OrderID}
	slices.Sort(want)
	if got := team("finance-controller"); !slices.Equal(got, want) {
		t.Errorf("team=finance-controller after a new wait: %v, want %v", got, want)
	}
	// A damaged open item fails the request, saying which.
	write(func(b *store.Batch) error { return b.PutOpen(answered.DecisionID, []byte("{not json")) })
	if code, p := getList(t, srv.URL, "team=credit-desk"); code != http.StatusInternalServerError || !strings.Contains(p.Error, answered.DecisionID) {
		t.Errorf("team= with a damaged open item: %d %q", code, p.Error)
	}
}
