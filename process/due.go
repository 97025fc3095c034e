package process

import "time"

// Rescoring checkpoints: an open order is scored again at these offsets before its
// ship cutoff even when no event arrives, and once at the cutoff itself, where a
// still unshipped order is counted as a miss in its customer's history.
var checkpoints = []time.Duration{
	-4 * time.Hour, -2 * time.Hour, -time.Hour, -30 * time.Minute, -15 * time.Minute, -5 * time.Minute, 0,
}

// NextCheckpoint returns the order's first checkpoint of cutoff strictly after
// moment, or false when the cutoff has passed.
//
// Ship cutoffs cluster (a warehouse's orders share its 17:00), so the checkpoints
// before the cutoff are spread: each order's comes earlier by a share of up to a
// tenth of its offset (at most 24 minutes before the 4-hour one, 30 seconds
// before the 5-minute one), fixed by a hash of the order id. Thousands of orders
// are then rescored over minutes instead of in one batch that holds up the events
// behind it, and replay still gives the same moments. The checkpoint at the
// cutoff itself, where a miss is counted, is exact.
func NextCheckpoint(order string, cutoff, moment time.Time) (time.Time, bool) {
	share := spread(order)
	for _, c := range checkpoints {
		at := cutoff.Add(c + time.Duration(float64(c)*share))
		if at.After(moment) {
			return at, true
		}
	}
	return time.Time{}, false
}

// spread maps an order id to a share in [0, 0.1), the same on every run.
func spread(order string) float64 {
	h := uint32(2166136261) // FNV-1a
	for i := range len(order) {
		h ^= uint32(order[i])
		h *= 16777619
	}
	return float64(h%1000) / 10000
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

// dueHeap is a min-heap of dueEntry by time, then order.
type dueHeap = minHeap[dueEntry]

func (e dueEntry) before(o dueEntry) bool {
	if c := e.at.Compare(o.at); c != 0 {
		return c < 0
	}
	return e.order < o.order
}

func newDueIndex() *dueIndex { return &dueIndex{next: map[string]time.Time{}} }

// set schedules order at at, replacing its previous schedule.
func (d *dueIndex) set(order string, at time.Time) {
	d.next[order] = at
	d.h.push(dueEntry{at, order})
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
	for len(d.h) > 0 {
		e := d.h[0]
		if e.at.After(t) {
			return dueEntry{}, false
		}
		d.h.pop()
		if at, ok := d.next[e.order]; ok && at.Equal(e.at) {
			delete(d.next, e.order)
			return e, true
		}
	}
	return dueEntry{}, false
}

// first returns the earliest live entry at or before t without removing it;
// the replaced entries before it go.
func (d *dueIndex) first(t time.Time) (dueEntry, bool) {
	for len(d.h) > 0 {
		e := d.h[0]
		if e.at.After(t) {
			return dueEntry{}, false
		}
		if at, ok := d.next[e.order]; ok && at.Equal(e.at) {
			return e, true
		}
		d.h.pop()
	}
	return dueEntry{}, false
}

func (d *dueIndex) len() int { return len(d.next) }
