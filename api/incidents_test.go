package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/process"
)

// TestIncidentsEndpoint: GET /api/v1/incidents lists the stored incidents,
// filtered by state, owner and kind, a page at a time; GET
// /api/v1/incidents/{id} shows one with its orders, 404 for none; with
// TokenForReads both need the token like the other reads.
func TestIncidentsEndpoint(t *testing.T) {
	st := openStore(t)
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	incs := []process.Incident{
		{ID: "inc-1", Cause: "integration/edi/MAP-UOM/C-0042", Kind: "integration", Owner: "integration", Class: "integration",
			State: process.IncidentOpen, Orders: []string{"SO-1", "SO-2", "SO-3"}, OrderCount: 3, Exceptions: 3, OpenExceptions: 3,
			FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
		{ID: "inc-2", Cause: "carrier/ODFL/DAL", Kind: "carrier", Owner: "floor-lead", Class: "carrier",
			State: process.IncidentClosed, Orders: []string{"SO-4"}, OrderCount: 1, Exceptions: 1,
			FirstSeen: t0, LastSeen: t0, ClosedAt: t0.Add(time.Hour)},
		{ID: "inc-3", Cause: "warehouse/DAL", Kind: "warehouse", Owner: "floor-lead", Class: "warehouse_capacity",
			State: process.IncidentOpen, Orders: []string{"SO-5", "SO-6"}, OrderCount: 2, Exceptions: 2, OpenExceptions: 1,
			FirstSeen: t0, LastSeen: t0},
	}
	b := st.NewBatch()
	for _, inc := range incs {
		v, _ := json.Marshal(inc)
		if err := b.PutIncident(inc.ID, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

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
	all := func(query string, limit int) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 10 {
			var l struct {
				Incidents []process.Incident `json:"incidents"`
				Next      string             `json:"next"`
			}
			path := fmt.Sprintf("/api/v1/incidents?limit=%d&cursor=%s&%s", limit, cursor, query)
			if code := get(path, token, &l); code != http.StatusOK {
				t.Fatalf("GET %s: %d", path, code)
			}
			if len(l.Incidents) > limit {
				t.Fatalf("GET %s: %d incidents, limit %d", path, len(l.Incidents), limit)
			}
			for _, inc := range l.Incidents {
				out = append(out, inc.ID)
			}
			if cursor = l.Next; cursor == "" {
				return out
			}
		}
		t.Fatalf("%s: more than 10 pages", query)
		return nil
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"inc-1", "inc-2", "inc-3"}},
		{"state=open", []string{"inc-1", "inc-3"}},
		{"state=closed", []string{"inc-2"}},
		{"owner=floor-lead", []string{"inc-2", "inc-3"}},
		{"state=open&owner=floor-lead", []string{"inc-3"}},
		{"kind=integration", []string{"inc-1"}},
		{"kind=price_contract", nil},
	} {
		for _, limit := range []int{1, 2, 100} {
			if got := all(c.query, limit); !slices.Equal(got, c.want) {
				t.Errorf("?%s (limit %d): %v, want %v", c.query, limit, got, c.want)
			}
		}
	}
	var one process.Incident
	if code := get("/api/v1/incidents/inc-1", token, &one); code != http.StatusOK || one.Cause != incs[0].Cause ||
		!slices.Equal(one.Orders, incs[0].Orders) || !one.FirstSeen.Equal(t0) || !one.LastSeen.Equal(t0.Add(time.Hour)) ||
		one.Owner != "integration" || one.State != process.IncidentOpen {
		t.Errorf("GET /api/v1/incidents/inc-1: %d %+v, want the first incident with its orders", code, one)
	}
	for path, want := range map[string]int{
		"/api/v1/incidents/inc-9":      http.StatusNotFound,
		"/api/v1/incidents?state=busy": http.StatusBadRequest,
	} {
		if code := get(path, token, nil); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	for _, path := range []string{"/api/v1/incidents", "/api/v1/incidents/inc-1"} {
		if code := get(path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
	}
}
