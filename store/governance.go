package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The governance of an order that its events cannot rebuild, as it moves from
// one member of a group to another with the order's partition: its cooldowns
// and its decisions in flight. A decision is in flight while it has an open item
// (it waits for a person) or an outbox entry (a delivery not yet made); the
// decisions of the past stay with the member that made them.

// InFlight is one decision in flight with what is recorded beside it.
type InFlight struct {
	ID     string
	Record []byte       // d/<id>
	Open   []byte       // p/<id>, nil when it waits for nobody
	Trail  []TrailEntry // h/<id>…, by time
	Outbox []Queued     // q/<id>…, by entry
}

// TrailEntry is one record of a decision's trail.
type TrailEntry struct {
	At    int64  `json:"at"` // unix nanos
	Kind  string `json:"kind"`
	Value []byte `json:"value"`
}

// Queued is an outbox entry and its job.
type Queued struct {
	Entry string `json:"entry"`
	Job   []byte `json:"job"`
}

// OrderGovernance is what Governance reads of one order.
type OrderGovernance struct {
	Cooldowns map[string]time.Time // last firing by action
	InFlight  []InFlight
}

// Governance reads an order's cooldowns and decisions in flight.
func (s *Store) Governance(order string) (OrderGovernance, error) {
	all, err := s.Governances([]string{order})
	return all[order], err
}

// Governances reads the cooldowns and decisions in flight of several orders in
// one read transaction, with one iterator for all of them.
func (s *Store) Governances(orders []string) (map[string]OrderGovernance, error) {
	out := make(map[string]OrderGovernance, len(orders))
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for _, order := range orders {
			g, err := readGovernance(txn, it, order)
			if err != nil {
				return fmt.Errorf("order %s: %w", order, err)
			}
			out[order] = g
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read governance: %w", err)
	}
	return out, nil
}

// each calls fn with the key after prefix and the value of every key under
// prefix, seeking it.
func each(it *badger.Iterator, prefix []byte, fn func(k, v []byte) error) error {
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
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

func readGovernance(txn *badger.Txn, it *badger.Iterator, order string) (OrderGovernance, error) {
	var g OrderGovernance
	err := each(it, key(pCooldown, order, ""), func(k, v []byte) error {
		if len(v) == 8 {
			if g.Cooldowns == nil {
				g.Cooldowns = map[string]time.Time{}
			}
			g.Cooldowns[string(k)] = time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()
		}
		return nil
	})
	if err != nil {
		return g, err
	}
	var ids []string
	err = each(it, key(pOrderDec, order, ""), func(k, _ []byte) error {
		ids = append(ids, string(k))
		return nil
	})
	if err != nil {
		return g, err
	}
	for _, id := range ids {
		f, ok, err := readInFlight(txn, it, id)
		if err != nil {
			return g, err
		}
		if ok {
			g.InFlight = append(g.InFlight, f)
		}
	}
	return g, nil
}

// readInFlight reads a decision when it is in flight.
func readInFlight(txn *badger.Txn, it *badger.Iterator, id string) (InFlight, bool, error) {
	f := InFlight{ID: id}
	var err error
	if f.Open, err = get(txn, key(pPending, id)); err != nil && !errors.Is(err, ErrNotFound) {
		return f, false, err
	}
	err = each(it, key(pOutbox, id), func(k, v []byte) error {
		f.Outbox = append(f.Outbox, Queued{Entry: id + string(k), Job: v})
		return nil
	})
	if err != nil || (f.Open == nil && len(f.Outbox) == 0) {
		return f, false, err
	}
	if f.Record, err = get(txn, key(pDecision, id)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return f, false, nil // an index left by an expired record
		}
		return f, false, err
	}
	err = each(it, key(pTrail, id, ""), func(k, v []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("malformed trail key of decision %s", id)
		}
		f.Trail = append(f.Trail, TrailEntry{At: int64(binary.BigEndian.Uint64(k)), Kind: string(k[8:]), Value: v})
		return nil
	})
	return f, true, err
}

// PutInFlight writes a decision in flight that comes from another member: its
// record (indexed under order), open item, trail and outbox entries, replacing
// what this store holds of them. Its escalation timer is the caller's (PutTimer).
func (b *Batch) PutInFlight(order string, f *InFlight) error {
	if err := b.PutDecision(f.ID, order, f.Record); err != nil {
		return err
	}
	if f.Open != nil {
		if err := b.PutOpen(f.ID, f.Open); err != nil {
			return err
		}
	}
	for _, t := range f.Trail {
		if err := b.AppendTrail(f.ID, time.Unix(0, t.At), t.Kind, t.Value); err != nil {
			return err
		}
	}
	for _, q := range f.Outbox {
		if err := b.set(key(pOutbox, q.Entry), q.Job); err != nil {
			return err
		}
	}
	return nil
}

// dropGovernance adds to dels the keys of the orders' governance that goes with
// them to their next owner: cooldowns, and their decisions in flight with their
// open items, timers, trails and outbox entries.
func dropGovernance(txn *badger.Txn, orders map[string]bool, dels [][]byte) ([][]byte, error) {
	moved := map[string]bool{}
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	seek := txn.NewIterator(o)
	defer seek.Close()
	for order := range orders {
		dels = appendKeys(txn, key(pCooldown, order, ""), dels)
		ids, err := suffixes(txn, key(pOrderDec, order, ""))
		if err != nil {
			return dels, err
		}
		for _, id := range ids {
			f, ok, err := readInFlight(txn, seek, id)
			if err != nil {
				return dels, err
			}
			if !ok {
				continue
			}
			moved[id] = true
			dels = append(dels, key(pDecision, id), key(pOrderDec, order, id), key(pPending, id))
			dels = appendKeys(txn, key(pTrail, id, ""), dels)
			for _, q := range f.Outbox {
				dels = append(dels, key(pOutbox, q.Entry))
			}
		}
	}
	if len(moved) == 0 {
		return dels, nil
	}
	o = badger.DefaultIteratorOptions
	o.Prefix = []byte(pTimer)
	o.PrefetchValues = false
	it := txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) >= len(pTimer)+8 && moved[string(k[len(pTimer)+8:])] {
			dels = append(dels, it.Item().KeyCopy(nil))
		}
	}
	return dels, nil
}

// appendKeys appends a copy of every key under prefix.
func appendKeys(txn *badger.Txn, prefix []byte, dels [][]byte) [][]byte {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.PrefetchValues = false
	it := txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		dels = append(dels, it.Item().KeyCopy(nil))
	}
	return dels
}

// MarkGovernance records in the batch that an order's governance changed and is
// to be written to the group's state bucket (GovernancePending). Each change is
// a key of its own, j/<order>\x00<nonce>, so that clearing what was written
// never conflicts with a change made meanwhile (which stays marked).
func (b *Batch) MarkGovernance(order string, nonce uint64) error {
	return b.set(govMarkKey(order, nonce), nil)
}

func govMarkKey(order string, nonce uint64) []byte {
	return binary.BigEndian.AppendUint64(key(pGovPending, order, ""), nonce)
}

// govMarkOrder is the order of a mark's key (without its prefix), or false.
func govMarkOrder(k []byte) (string, bool) {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return "", false
	}
	return string(k[:len(k)-9]), true
}

// GovernanceMarks are the pending marks of orders, by order: the keys to clear
// once the orders' governance is written.
type GovernanceMarks map[string][][]byte

// GovernancePending returns the marks of up to limit orders whose governance
// changed and is not yet in the group's state bucket.
func (s *Store) GovernancePending(limit int) (GovernanceMarks, error) {
	out := GovernanceMarks{}
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pGovPending)
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			order, ok := govMarkOrder(k[len(pGovPending):])
			if !ok {
				continue
			}
			if _, seen := out[order]; !seen && len(out) >= limit {
				break
			}
			out[order] = append(out[order], it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read pending governance: %w", err)
	}
	return out, nil
}

// GovernancePendingOf returns the marks of the given orders.
func (s *Store) GovernancePendingOf(orders []string) (GovernanceMarks, error) {
	out := GovernanceMarks{}
	err := s.db.View(func(txn *badger.Txn) error {
		for _, order := range orders {
			if _, done := out[order]; done {
				continue
			}
			keys := appendKeys(txn, key(pGovPending, order, ""), nil)
			out[order] = keys
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read pending governance: %w", err)
	}
	return out, nil
}

// ClearGovernance deletes marks whose orders' governance was written. Blind
// deletes: a change marked meanwhile has a key of its own and stays.
func (s *Store) ClearGovernance(marks [][]byte) error {
	if len(marks) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range marks {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("store: clear pending governance: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: clear pending governance: %w", err)
	}
	return nil
}

// OrderRecord returns an order's record, or ErrNotFound.
func (s *Store) OrderRecord(id string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = get(txn, key(pOrder, id))
		return err
	})
	return v, err
}
