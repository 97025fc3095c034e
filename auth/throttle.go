package auth

import (
	"sync"
	"time"
)

// Throttle slows down failed sign-ins: after FreeFailures failures of a key (a
// name, a client address) in a row, each further attempt of that key waits
// twice as long as the last, from a second up to MaxWait; a success forgets the
// key's failures, and so do 15 idle minutes. It keeps at most MaxKeys keys: when
// full, it drops keys that hold nothing back, and one that does only when all
// do (makeRoom). Safe for
// concurrent use; never blocks (a throttled attempt is refused, not delayed).
type Throttle struct {
	clock func() time.Time
	// mu guards keys.
	mu   sync.Mutex
	keys map[string]*failures
}

// Bounds of a Throttle.
const (
	FreeFailures = 3
	MaxWait      = 5 * time.Minute
	MaxKeys      = 10000
	forgetAfter  = 15 * time.Minute
	// lowWater is what makeRoom drops the keys still within their free
	// failures down to.
	lowWater = MaxKeys - MaxKeys/10
)

type failures struct {
	n     int
	until time.Time // no attempt before
	last  time.Time
}

// NewThrottle returns an empty throttle on clock (nil means time.Now).
func NewThrottle(clock func() time.Time) *Throttle {
	if clock == nil {
		clock = time.Now
	}
	return &Throttle{clock: clock, keys: map[string]*failures{}}
}

// Wait returns how long the keys must still wait before an attempt, 0 when
// they may try now.
func (t *Throttle) Wait(keys ...string) time.Duration {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if f, ok := t.keys[k]; ok && f.until.After(now) {
			wait = max(wait, f.until.Sub(now))
		}
	}
	return wait
}

// Failed counts a failed attempt of each key and returns the most failures in a
// row among them.
func (t *Throttle) Failed(keys ...string) int {
	now := t.clock()
	t.mu.Lock()
	defer t.mu.Unlock()
	most := 0
	for _, k := range keys {
		f, ok := t.keys[k]
		if ok && now.Sub(f.last) > forgetAfter {
			f.n = 0
		}
		if !ok {
			t.makeRoom(now)
			f = &failures{}
			t.keys[k] = f
		}
		f.n++
		f.last = now
		if f.n >= FreeFailures {
			f.until = now.Add(min(MaxWait, time.Second<<min(f.n-FreeFailures, 16)))
		}
		most = max(most, f.n)
	}
	return most
}

// Succeeded forgets the keys' failures.
func (t *Throttle) Succeeded(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.keys, k)
	}
}

// Failures returns a key's failures in a row (for tests and the log).
func (t *Throttle) Failures(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.keys[key]; ok {
		return f.n
	}
	return 0
}

// Len is how many keys the throttle holds.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

// makeRoom drops keys when the map is full. First those that hold nothing
// back and would not the next time (fewer than FreeFailures failures, or
// forgotten after 15 idle minutes: a flood of new names and addresses is made
// of them), down to lowWater, so that the scan is paid once per MaxKeys/10 new
// keys, not at each; only when every key is past its free failures is one of
// those dropped (map order is random, so an attacker cannot choose which). A
// held-back key (or one whose waits are doubling) is thus dropped only by
// MaxKeys such keys, each of which cost FreeFailures password checks, never by
// a flood of single failures.
func (t *Throttle) makeRoom(now time.Time) {
	if len(t.keys) < MaxKeys {
		return
	}
	for k, f := range t.keys {
		if len(t.keys) <= lowWater {
			return
		}
		if f.n < FreeFailures || now.Sub(f.last) > forgetAfter {
			delete(t.keys, k)
		}
	}
	for k := range t.keys {
		if len(t.keys) < MaxKeys {
			return
		}
		delete(t.keys, k)
	}
}
