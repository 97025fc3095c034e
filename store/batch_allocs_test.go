package store

import (
	"testing"
	"time"
)

// TestStagedWritesShareAllocations: an event's marker cost its key, its
// value and a badger.Entry, an order record its key and its entry, and
// reading a marker or an order record built a key to throw away; entries now
// come from slabs of the batch, keys and small values from chunks of it
// (Batch.room), and reads reuse the batch's key buffer.
func TestStagedWritesShareAllocations(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	b := s.NewStagedBatch(s.Snapshot())
	defer b.Discard()
	ids := []string{"e-1", "e-2", "e-3"}
	i := 0
	// The staged writes' list, the slabs and the chunks grow a fraction of
	// an allocation per write, which AllocsPerRun rounds away.
	marks := testing.AllocsPerRun(200, func() {
		if err := b.MarkEvent(0, ids[i%len(ids)], uint64(i)); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if marks > 0 {
		t.Errorf("marking an event made %.0f allocations per write, want none", marks)
	}
	rec := []byte{1}
	orders := testing.AllocsPerRun(200, func() {
		if err := b.PutOrder("SO-1", rec, time.Hour); err != nil {
			t.Fatal(err)
		}
	})
	if orders > 0 {
		t.Errorf("writing an order record made %.0f allocations per write, want none", orders)
	}
	// A read of a missing key allocates in Badger; the key is not ours to add.
	read := testing.AllocsPerRun(50, func() { _, _ = b.Order("SO-2") })
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	k := []byte("o/SO-2")
	if direct := testing.AllocsPerRun(50, func() { _, _ = txn.Get(k) }); read > direct {
		t.Errorf("reading a missing order record made %.0f allocations, Badger's read alone %.0f: want no more", read, direct)
	}
}
