package sim

// item is one future happening of the simulation: what (kind), for whom (ref: an
// order slot, a warehouse, a carrier or a pickup, depending on kind) and an argument.
type item struct {
	at   int64  // sim time, ms
	seq  uint64 // insertion order: ties in time resolve deterministically
	ref  int32
	arg  int32
	kind uint8
	aux  int32 // a second argument of some kinds; it fits in the padding
}

// eventQueue is the simulation's clock: a binary min-heap of items by time, then
// insertion order. It holds a few items per open order and a fixed number for the
// network, so its size follows the open orders. Hand-written over a slice of
// values: no interface calls, no allocation once grown.
type eventQueue struct {
	items []item
	seq   uint64
}

func (q *eventQueue) len() int { return len(q.items) }

func (q *eventQueue) push(at int64, kind uint8, ref, arg int32) { q.pushAux(at, kind, ref, arg, 0) }

func (q *eventQueue) pushAux(at int64, kind uint8, ref, arg, aux int32) {
	q.seq++
	q.items = append(q.items, item{at: at, seq: q.seq, ref: ref, arg: arg, kind: kind, aux: aux})
	h := q.items
	i := len(h) - 1
	x := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !before(&x, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
}

// pop removes and returns the earliest item; the queue must not be empty.
func (q *eventQueue) pop() item {
	h := q.items
	top := h[0]
	n := len(h) - 1
	x := h[n]
	q.items = h[:n]
	h = h[:n]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && before(&h[r], &h[c]) {
			c = r
		}
		if !before(&h[c], &x) {
			break
		}
		h[i] = h[c]
		i = c
	}
	if n > 0 {
		h[i] = x
	}
	return top
}

func (q *eventQueue) peek() *item { return &q.items[0] }

func before(a, b *item) bool { return a.at < b.at || a.at == b.at && a.seq < b.seq }

// pickQueue is a warehouse's queue of released orders waiting for a picker: a
// min-heap by priority key (earliest ship cutoff first, pulled forward for next-day
// service and platinum customers). Entries of orders that left the queue otherwise
// (cancelled, moved to another warehouse) stay until popped and are skipped: tok
// must match the order's.
type pickQueue struct{ h []pickEntry }

type pickEntry struct {
	key int64
	ref int32
	tok uint32
}

func (q *pickQueue) push(e pickEntry) {
	q.h = append(q.h, e)
	h := q.h
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !pickBefore(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *pickQueue) pop() pickEntry {
	h := q.h
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	q.h = h
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && pickBefore(&h[r], &h[c]) {
			c = r
		}
		if !pickBefore(&h[c], &h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top
}

func pickBefore(a, b *pickEntry) bool { return a.key < b.key || a.key == b.key && a.ref < b.ref }
