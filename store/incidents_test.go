package store

import (
	"errors"
	"fmt"
	"testing"
)

// TestIncidents: incident records written in a batch read back by id, in
// full and a page at a time, survive a reopen, and stay when the partition
// of one of their orders is dropped.
func TestIncidents(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	b := s.NewBatch()
	for i := range 5 {
		if err := b.PutIncident(fmt.Sprintf("inc-%d", i), fmt.Appendf(nil, `{"n":%d}`, i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if err := s.DropPartition(0, map[string]bool{"inc-1": true}, false); err != nil {
		t.Fatal(err)
	}
	v, err := s.Incident("inc-3")
	if err != nil || string(v) != `{"n":3}` {
		t.Fatalf("Incident(inc-3) = %s, %v", v, err)
	}
	if _, err := s.Incident("inc-9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Incident(inc-9): %v, want ErrNotFound", err)
	}
	var all []string
	if err := s.Incidents(func(v []byte) error { all = append(all, string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0] != `{"n":0}` || all[4] != `{"n":4}` {
		t.Fatalf("Incidents = %v, want the 5 in id order", all)
	}
	odd := func(v []byte) bool { return v[5] != '0' && v[5] != '2' && v[5] != '4' }
	page, next, err := s.IncidentsPage("", 1, odd)
	if err != nil || len(page) != 1 || string(page[0]) != `{"n":1}` || next != "inc-1" {
		t.Fatalf("first page = %s, next %q, %v", page, next, err)
	}
	page, next, err = s.IncidentsPage(next, 1, odd)
	if err != nil || len(page) != 1 || string(page[0]) != `{"n":3}` || next != "" {
		t.Fatalf("second and last page = %s, next %q, %v", page, next, err)
	}
}
