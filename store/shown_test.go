package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestShownDecisions: for each order, in one read, the latest of its within
// latest decisions that waits for a person, else its latest, with its record,
// open item, trail and command outcome as Decision reads them; nothing for an
// order without decisions; a decision whose record is missing fails its order
// alone.
func TestShownDecisions(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	id := func(order string, i int) string {
		return fmt.Sprintf("%s-%s-%02d", DecisionIDPrefix(t0.Add(time.Duration(i)*time.Minute)), order, i)
	}
	b := s.NewBatch()
	put := func(order string, n int) {
		for i := range n {
			if err := b.PutDecision(id(order, i), order, fmt.Appendf(nil, `{"id":%q}`, id(order, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// SO-1: three decisions, the middle one waits, with a trail; the latest
	// has an outcome. SO-10 (SO-1's prefix): ten, the 9th latest waits, beyond
	// the 8 looked through. SO-2: one, answered. SO-4: one, its record lost.
	put("SO-1", 3)
	put("SO-10", 10)
	put("SO-2", 1)
	must(b.PutOpen(id("SO-1", 1), []byte(`{"kind":"approval"}`)))
	must(b.AppendTrail(id("SO-1", 1), t0.Add(time.Hour), "escalated", []byte(`{"kind":"escalated"}`)))
	must(b.AppendTrail(id("SO-1", 1), t0.Add(2*time.Hour), "escalated", []byte(`{"kind":"escalated","tier":2}`)))
	must(b.PutOpen(id("SO-10", 1), []byte(`{"kind":"ack"}`)))
	must(b.AppendTrail(id("SO-2", 0), t0.Add(time.Hour), "approved", []byte(`{"kind":"approved"}`)))
	must(b.PutDecision(id("SO-4", 0), "SO-4", []byte(`{}`)))
	must(b.Commit())
	b = s.NewBatch()
	must(b.set(key(pOutcome, id("SO-1", 2)), []byte(`{"ok":true}`)))
	must(b.set(key(pOutcome, id("SO-1", 2)+"~webhook"), []byte(`{"ok":false}`)))
	must(b.del(key(pDecision, id("SO-4", 0))))
	must(b.Commit())

	orders := []string{"SO-1", "SO-3", "SO-10", "SO-4", "SO-2", "SO-1"}
	views, errs, err := s.ShownDecisions(orders, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{id("SO-1", 1), "", id("SO-10", 9), id("SO-4", 0), id("SO-2", 0), id("SO-1", 1)}
	for i, order := range orders {
		v := views[i]
		if v.ID != want[i] {
			t.Errorf("%s: decision %q, want %q", order, v.ID, want[i])
			continue
		}
		if order == "SO-4" {
			if !errors.Is(errs[i], ErrNotFound) {
				t.Errorf("%s, its record lost: error %v, want ErrNotFound", order, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s: %v", order, errs[i])
		}
		if v.ID == "" {
			continue
		}
		full, err := s.Decision(v.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.Record, full.Record) || !bytes.Equal(v.Open, full.Open) ||
			!slices.EqualFunc(v.Trail, full.Trail, bytes.Equal) || !bytes.Equal(v.Outcomes[""], full.Outcomes[""]) {
			t.Errorf("%s: shown %+v\nDecision reads %+v", order, v, full)
		}
	}
	if len(views[0].Trail) != 2 || views[0].Open == nil {
		t.Errorf("SO-1's waiting decision: trail %q, open %q", views[0].Trail, views[0].Open)
	}
	// The latest decision of SO-1, not waiting, with its outcome.
	views, _, err = s.ShownDecisions([]string{"SO-1"}, 1)
	if err != nil || views[0].ID != id("SO-1", 2) || string(views[0].Outcomes[""]) != `{"ok":true}` {
		t.Errorf("SO-1 looking at its latest alone: %+v, %v", views, err)
	}
}

// TestShownDecisionsOfALongList: a list longer than a run is read in runs,
// each order's view at its place.
func TestShownDecisionsOfALongList(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	var orders []string
	for i := range 3*shownRun + 7 {
		order := fmt.Sprintf("SO-%04d", i)
		orders = append(orders, order)
		if i%5 == 0 {
			continue // no decision
		}
		if err := b.PutDecision("d-"+order, order, []byte(order)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(orders)
	views, errs, err := s.ShownDecisions(orders, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i, order := range orders {
		want := "d-" + order
		var n int
		if _, err := fmt.Sscanf(order, "SO-%d", &n); err != nil || n%5 == 0 {
			want = ""
		}
		if views[i].ID != want || errs[i] != nil || (want != "" && string(views[i].Record) != order) {
			t.Errorf("%s: %q %q %v, want %q", order, views[i].ID, views[i].Record, errs[i], want)
		}
	}
}
