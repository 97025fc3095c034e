package pipeline

import (
	"container/heap"
	"time"
)

// Rescoring checkpoints: an open order is scored again at these offsets before its
// ship cutoff even when no event arrives, and once at the cutoff itself, where a
// still unshipped order is counted as a miss in its customer's history.
var checkpoints = []time.Duration{
	-4 * time.Hour, -2 * time.Hour, -time.Hour, -30 * time.Minute, -15 * time.Minute, -5 * time.Minute, 0,
}

// nextCheckpoint returns the first checkpoint of cutoff strictly after moment, or
// false when the cutoff has passed.
func nextCheckpoint(cutoff, moment time.Time) (time.Time, bool) {
	for _, c := range checkpoints {
		if at := cutoff.Add(c); at.After(moment) {
			return at, true
		}
	}
	return time.Time{}, false
}

// dueIndex mirrors the due-time index of the store in memory: the next rescoring
// time of each open order, earliest first. Entries replaced by a later schedule
// stay in the heap and are skipped when popped.
type dueIndex struct {
	next map[string]time.Time
	h    dueHeap
}

type dueEntry struct {
	at    time.Time
	order string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	return h[i].order < h[j].order
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newDueIndex() *dueIndex { return &dueIndex{next: map[string]time.Time{}} }

// set schedules order at at, replacing its previous schedule.
func (d *dueIndex) set(order string, at time.Time) {
	d.next[order] = at
	heap.Push(&d.h, dueEntry{at, order})
}

// remove forgets the order's schedule.
func (d *dueIndex) remove(order string) { delete(d.next, order) }

// get returns the order's scheduled time.
func (d *dueIndex) get(order string) (time.Time, bool) {
	at, ok := d.next[order]
	return at, ok
}

// popDue removes and returns the earliest live entry at or before t.
func (d *dueIndex) popDue(t time.Time) (dueEntry, bool) {
	for d.h.Len() > 0 {
		e := d.h[0]
		if e.at.After(t) {
			return dueEntry{}, false
		}
		heap.Pop(&d.h)
		if at, ok := d.next[e.order]; ok && at.Equal(e.at) {
			delete(d.next, e.order)
			return e, true
		}
	}
	return dueEntry{}, false
}

func (d *dueIndex) len() int { return len(d.next) }
