package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The records of the actions package. The values are opaque JSON owned by actions;
// the store keeps the keys, their order and their lifetimes (see keys.go).

// RateWindow returns the execution times (unix nanos, ascending) kept for an action
// and one warehouse, customer or carrier (scope names which).
func (b *Batch) RateWindow(action, scope, value string) ([]int64, error) {
	var out []int64
	size := 0
	err := b.value(key(pWindow, action, scope, value), func(v []byte) error {
		if size = len(v); size%8 == 0 {
			out = make([]int64, size/8)
			for i := range out {
				out[i] = int64(binary.BigEndian.Uint64(v[8*i:]))
			}
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read rate window %s %s %s: %w", action, scope, value, err)
	}
	if size%8 != 0 {
		return nil, fmt.Errorf("store: rate window %s %s %s holds %d bytes, not a multiple of 8", action, scope, value, size)
	}
	return out, nil
}

// value calls fn with the value of k, valid only during the call, or returns
// ErrNotFound. Unlike get it copies nothing.
func (b *Batch) value(k []byte, fn func(v []byte) error) error {
	item, err := b.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(fn)
}

// PutRateWindow replaces a rate-limit window; ttl lets Badger drop a window nobody
// has used for that long.
func (b *Batch) PutRateWindow(action, scope, value string, times []int64, ttl time.Duration) error {
	v := make([]byte, 0, 8*len(times))
	for _, t := range times {
		v = binary.BigEndian.AppendUint64(v, uint64(t))
	}
	return b.setEntry(withTTL(b.newEntry(key(pWindow, action, scope, value), v), ttl))
}

// LastFired returns when an action last fired for an order; zero when never (or
// longer ago than the cooldown's ttl).
func (b *Batch) LastFired(order, action string) (time.Time, error) {
	var nanos uint64
	size := 0
	err := b.value(key(pCooldown, order, action), func(v []byte) error {
		if size = len(v); size == 8 {
			nanos = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: read cooldown %s %s: %w", order, action, err)
	}
	if size != 8 {
		return time.Time{}, fmt.Errorf("store: cooldown %s %s holds %d bytes, want 8", order, action, size)
	}
	return time.Unix(0, int64(nanos)).UTC(), nil
}

// PutLastFired records that an action fired for an order at at.
func (b *Batch) PutLastFired(order, action string, at time.Time, ttl time.Duration) error {
	v := binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))
	return b.setEntry(withTTL(b.newEntry(key(pCooldown, order, action), v), ttl))
}

// AppendScore adds a score point to an order's history. It copies v: the caller
// may reuse it.
func (b *Batch) AppendScore(order string, at time.Time, v []byte, ttl time.Duration) error {
	if b.s.skip.Scores {
		return nil
	}
	// Key and value share room of the batch (Batch.room), kept until it commits.
	n := len(pScore) + len(order) + 1 + 8
	buf := b.room(n + len(v))
	buf = append(buf, pScore...)
	buf = append(buf, order...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, uint64(at.UnixNano()))
	buf = append(buf, v...)
	return b.setEntry(withTTL(b.newEntry(buf[:n:n], buf[n:]), ttl))
}

// Decision returns a decision record, or ErrNotFound.
func (b *Batch) Decision(id string) ([]byte, error) { return get(b.txn, key(pDecision, id)) }

// Open returns the open item of a decision (it waits for a person), or ErrNotFound.
// Reading it makes the batch conflict with any other batch that changes it.
func (b *Batch) Open(decision string) ([]byte, error) { return get(b.txn, key(pPending, decision)) }

// PutOpen stores the open item of a decision.
func (b *Batch) PutOpen(decision string, v []byte) error { return b.set(key(pPending, decision), v) }

// DeleteOpen closes a decision's open item.
func (b *Batch) DeleteOpen(decision string) error { return b.del(key(pPending, decision)) }

// Timer returns an escalation timer, or ErrNotFound.
func (b *Batch) Timer(due time.Time, decision string) ([]byte, error) {
	return get(b.txn, timerKey(due, decision))
}

// PutTimer sets an escalation timer for a decision at due.
func (b *Batch) PutTimer(due time.Time, decision string, v []byte) error {
	return b.set(timerKey(due, decision), v)
}

// DeleteTimer removes an escalation timer.
func (b *Batch) DeleteTimer(due time.Time, decision string) error {
	return b.del(timerKey(due, decision))
}

// AppendTrail adds a record (an approval, rejection, escalation or acknowledgement)
// to a decision's trail. kind keeps two records of the same instant apart.
func (b *Batch) AppendTrail(decision string, at time.Time, kind string, v []byte) error {
	k := binary.BigEndian.AppendUint64(key(pTrail, decision, ""), uint64(at.UnixNano()))
	return b.set(append(k, kind...), v)
}

// Enqueued reports whether an outbox entry is waiting.
func (b *Batch) Enqueued(entry string) (bool, error) {
	_, err := b.txn.Get(key(pOutbox, entry))
	return found(err)
}

func (b *Batch) del(k []byte) error {
	b.writes[k[0]&127]++
	if err := b.txn.Delete(k); err != nil {
		return fmt.Errorf("store: delete %q: %w", k[:2], err)
	}
	return nil
}

func withTTL(e *badger.Entry, ttl time.Duration) *badger.Entry {
	if ttl > 0 {
		return e.WithTTL(ttl)
	}
	return e
}

func timerKey(due time.Time, decision string) []byte {
	b := make([]byte, 0, len(pTimer)+8+len(decision))
	b = append(b, pTimer...)
	b = binary.BigEndian.AppendUint64(b, uint64(due.UnixNano()))
	return append(b, decision...)
}

// DecisionView is one decision with everything recorded beside it.
type DecisionView struct {
	ID     string
	Record []byte
	// Outcomes of the decision's deliveries by outbox entry suffix: "" is its
	// JetStream command, "~webhook" its webhook, "~esc1" an escalation command.
	Outcomes map[string][]byte
	Attempts [][]byte // every delivery attempt, by entry, then attempt number
	Trail    [][]byte // approvals, rejections, escalations, acknowledgements, by time
	Open     []byte   // the open item while the decision waits for a person, else nil
	Queued   []string // entry suffixes still in the outbox
}

// Decision reads a decision and its records, or returns ErrNotFound.
func (s *Store) Decision(id string) (DecisionView, error) {
	var v DecisionView
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = readDecision(txn, id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return DecisionView{}, ErrNotFound
	}
	if err != nil {
		return DecisionView{}, fmt.Errorf("store: read decision %s: %w", id, err)
	}
	return v, nil
}

func readDecision(txn *badger.Txn, id string) (DecisionView, error) {
	v := DecisionView{ID: id}
	var err error
	if v.Record, err = get(txn, key(pDecision, id)); err != nil {
		return v, err
	}
	err = scan(txn, []byte(pOutcome+id), func(k, val []byte) error {
		if v.Outcomes == nil {
			v.Outcomes = map[string][]byte{}
		}
		v.Outcomes[string(k)] = val
		return nil
	})
	if err != nil {
		return v, err
	}
	if err := scan(txn, []byte(pAttempt+id), func(_, val []byte) error { v.Attempts = append(v.Attempts, val); return nil }); err != nil {
		return v, err
	}
	if err := scan(txn, key(pTrail, id, ""), func(_, val []byte) error { v.Trail = append(v.Trail, val); return nil }); err != nil {
		return v, err
	}
	if err := scan(txn, []byte(pOutbox+id), func(k, _ []byte) error { v.Queued = append(v.Queued, string(k)); return nil }); err != nil {
		return v, err
	}
	if v.Open, err = get(txn, key(pPending, id)); errors.Is(err, ErrNotFound) {
		err = nil
	}
	return v, err
}

// scan calls fn with the key after prefix and the value of every key under prefix.
func scan(txn *badger.Txn, prefix []byte, fn func(k, v []byte) error) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	it := txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := fn(it.Item().Key()[len(prefix):], v); err != nil {
			return err
		}
	}
	return nil
}

// DecisionIDPrefix is how a decision id made at t begins: its time as 16 hex digits
// of unix nanoseconds, so ids sort by time.
func DecisionIDPrefix(t time.Time) string {
	var buf [24]byte
	return string(AppendDecisionIDPrefix(buf[:0], t))
}

// AppendDecisionIDPrefix appends DecisionIDPrefix(t) to b.
func AppendDecisionIDPrefix(b []byte, t time.Time) []byte {
	n := t.UnixNano()
	if n < 0 { // before 1970: as fmt's %016x writes it, sign first
		return fmt.Appendf(b, "%016x", n)
	}
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[n>>shift&0xf])
	}
	return b
}

// DecisionsQuery selects decisions: of one order (empty: all), decided at or after
// Since (zero: any time), at most Limit (zero: 100), newest first.
type DecisionsQuery struct {
	Order string
	Since time.Time
	Limit int
}

// FindDecisions returns the decisions q selects with their records, newest first.
func (s *Store) FindDecisions(q DecisionsQuery) ([]DecisionView, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	floor := ""
	if !q.Since.IsZero() {
		floor = DecisionIDPrefix(q.Since)
	}
	var out []DecisionView
	err := s.db.View(func(txn *badger.Txn) error {
		if q.Order != "" {
			ids, err := suffixes(txn, key(pOrderDec, q.Order, ""))
			if err != nil {
				return err
			}
			for i := len(ids) - 1; i >= 0 && len(out) < q.Limit && ids[i] >= floor; i-- {
				d, err := readDecision(txn, ids[i])
				if err != nil {
					return fmt.Errorf("decision %s: %w", ids[i], err)
				}
				out = append(out, d)
			}
			return nil
		}
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte(pDecision)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek([]byte(pDecision + "\xff")); it.Valid() && len(out) < q.Limit; it.Next() {
			id := string(it.Item().Key()[len(pDecision):])
			if id < floor {
				break
			}
			d, err := readDecision(txn, id)
			if err != nil {
				return fmt.Errorf("decision %s: %w", id, err)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: find decisions: %w", err)
	}
	return out, nil
}

// OpenItem is a decision waiting for a person.
type OpenItem struct {
	Decision string
	Value    []byte
}

// OpenItems returns every open item, in decision id (time) order.
func (s *Store) OpenItems() ([]OpenItem, error) {
	var out []OpenItem
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, []byte(pPending), func(k, v []byte) error {
			out = append(out, OpenItem{Decision: string(k), Value: v})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read open items: %w", err)
	}
	return out, nil
}

// Timer is an escalation timer.
type Timer struct {
	Due      time.Time
	Decision string
	Value    []byte
}

// DueTimers returns up to limit escalation timers due at or before t, earliest first.
func (s *Store) DueTimers(t time.Time, limit int) ([]Timer, error) {
	var out []Timer
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pTimer)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			k := it.Item().Key()[len(pTimer):]
			if len(k) < 8 {
				return fmt.Errorf("malformed timer key %q", k)
			}
			due := time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC()
			if due.After(t) {
				break
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, Timer{Due: due, Decision: string(k[8:]), Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read escalation timers: %w", err)
	}
	return out, nil
}

// Attempts returns how many attempts of an outbox entry are recorded.
func (s *Store) Attempts(entry string) (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = key(pAttempt, entry, "")
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: count attempts of %s: %w", entry, err)
	}
	return n, nil
}

// FirstAttempt returns the first recorded attempt of an outbox entry (the one
// with the lowest number), or nil when none is recorded. While the entry waits
// in the outbox every recorded attempt is a failed one: its time is when the
// entry started waiting for its failing target, across restarts.
func (s *Store) FirstAttempt(entry string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = key(pAttempt, entry, "")
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		it.Rewind()
		if !it.Valid() {
			return nil
		}
		var err error
		v, err = it.Item().ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read first attempt of %s: %w", entry, err)
	}
	return v, nil
}

// RecordAttempt appends attempt n of an outbox entry that did not finish it.
func (s *Store) RecordAttempt(entry string, n int, attempt []byte) error {
	if err := s.Writable(); err != nil {
		return fmt.Errorf("store: record attempt %d of %s: %w", n, entry, err)
	}
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(attemptKey(entry, n), attempt) })
	if err != nil {
		return fmt.Errorf("store: record attempt %d of %s: %w", n, entry, err)
	}
	return nil
}

// FinishOutbox records the last attempt n of an outbox entry and its final outcome,
// and removes it from the outbox, in one synced commit. counter is the durable
// counter the outcome adds one to (CounterActionsPublished,
// CounterActionsDeduplicated), or "" for none. Safe to call from several
// goroutines for different entries: a commit that conflicts on the shared counter
// is tried again. It returns ErrNotFound when the entry is no longer in the
// outbox: it was finished already.
func (s *Store) FinishOutbox(entry string, n int, attempt, outcome []byte, counter string) error {
	if err := s.Writable(); err != nil {
		return fmt.Errorf("store: finish outbox entry %s: %w", entry, err)
	}
	var err error
	for range 32 { // bounded: each retry means another entry's commit went through
		err = s.db.Update(func(txn *badger.Txn) error {
			if _, err := get(txn, key(pOutbox, entry)); err != nil {
				return fmt.Errorf("outbox entry: %w", err)
			}
			if err := txn.Set(attemptKey(entry, n), attempt); err != nil {
				return err
			}
			return completeOutbox(txn, entry, outcome, counter)
		})
		if !errors.Is(err, badger.ErrConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("store: finish outbox entry %s: %w", entry, err)
	}
	return nil
}

func attemptKey(entry string, n int) []byte {
	return binary.BigEndian.AppendUint32(key(pAttempt, entry, ""), uint32(n))
}

// Setting reads a governance setting; nil when never set.
func (s *Store) Setting(name string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if v, err = get(txn, key(pSetting, name)); errors.Is(err, ErrNotFound) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read setting %s: %w", name, err)
	}
	return v, nil
}

// PutSetting stores a governance setting in its own synced commit.
func (s *Store) PutSetting(name string, v []byte) error {
	if err := s.Writable(); err != nil {
		return fmt.Errorf("store: write setting %s: %w", name, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(pSetting, name), v) }); err != nil {
		return fmt.Errorf("store: write setting %s: %w", name, err)
	}
	return nil
}

// Counters returns the durable counters whose names start with prefix, by the rest
// of their name.
func (s *Store) Counters(prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(txn, key(pCounter, prefix), func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("counter %s%s holds %d bytes, want 8", prefix, k, len(v))
			}
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read counters %s*: %w", prefix, err)
	}
	return out, nil
}

// Scores returns an order's score points, by time.
func (s *Store) Scores(order string) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		out, err = values(txn, key(pScore, order, ""), 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read scores of %s: %w", order, err)
	}
	return out, nil
}

// EntrySuffix returns the part of an outbox entry id after its decision id, and the
// decision id.
func EntrySuffix(entry string) (decision, suffix string) {
	if i := strings.IndexByte(entry, '~'); i >= 0 {
		return entry[:i], entry[i:]
	}
	return entry, ""
}

// OutboxPage returns up to limit outbox entries whose ids sort after the id after
// (from the first when empty), in id order: decisions' deliveries oldest first.
// OutboxEntry.DecisionID holds the entry id.
func (s *Store) OutboxPage(after string, limit int) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pOutbox)
		it := txn.NewIterator(o)
		defer it.Close()
		seek := []byte(pOutbox)
		if after != "" {
			seek = append(key(pOutbox, after), 0) // the least key after it
		}
		for it.Seek(seek); it.Valid() && len(out) < limit; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, OutboxEntry{DecisionID: string(it.Item().Key()[len(pOutbox):]), Command: v})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read outbox: %w", err)
	}
	return out, nil
}
