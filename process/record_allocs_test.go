package process

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// TestTimelineReadAllocationsDoNotGrowWithEntries: reading an order record
// with its timeline allocated five strings per reference (and copied the
// section twice) on every read of a record the cache did not hold; the
// references' strings are now parts of one copy of the section, so a record
// of 64 references costs the allocations of one of a single reference.
func TestTimelineReadAllocationsDoNotGrowWithEntries(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	raw := func(n int) []byte {
		rec := &orderRecord{State: features.OrderState{OrderID: "SO-1"}}
		for i := range n {
			rec.Timeline.add(uint64(i+1), &features.Event{ID: fmt.Sprintf("e-%d", i), Type: features.TypeNoteAdded,
				OccurredAt: at.Add(time.Duration(i) * time.Minute), Source: "crm", Actor: "ops-7",
				Data: features.EventData{Text: fmt.Sprintf("call the customer, try %d", i)}})
		}
		b, err := encodeRecord(nil, rec)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	allocs := func(b []byte, want int) float64 {
		tl, err := RecordTimeline(b)
		if err != nil || len(tl.Entries) != want {
			t.Fatalf("timeline of %d references (%v), want %d", len(tl.Entries), err, want)
		}
		return testing.AllocsPerRun(100, func() { _, _ = RecordTimeline(b) })
	}
	one, many := allocs(raw(1), 1), allocs(raw(64), 64)
	if many > one {
		t.Errorf("reading a record of 64 timeline references made %.0f allocations, one of 1 reference %.0f: want no more", many, one)
	}
}
