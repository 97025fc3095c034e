package store

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestDecisionsPage: paging through decisions with the cursor each page returns
// gives every decision the query selects once, newest first, whatever the page
// size, for all orders or one, with or without a time floor; the last page says
// there is no next one.
func TestDecisionsPage(t *testing.T) {
	s := open(t, t.TempDir())
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	b := s.NewBatch()
	var all, so1 []string // newest first
	for i := range 40 {
		id := fmt.Sprintf("%s-%08x", DecisionIDPrefix(t0.Add(time.Duration(i)*time.Minute)), i)
		order := fmt.Sprintf("SO-%d", i%3)
		if err := b.PutDecision(id, order, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		all = append([]string{id}, all...)
		if order == "SO-1" {
			so1 = append([]string{id}, so1...)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	since := t0.Add(25 * time.Minute)
	cases := []struct {
		name string
		q    DecisionsQuery
		want []string
	}{
		{"all", DecisionsQuery{}, all},
		{"one order", DecisionsQuery{Order: "SO-1"}, so1},
		{"since", DecisionsQuery{Since: since}, all[:15]},
		{"one order since", DecisionsQuery{Order: "SO-1", Since: since}, so1[:5]},
		{"unknown order", DecisionsQuery{Order: "SO-9"}, nil},
	}
	for _, c := range cases {
		for _, size := range []int{1, 3, 7, 15, 40, 100} {
			t.Run(fmt.Sprintf("%s by %d", c.name, size), func(t *testing.T) {
				q := c.q
				q.Limit = size
				var got []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > 50 {
						t.Fatalf("more than 50 pages: the cursor does not advance (%v)", got)
					}
					page, next, err := s.DecisionsPage(q, after)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > size {
						t.Fatalf("page of %d, want at most %d", len(page), size)
					}
					for _, d := range page {
						got = append(got, d.ID)
					}
					if next == "" {
						break
					}
					if next != page[len(page)-1].ID {
						t.Fatalf("next = %q, want the last id of the page %q", next, page[len(page)-1].ID)
					}
					after = next
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("pages gave %v\nwant %v", got, c.want)
				}
			})
		}
	}
}
