package store

import (
	"bytes"
	"fmt"
	"testing"
)

// TestPagesBoundWhatTheyRead: a filter that matches few records reads at most
// the scan bound per page and answers a short page with the position read so
// far; following the pages finds every match once, and a filter matching
// nothing still ends.
func TestPagesBoundWhatTheyRead(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	for i := range 30 {
		v := "other"
		if i%4 == 0 {
			v = "match"
		}
		if err := b.PutException(fmt.Sprintf("SO-%02d", i), "d/1", []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		want     string
		matches  int
		minPages int
	}{{"match", 8, 5}, {"none", 0, 5}} {
		reads := 0
		match := func(v []byte) bool { reads++; return bytes.Equal(v, []byte(tc.want)) }
		got, pages := 0, 0
		for after := ""; ; pages++ {
			if pages > 40 {
				t.Fatalf("%s: still paging after 40 pages", tc.want)
			}
			before := reads
			page, next, err := s.recordsPage(pException, "exceptions", after, 3, 7, match)
			if err != nil {
				t.Fatal(err)
			}
			if reads-before > 7 {
				t.Errorf("%s: a page read %d records, bound 7", tc.want, reads-before)
			}
			got += len(page)
			if next == "" {
				break
			}
			if next <= after {
				t.Fatalf("%s: next %q does not move past %q", tc.want, next, after)
			}
			after = next
		}
		if got != tc.matches || pages+1 < tc.minPages {
			t.Errorf("%s: %d matches in %d pages, want %d in %d or more", tc.want, got, pages+1, tc.matches, tc.minPages)
		}
	}
}
