package api

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/features"
)

// atRiskFilters are the filters of the at-risk page, which it passes on to
// GET /api/v1/orders as they are.
var atRiskFilters = []string{"at_risk", "warehouse", "class", "team", "tier", "sort"}

// atRiskView is the at-risk page's data.
type atRiskView struct {
	Orders  []orderRow
	Total   int
	Next    string // the URL of the next page, "" on the last
	Filters map[string]string
	Classes []string
	Tiers   []string
	Error   string // why the API refused the filters
}

// atRiskPage serves GET /: the open orders at risk (or all open ones), from
// GET /api/v1/orders with the page's filters.
func (s *server) atRiskPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	in := r.URL.Query()
	v := atRiskView{Filters: map[string]string{}, Classes: features.ExceptionClasses, Tiers: features.CustomerTiers}
	q := url.Values{"limit": {strconv.Itoa(consolePage)}}
	for _, name := range atRiskFilters {
		v.Filters[name] = in.Get(name)
		if in.Get(name) != "" {
			q.Set(name, in.Get(name))
		}
	}
	if v.Filters["at_risk"] == "" {
		v.Filters["at_risk"] = "1"
		q.Set("at_risk", "1")
	}
	if c := in.Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var page struct {
		Orders []orderRow `json:"orders"`
		Total  int        `json:"total"`
		Next   string     `json:"next"`
	}
	code := http.StatusOK
	err := s.consoleAPI(r, http.MethodGet, "/api/v1/orders?"+q.Encode(), nil, &page)
	if ae := new(apiError); errors.As(err, &ae) && ae.Code == http.StatusBadRequest {
		// A filter the API refuses: the page shows the form again, and why.
		code, v.Error = http.StatusBadRequest, ae.Msg
	} else if err != nil {
		s.apiFailed(w, p, err)
		return
	}
	v.Orders, v.Total = page.Orders, page.Total
	if page.Next != "" {
		q.Del("limit")
		q.Set("cursor", page.Next)
		v.Next = "/?" + q.Encode()
	}
	s.render(w, r, code, "at_risk", "At risk", p, v)
}
