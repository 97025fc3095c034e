package process

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDueHeapOrdersWithoutBoxing: the rescoring index pops its entries by time,
// then order, and a push or pop on a heap with room allocates nothing (with
// container/heap each Push and Pop boxed the entry).
func TestDueHeapOrdersWithoutBoxing(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(1, 2))
	var h dueHeap
	var want []dueEntry
	for i := range 500 {
		e := dueEntry{t0.Add(time.Duration(r.IntN(50)) * time.Minute), fmt.Sprintf("SO-%03d", i%97)}
		h.push(e)
		want = append(want, e)
	}
	slices.SortFunc(want, func(a, b dueEntry) int {
		if a.before(b) {
			return -1
		}
		if b.before(a) {
			return 1
		}
		return 0
	})
	var got []dueEntry
	for len(h) > 0 {
		e, _ := h.peek()
		got = append(got, e)
		h.pop()
	}
	if !slices.Equal(got, want) {
		t.Fatalf("popped out of order:\n got %v\nwant %v", got[:10], want[:10])
	}
	if _, ok := h.peek(); ok {
		t.Error("peek on an empty heap reported an entry")
	}

	h = make(dueHeap, 0, 16)
	e := dueEntry{t0, "SO-1"}
	if n := testing.AllocsPerRun(100, func() { h.push(e); h.pop() }); n != 0 {
		t.Errorf("a push and a pop allocated %.0f times, want 0", n)
	}
}
