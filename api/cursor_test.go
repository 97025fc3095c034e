package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

// TestListsArePagedWithACursor: decisions and approvals come in pages of at
// most ?limit (500 at most; more is refused with 400), and following "next" from
// page to page gives every item once; the last page has no next. A cursor the
// server did not give is refused with 400.
func TestListsArePagedWithACursor(t *testing.T) {
	e := newApprovalsEnv(t, testToken)
	t0 := time.Now().Add(-time.Hour)
	var ids []string
	for i := range 12 {
		ids = append(ids, e.creditHold(fmt.Sprintf("SO-P%02d", i), t0.Add(time.Duration(i)*time.Minute)))
	}
	newestFirst := slices.Clone(ids)
	slices.Reverse(newestFirst)

	for _, c := range []struct {
		path, field string
		want        []string
	}{
		{"/api/v1/decisions", "decisions", newestFirst},
		{"/api/v1/decisions?order=SO-P03", "decisions", ids[3:4]},
		{"/api/v1/approvals", "approvals", ids},
	} {
		var got []string
		var pages []int
		cursor := ""
		for len(pages) <= 20 {
			u, _ := url.Parse(c.path)
			q := u.Query()
			q.Set("limit", "5")
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			u.RawQuery = q.Encode()
			code, body := e.do("GET", u.String(), "", "")
			if code != 200 {
				t.Fatalf("GET %s = %d %s", u, code, body)
			}
			var page map[string]json.RawMessage
			var views []actions.View
			if err := json.Unmarshal([]byte(body), &page); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(page[c.field], &views); err != nil {
				t.Fatalf("%s of %s: %v", c.field, body, err)
			}
			pages = append(pages, len(views))
			for _, v := range views {
				got = append(got, v.Decision.ID)
			}
			if err := json.Unmarshal(page["next"], &cursor); err != nil {
				t.Fatalf("next of %s: %v", u, err)
			}
			if cursor == "" {
				break
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s in pages %v gave %v, want %v", c.path, pages, got, c.want)
		}
		if len(c.want) == 12 && !slices.Equal(pages, []int{5, 5, 2}) {
			t.Errorf("%s pages of %v, want 5, 5, 2", c.path, pages)
		}
	}

	for _, path := range []string{
		"/api/v1/decisions?limit=10000", "/api/v1/decisions?limit=501", "/api/v1/decisions?limit=0",
		"/api/v1/approvals?limit=10000", "/api/v1/decisions?cursor=bm90LW91cnM", "/api/v1/approvals?cursor=%25%25",
	} {
		if code, body := e.do("GET", path, "", ""); code != 400 {
			t.Errorf("GET %s = %d %s, want 400", path, code, body)
		}
	}
	// A hostile cursor is refused without being echoed back whole.
	hostile := strings.Repeat("QUFB", 1000)
	if code, body := e.do("GET", "/api/v1/decisions?cursor="+hostile, "", ""); code != 400 || len(body) > 512 {
		t.Errorf("GET a 4000-byte cursor = %d with %d bytes, want 400 in a short answer", code, len(body))
	}
	if code, body := e.do("GET", "/api/v1/decisions?limit=500", "", ""); code != 200 {
		t.Errorf("GET limit=500 = %d %s, want 200", code, body)
	}
}
