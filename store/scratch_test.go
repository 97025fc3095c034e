package store_test

import (
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// TestScratchSkipsWhatItsReaderNeverReads: a scratch store with SkipScores and
// SkipTimelines keeps the order and leaves out its score history and timeline;
// without them both are kept.
func TestScratchSkipsWhatItsReaderNeverReads(t *testing.T) {
	at := time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC)
	for _, skip := range []bool{false, true} {
		st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true, Scratch: true, SkipScores: skip, SkipTimelines: skip})
		if err != nil {
			t.Fatal(err)
		}
		b := st.NewBatch()
		for _, err := range []error{
			b.PutOrder("SO-1", []byte(`{"order":"SO-1"}`), 0),
			b.AppendTimeline("SO-1", at, "e-1", []byte(`{"id":"e-1"}`), 0),
			b.AppendScore("SO-1", at, []byte("score"), 0),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		v, err := st.Order("SO-1")
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if skip {
			want = 0
		}
		if len(v.Record) == 0 || len(v.Timeline) != want || len(v.Scores) != want {
			t.Errorf("skip %v: record %q, %d timeline events and %d score points, want %d of each", skip, v.Record, len(v.Timeline), len(v.Scores), want)
		}
		st.Close()
	}
}
