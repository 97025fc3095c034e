package api

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// OpenOrders answers queries over the index of the open orders this instance
// holds (a *process.OpenIndex), for GET /api/v1/orders.
type OpenOrders interface {
	Query(q process.OpenQuery) process.OpenPage
}

const (
	// maxFilterBytes bounds ?warehouse and ?team: the event decoder bounds a
	// warehouse to 64 bytes, the policy a team name.
	maxFilterBytes = 64
	// ordersCursorVersion begins the cursors of GET /api/v1/orders, which carry
	// a sort key as well as an order id.
	ordersCursorVersion = "o1:"
	// maxCursorBytes bounds a cursor: a key and an order id of 128 bytes.
	maxCursorBytes = 512
)

// listParams are the parameters of GET /api/v1/orders.
var listParams = []string{"at_risk", "warehouse", "class", "tier", "team", "sort", "limit", "cursor"}

// ordersQuery is a request of GET /api/v1/orders, read and checked.
type ordersQuery struct {
	q     process.OpenQuery
	team  string
	limit int
}

// parseOrdersQuery reads the parameters of GET /api/v1/orders; an error names
// the parameter at fault and what it takes.
func parseOrdersQuery(v url.Values) (ordersQuery, error) {
	var o ordersQuery
	for _, name := range listParams {
		if len(v[name]) > 1 {
			return o, fmt.Errorf("%s is given %d times: give it once", name, len(v[name]))
		}
	}
	switch v.Get("at_risk") {
	case "", "0", "false":
	case "1", "true":
		o.q.AtRisk = true
	default:
		return o, errors.New("at_risk must be 1 (only the orders at or above their model's act threshold) or 0 (every open order, the default)")
	}
	switch v.Get("sort") {
	case "", "risk":
		o.q.Sort = process.SortRisk
	case "cutoff":
		o.q.Sort = process.SortCutoff
	default:
		return o, errors.New("sort must be risk (highest first, the default) or cutoff (the nearest ship cutoff first)")
	}
	if c := v.Get("class"); c != "" && !slices.Contains(features.ExceptionClasses, c) {
		return o, fmt.Errorf("class must be one of %s", strings.Join(features.ExceptionClasses, ", "))
	}
	o.q.Class = v.Get("class")
	if t := v.Get("tier"); t != "" && !slices.Contains(features.CustomerTiers, t) {
		return o, fmt.Errorf("tier must be one of %s", strings.Join(features.CustomerTiers, ", "))
	}
	o.q.Tier = v.Get("tier")
	o.q.Warehouse = v.Get("warehouse")
	if msg := checkFilter("warehouse", o.q.Warehouse); msg != "" {
		return o, errors.New(msg)
	}
	o.team = v.Get("team")
	if msg := checkFilter("team", o.team); msg != "" {
		return o, errors.New(msg)
	}
	if o.team != "" && strings.ContainsFunc(o.team, func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._-", r)))
	}) {
		return o, errors.New("team is a team name of the policy: letters, digits, '.', '_' or '-'")
	}
	limit, err := listLimit(v)
	if err != nil {
		return o, err
	}
	o.limit, o.q.Limit = limit, limit
	if c := v.Get("cursor"); c != "" {
		k, err := decodeOrdersCursor(c, o.q.Sort)
		if err != nil {
			return o, err
		}
		o.q.After = &k
	}
	return o, nil
}

// checkFilter checks a text filter: bounded, no control characters.
func checkFilter(name, v string) string {
	switch {
	case len(v) > maxFilterBytes:
		return fmt.Sprintf("%s is longer than %d bytes", name, maxFilterBytes)
	case strings.ContainsFunc(v, unicode.IsControl):
		return name + " holds control characters"
	}
	return ""
}

// encodeOrdersCursor is the cursor of the page after the row at k in sort s:
// the base64url text of "o1:", the sort, the key and the order id.
func encodeOrdersCursor(s process.OpenSort, k process.OpenKey) string {
	var key string
	switch {
	case s == process.SortRisk:
		key = strconv.FormatFloat(k.Risk, 'g', -1, 64)
	case k.Cutoff.IsZero():
		key = "-"
	default:
		key = strconv.FormatInt(k.Cutoff.UnixNano(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(ordersCursorVersion + s.String() + ":" + key + ":" + k.ID))
}

// decodeOrdersCursor reads a cursor of GET /api/v1/orders, which must have
// been given for sort s.
func decodeOrdersCursor(c string, s process.OpenSort) (process.OpenKey, error) {
	shown := c
	if len(shown) > 64 {
		shown = shown[:64] + "…" // it is echoed back: not the whole of a hostile one
	}
	bad := fmt.Errorf("cursor %q is not one this server gave: pass the \"next\" of the page before, with the same sort, or no cursor for the first page", shown)
	if len(c) > maxCursorBytes {
		return process.OpenKey{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	rest, ok := strings.CutPrefix(string(b), ordersCursorVersion)
	if err != nil || !ok {
		return process.OpenKey{}, bad
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 || parts[2] == "" {
		return process.OpenKey{}, bad
	}
	if parts[0] != s.String() {
		return process.OpenKey{}, fmt.Errorf("cursor was given for sort=%s, not sort=%s: start again without a cursor", parts[0], s)
	}
	k := process.OpenKey{ID: parts[2]}
	switch {
	case s == process.SortRisk:
		k.Risk, err = strconv.ParseFloat(parts[1], 64)
	case parts[1] != "-":
		var n int64
		n, err = strconv.ParseInt(parts[1], 10, 64)
		k.Cutoff = time.Unix(0, n).UTC()
	}
	// A key is a finite number, written as encodeOrdersCursor writes it: a
	// cursor is this server's, or garbage.
	if err != nil || math.IsNaN(k.Risk) || math.IsInf(k.Risk, 0) || encodeOrdersCursor(s, k) != c {
		return process.OpenKey{}, bad
	}
	return k, nil
}

// orderRow is a row of the at-risk queue.
type orderRow struct {
	OrderID string   `json:"order_id"`
	Risk    *float64 `json:"risk"` // null until the order is scored
	AtRisk  bool     `json:"at_risk"`
	// ShipCutoff and MinutesToCutoff (at the answer, negative once passed)
	// are absent for an order without a cutoff.
	ShipCutoff      time.Time `json:"ship_cutoff,omitzero"`
	MinutesToCutoff *float64  `json:"minutes_to_cutoff,omitempty"`
	Warehouse       string    `json:"warehouse,omitempty"`
	CustomerTier    string    `json:"customer_tier,omitempty"`
	Class           string    `json:"class,omitempty"` // the most likely exception class
	// Team is the team a decision of the order waits on (approval or
	// acknowledgement), at its current tier.
	Team string `json:"team,omitempty"`
	// Reasons are the top drivers of the risk when Decision was made.
	Reasons  []string     `json:"reasons,omitempty"`
	Decision *rowDecision `json:"decision,omitempty"`
	// Unreadable says why the order's decisions could not be read (a damaged
	// record): the row is shown without them rather than not at all.
	Unreadable string `json:"unreadable,omitempty"`
}

// rowDecision is the decision a row shows: the one waiting for a person, or
// else the order's latest; State says where it stands.
type rowDecision struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	RuleID  string    `json:"rule_id"`
	Action  string    `json:"action"`
	Mode    string    `json:"mode"`
	State   string    `json:"state"`
	Waiting string    `json:"waiting,omitempty"` // approval or ack
}

// ordersList serves GET /api/v1/orders?at_risk=1&warehouse=&class=&tier=&team=&sort=risk|cutoff&limit=&cursor=:
// a page of the open orders this instance holds, from its index (no scan of
// Badger), with the total the filters select and in "next" the cursor of the
// next page ("" on the last).
func (s *server) ordersList(w http.ResponseWriter, r *http.Request) {
	oq, err := parseOrdersQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if oq.team != "" {
		// The orders with a decision waiting on the team: few beside the
		// orders, read from the open items.
		waiting, err := s.waitingOn(oq.team)
		if err != nil {
			s.fail(w, err)
			return
		}
		oq.q.Orders = waiting
	}
	page := s.o.OpenOrders.Query(oq.q)
	now := time.Now()
	// The rows' decisions, in one read of the store.
	ids := make([]string, len(page.Orders))
	for i := range page.Orders {
		ids[i] = page.Orders[i].ID
	}
	views, errs, err := s.o.Store.ShownDecisions(ids, rowDecisions)
	if err != nil {
		s.fail(w, err)
		return
	}
	rows := make([]orderRow, len(page.Orders))
	var unreadable int
	var firstErr error
	for i := range page.Orders {
		dv, err := &views[i], errs[i]
		if err != nil {
			dv = nil // the row without its decision, saying why
		}
		if ferr := rows[i].fill(&page.Orders[i], dv, now); err == nil {
			err = ferr
		}
		if err != nil {
			rows[i].Unreadable = err.Error()
			if unreadable++; firstErr == nil {
				firstErr = err
			}
		}
	}
	if unreadable > 0 {
		s.log.Warn("decisions of at-risk rows not read, rows shown without them", "rows", unreadable, "err", firstErr)
	}
	next := ""
	if page.More && len(page.Orders) > 0 {
		next = encodeOrdersCursor(oq.q.Sort, page.Orders[len(page.Orders)-1].Key())
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": rows, "total": page.Total, "next": next, "sort": oq.q.Sort.String()})
}

// waitingTeams is what waitingOn keeps of the open items: the order and team
// of each, by decision id, as of the item's version. It is safe for
// concurrent use; its zero value is empty.
type waitingTeams struct {
	mu sync.Mutex
	// items holds an entry for each open item seen by the last walk.
	items map[string]*waitingItem
	walk  uint64 // walks so far
}

// waitingItem is an open item's order and team, read at version.
type waitingItem struct {
	version, walk uint64 // walk: the last that saw it
	order, team   string
}

// waitingOn returns the orders with a decision waiting on team (approval or
// acknowledgement, at the wait's current tier). It walks the open items'
// keys and reads the value of an item only when it was written since the
// walk before (a new wait, an escalation): the rest are known by version.
// The open items stay the one record of who waits on whom: nothing else to
// keep in step with the pipeline, the governor and the group's restores.
func (s *server) waitingOn(team string) ([]string, error) {
	w := &s.teams
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.items == nil {
		w.items = map[string]*waitingItem{}
	}
	w.walk++
	orders := []string{}
	err := s.o.Store.EachOpenItem(func(decision []byte, version uint64, value func(func([]byte) error) error) error {
		it := w.items[string(decision)]
		if it == nil || it.version != version {
			var order, t string
			if err := value(func(v []byte) (err error) { order, t, err = openItemOrderTeam(decision, v); return err }); err != nil {
				return err
			}
			if it == nil {
				it = &waitingItem{}
				w.items[string(decision)] = it
			}
			it.version, it.order, it.team = version, order, t
		}
		it.walk = w.walk
		if it.team == team {
			orders = append(orders, it.order)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for d, it := range w.items {
		if it.walk != w.walk {
			delete(w.items, d) // answered, or moved with its partition
		}
	}
	return orders, nil
}

// openItemOrderTeam reads the order and team of an open item: by
// openItemFields, else decoded.
func openItemOrderTeam(decision, v []byte) (order, team string, err error) {
	if o, t, ok := openItemFields(v); ok {
		return string(o), string(t), nil
	}
	var it struct {
		OrderID string `json:"order_id"`
		Team    string `json:"team"`
	}
	if err := json.Unmarshal(v, &it); err != nil {
		return "", "", fmt.Errorf("api: decode the open item of decision %s: %w", decision, err)
	}
	return it.OrderID, it.Team, nil
}

// rowDecisions is how many of an order's latest decisions a row looks through
// for one waiting for a person.
const rowDecisions = 8

// fill makes row the page's row of an indexed order, with the decision it
// shows, dv (store.ShownDecisions): nil or without an ID when there is none.
func (row *orderRow) fill(o *process.OpenOrder, dv *store.DecisionView, now time.Time) error {
	*row = orderRow{OrderID: o.ID, AtRisk: o.AtRisk, ShipCutoff: o.Cutoff, Warehouse: o.Warehouse,
		CustomerTier: o.Tier, Class: o.Class}
	if o.Scored {
		risk := o.Risk
		row.Risk = &risk
	}
	if !o.Cutoff.IsZero() {
		m := o.Cutoff.Sub(now).Minutes()
		row.MinutesToCutoff = &m
	}
	if dv == nil || dv.ID == "" {
		return nil
	}
	// What the row shows of the record: decoding its features and scores
	// would cost more than the rest of the page.
	var d rowRecord
	if err := decodeRowRecord(dv.Record, &d); err != nil {
		return fmt.Errorf("api: decode decision %s: %w", dv.ID, err)
	}
	state, waiting, err := actions.StateOf(d.Status, *dv, now)
	if err != nil {
		return err
	}
	row.Reasons = d.Reasons
	row.Decision = &rowDecision{ID: d.ID, At: d.At, RuleID: d.RuleID, Action: d.Action, Mode: d.Mode, State: state}
	if waiting != nil {
		row.Team, row.Decision.Waiting = waiting.Team, waiting.Kind
	}
	return nil
}

// mergedOrders serves GET /api/v1/orders over the group, as merged does the
// lists of decisions: each member's page after the same cursor, merged in the
// sort and cut at the limit, the cursor the last row's. A row from a member
// that does not own the order's partition (a copy it still holds while the
// partition moves) is left out for the owner's; totals are summed.
func (s *server) mergedOrders(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.alone(r) {
			h(w, r)
			return
		}
		oq, err := parseOrdersQuery(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		local := httptest.NewRecorder()
		h(local, r)
		if local.Code != http.StatusOK {
			copyRecorded(w, local)
			return
		}
		type memberPage struct {
			Orders []json.RawMessage `json:"orders"`
			Total  int               `json:"total"`
			Next   string            `json:"next"`
		}
		type item struct {
			key process.OpenKey
			raw json.RawMessage
		}
		var (
			all         []item
			more        bool
			total       int
			members     []string
			unreachable []string
			seen        = map[string]bool{}
			// lasts are the keys of the last rows of the members' pages
			// with more after them.
			lasts []process.OpenKey
		)
		add := func(member string, body []byte) error {
			var p memberPage
			if err := json.Unmarshal(body, &p); err != nil {
				return fmt.Errorf("api: read a member's page of orders: %w", err)
			}
			var items []item
			for _, raw := range p.Orders {
				var v struct {
					OrderID    string    `json:"order_id"`
					Risk       *float64  `json:"risk"`
					ShipCutoff time.Time `json:"ship_cutoff"`
				}
				if err := json.Unmarshal(raw, &v); err != nil || v.OrderID == "" {
					return fmt.Errorf("api: a member's page holds an order row without an order_id")
				}
				k := process.OpenKey{ID: v.OrderID, Risk: -1, Cutoff: v.ShipCutoff}
				if v.Risk != nil {
					k.Risk = *v.Risk
				}
				items = append(items, item{k, raw})
			}
			members = append(members, member)
			more, total = more || p.Next != "", total+p.Total
			if p.Next != "" && len(items) > 0 {
				lasts = append(lasts, items[len(items)-1].key)
			}
			for _, it := range items {
				if o := s.o.Peers.OwnerOf(it.key.ID); (o != "" && o != member) || seen[it.key.ID] {
					continue
				}
				seen[it.key.ID] = true
				all = append(all, it)
			}
			return nil
		}
		if err := add(s.o.Peers.Self(), local.Body.Bytes()); err != nil {
			s.fail(w, err)
			return
		}
		for _, m := range s.o.Peers.Others() {
			f, err := s.o.Peers.Forward(r.Context(), m, r, nil)
			if err == nil && f.Status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", f.Status, f.Body)
			}
			if err == nil {
				err = add(m, f.Body)
			}
			if err != nil {
				s.log.Warn("member's page left out of a group list", "member", m, "err", err)
				unreachable = append(unreachable, m)
			}
		}
		compare := func(a, b process.OpenKey) int {
			if oq.q.Sort == process.SortCutoff {
				return cmp.Or(compareCutoff(a.Cutoff, b.Cutoff), strings.Compare(a.ID, b.ID))
			}
			return cmp.Or(cmp.Compare(b.Risk, a.Risk), strings.Compare(a.ID, b.ID))
		}
		slices.SortFunc(all, func(a, b item) int { return compare(a.key, b.key) })
		if len(all) > oq.limit {
			all, more = all[:oq.limit], true
		}
		out := make([]json.RawMessage, len(all))
		for i, it := range all {
			out[i] = it.raw
		}
		next := ""
		switch {
		case more && len(all) > 0:
			next = encodeOrdersCursor(oq.q.Sort, all[len(all)-1].key)
		case more && len(lasts) > 0:
			// Every row was a copy left out: the next page starts after the
			// first of the members' last rows, which skips none.
			next = encodeOrdersCursor(oq.q.Sort, slices.MinFunc(lasts, compare))
		}
		body := map[string]any{"orders": out, "total": total, "next": next, "sort": oq.q.Sort.String(), "members": members}
		if len(unreachable) > 0 {
			body["unreachable"] = unreachable
		}
		writeJSON(w, http.StatusOK, body)
	}
}

// compareCutoff orders cutoffs as the index does: none after every other.
func compareCutoff(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return 1
	case b.IsZero():
		return -1
	}
	return a.Compare(b)
}
