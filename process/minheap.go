package process

// minHeap is a binary min-heap of entries that order themselves (before). Its
// push and pop are written out rather than container/heap's, so that an entry
// is not boxed into an interface on the way in and out: the rescoring and
// deadline timers push and pop on the per-event path.
type minHeap[T interface{ before(T) bool }] []T

// push adds e.
func (h *minHeap[T]) push(e T) {
	*h = append(*h, e)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].before(q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

// pop removes the first entry; the heap must not be empty.
func (h *minHeap[T]) pop() {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	var zero T
	q[n] = zero // let go of what the entry refers to
	q = q[:n]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && q[l].before(q[least]) {
			least = l
		}
		if r < n && q[r].before(q[least]) {
			least = r
		}
		if least == i {
			break
		}
		q[i], q[least] = q[least], q[i]
		i = least
	}
	*h = q
}

// peek returns the first entry without removing it.
func (h minHeap[T]) peek() (T, bool) {
	if len(h) == 0 {
		var zero T
		return zero, false
	}
	return h[0], true
}
