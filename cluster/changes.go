package cluster

import "sync"

// Change reports that this member started or stopped owning a partition.
// Changes of one partition arrive in the order they happened.
type Change struct {
	Partition int
	// Owned is true when the member took the lease and now owns the partition,
	// false when it stopped owning it (lost, or giving it up).
	Owned bool
	// Epoch is the epoch taken (Owned) or held (lost or released).
	Epoch uint64
	// Resume, when Owned, is true when the lease's previous holder (or the member
	// that released it) was this member at epoch PrevEpoch: nobody else held the
	// partition since, so this member's local state of it may still be current.
	Resume bool
	// PrevEpoch is the epoch of the lease record this member replaced (0 if the
	// key was absent). Only set when Owned.
	PrevEpoch uint64
	// Previous is the member that held or released the lease before ("" if none).
	// Only set when Owned.
	Previous string
	// Reason says why: when Owned, "free" (no record), "released" (released
	// gracefully), "expired" (its holder stopped renewing) or "own" (the record
	// still named this member: expired, e.g. after a crash and restart, or the
	// very record this process let run out); when not, "lost-expired"
	// (not renewed in time), "lost-taken" (another member holds it), "rebalance"
	// (given up for a fair share) or "shutdown" (Run is stopping).
	Reason string
}

// Reasons of a Change.
const (
	ReasonFree        = "free"
	ReasonReleased    = "released"
	ReasonExpired     = "expired"
	ReasonOwn         = "own"
	ReasonLostExpired = "lost-expired"
	ReasonLostTaken   = "lost-taken"
	ReasonRebalance   = "rebalance"
	ReasonShutdown    = "shutdown"
)

// changeQueue delivers Changes to a buffered channel through an unbounded FIFO,
// so that Run never waits for its reader: push never blocks, pump moves the
// queue to the channel as the reader takes them.
type changeQueue struct {
	out   chan Change
	ready chan struct{} // capacity 1: pump has something to look at

	mu    sync.Mutex
	items []Change
}

func newChangeQueue(capacity int) *changeQueue {
	return &changeQueue{out: make(chan Change, capacity), ready: make(chan struct{}, 1)}
}

// push queues c; it never blocks.
func (q *changeQueue) push(c Change) {
	q.mu.Lock()
	q.items = append(q.items, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pump moves queued changes to out until stop is closed. Only pump removes
// items, so the head it reads stays the head until it sent it.
func (q *changeQueue) pump(stop <-chan struct{}) {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-q.ready:
				continue
			case <-stop:
				return
			}
		}
		c := q.items[0]
		q.mu.Unlock()
		select {
		case q.out <- c:
			q.mu.Lock()
			q.items[0] = Change{}
			q.items = q.items[1:]
			q.mu.Unlock()
		case <-stop:
			return
		}
	}
}

// close moves what still fits into out, closes out and returns how many changes
// did not fit (the reader stopped reading). Call it after pump returned.
func (q *changeQueue) close() (dropped int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) > 0 {
		select {
		case q.out <- q.items[0]:
			q.items = q.items[1:]
			continue
		default:
		}
		break
	}
	dropped = len(q.items)
	q.items = nil
	close(q.out)
	return dropped
}
