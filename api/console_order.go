package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/features"
)

// orderView is the order page's data: GET /api/v1/orders/{id}, and what the
// page derives from it (milestones, the chart).
type orderView struct {
	ID     string
	Record struct {
		State struct {
			Warehouse    string    `json:"warehouse"`
			CustomerID   string    `json:"customer_id"`
			CustomerTier string    `json:"customer_tier"`
			Channel      string    `json:"channel"`
			Carrier      string    `json:"carrier"`
			ServiceLevel string    `json:"service_level"`
			CreatedAt    time.Time `json:"created_at"`
			ShipCutoff   time.Time `json:"ship_cutoff"`
			PromisedAt   time.Time `json:"promised_at"`
			Milestone    string    `json:"milestone"`
			MilestoneAt  time.Time `json:"milestone_at"`
			ShippedAt    time.Time `json:"shipped_at"`
			Cancelled    bool      `json:"cancelled"`
		} `json:"state"`
		Risk     *float64          `json:"risk"`
		ScoredAt time.Time         `json:"scored_at"`
		Model    *actions.ModelRef `json:"model"`
		Degraded bool              `json:"degraded"`
		Flags    map[string]bool   `json:"flags"`
	} `json:"record"`
	Decisions  []actions.View   `json:"decisions"`
	Exceptions []orderException `json:"exceptions"`
	History    []historyEntry   `json:"history"`
	Scores     []riskPoint      `json:"scores"`
	Unreadable []string         `json:"unreadable"`

	Milestones []milestone
	Chart      riskChart
}

// orderException is what the order page shows of an exception record
// (process.Exception, as GET /api/v1/orders/{id} gives it).
type orderException struct {
	ID          string    `json:"id"`
	Deadline    string    `json:"deadline"`
	Kind        string    `json:"kind"`
	Class       string    `json:"class"`
	Category    string    `json:"category"`
	Owner       string    `json:"owner"`
	FirstOwner  string    `json:"first_owner"`
	OpenedAt    time.Time `json:"opened_at"`
	DueAt       time.Time `json:"due_at"`
	Open        bool      `json:"open"`
	Overdue     bool      `json:"overdue"`
	Reminders   int       `json:"reminders"`
	Escalations int       `json:"escalations"`
	ClosedAt    time.Time `json:"closed_at"`
	ClosedBy    string    `json:"closed_by"`
	Code        string    `json:"code"`
	Incident    string    `json:"incident"`
}

// milestone is a milestone an order reached, when its event happened.
type milestone struct {
	Name string
	At   time.Time
}

// milestoneEvents are the events that move an order to a milestone.
var milestoneEvents = map[string]string{
	features.TypeOrderCreated:       features.MilestoneCreated,
	features.TypeInventoryAllocated: features.MilestoneAllocated,
	features.TypePickReleased:       features.MilestoneReleased,
	features.TypePickConfirmed:      features.MilestonePicked,
	features.TypePackConfirmed:      features.MilestonePacked,
	features.TypeShipmentConfirmed:  features.MilestoneShipped,
	features.TypeInvoiceCreated:     features.MilestoneInvoiced,
	features.TypeOrderCancelled:     "cancelled",
}

// orderPage serves GET /orders/{id}: the order's state and milestones, its
// history, the risk over time and its decisions; 404 for an unknown order.
func (s *server) orderPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	v := orderView{ID: id}
	if err := s.consoleAPI(r, http.MethodGet, "/api/v1/orders/"+url.PathEscape(id), nil, &v); err != nil {
		s.apiFailed(w, p, err)
		return
	}
	v.Milestones = milestones(v.History)
	v.Chart = drawRisk(v.Scores)
	s.render(w, r, http.StatusOK, "order", "Order "+id, p, &v)
}

// milestones are the first time of each milestone in an order's history.
func milestones(h []historyEntry) []milestone {
	var out []milestone
	for _, e := range h {
		if e.Kind != "event" {
			continue
		}
		typ, _, _ := strings.Cut(e.What, ":")
		m, ok := milestoneEvents[typ]
		if !ok || slices.ContainsFunc(out, func(x milestone) bool { return x.Name == m }) {
			continue
		}
		out = append(out, milestone{Name: m, At: e.At})
	}
	return out
}

// riskChart is the risk over time as an SVG polyline, drawn on the server.
type riskChart struct {
	Width, Height int
	Points        string // the polyline's points, "x,y x,y …"
	From, To      time.Time
	Last          float64
	N             int
}

// Chart geometry: the plot is inset by chartPad for the axis labels.
const (
	chartW, chartH = 640, 160
	chartPad       = 28
)

// drawRisk draws the scores by time: x from the first score to the last, y
// from 0 (bottom) to 1.
func drawRisk(pts []riskPoint) riskChart {
	c := riskChart{Width: chartW, Height: chartH, N: len(pts)}
	if len(pts) == 0 {
		return c
	}
	pts = slices.Clone(pts)
	slices.SortStableFunc(pts, func(a, b riskPoint) int { return a.At.Compare(b.At) })
	c.From, c.To, c.Last = pts[0].At, pts[len(pts)-1].At, pts[len(pts)-1].Risk
	span := c.To.Sub(c.From)
	var b strings.Builder
	for i, pt := range pts {
		x := float64(chartPad)
		if span > 0 {
			x += float64(pt.At.Sub(c.From)) / float64(span) * float64(chartW-2*chartPad)
		} else if len(pts) > 1 {
			x += float64(i) / float64(len(pts)-1) * float64(chartW-2*chartPad)
		}
		risk := min(max(pt.Risk, 0), 1)
		y := float64(chartPad) + (1-risk)*float64(chartH-2*chartPad)
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.1f,%.1f", x, y)
	}
	if len(pts) == 1 { // one point: a short flat line, so that it shows
		fmt.Fprintf(&b, " %.1f,%s", float64(chartPad)+8, strings.Split(b.String(), ",")[1])
	}
	c.Points = b.String()
	return c
}

// findOrderPage serves GET /orders: a form that opens an order by its id
// (?id=ID goes to /orders/ID).
func (s *server) findOrderPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if id := strings.TrimSpace(r.URL.Query().Get("id")); id != "" {
		http.Redirect(w, r, "/orders/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "find_order", "Order", p, nil)
}
