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
	var g OrderGovernance
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		g, err = readGovernance(txn, order)
		return err
	})
	if err != nil {
		return OrderGovernance{}, fmt.Errorf("store: read governance of order %s: %w", order, err)
	}
	return g, nil
}

func readGovernance(txn *badger.Txn, order string) (OrderGovernance, error) {
	var g OrderGovernance
	err := scan(txn, key(pCooldown, order, ""), func(k, v []byte) error {
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
	ids, err := suffixes(txn, key(pOrderDec, order, ""))
	if err != nil {
		return g, err
	}
	for _, id := range ids {
		f, ok, err := readInFlight(txn, id)
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
func readInFlight(txn *badger.Txn, id string) (InFlight, bool, error) {
	f := InFlight{ID: id}
	var err error
	if f.Open, err = get(txn, key(pPending, id)); err != nil && !errors.Is(err, ErrNotFound) {
		return f, false, err
	}
	err = scan(txn, key(pOutbox, id), func(k, v []byte) error {
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
	err = scan(txn, key(pTrail, id, ""), func(k, v []byte) error {
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
	for order := range orders {
		dels = appendKeys(txn, key(pCooldown, order, ""), dels)
		ids, err := suffixes(txn, key(pOrderDec, order, ""))
		if err != nil {
			return dels, err
		}
		for _, id := range ids {
			f, ok, err := readInFlight(txn, id)
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
	o := badger.DefaultIteratorOptions
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
// to be written to the group's state bucket (GovernancePending). nonce tells
// this change from a later one.
func (b *Batch) MarkGovernance(order string, nonce uint64) error {
	return b.set(key(pGovPending, order), binary.BigEndian.AppendUint64(nil, nonce))
}

// GovernancePending returns the orders whose governance changed and is not yet
// in the group's state bucket, with the nonce of their last change; at most limit.
func (s *Store) GovernancePending(limit int) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pGovPending)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			var n uint64
			err := it.Item().Value(func(v []byte) error {
				if len(v) == 8 {
					n = binary.BigEndian.Uint64(v)
				}
				return nil
			})
			if err != nil {
				return err
			}
			out[string(it.Item().Key()[len(pGovPending):])] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read pending governance: %w", err)
	}
	return out, nil
}

// ClearGovernance forgets the pending marks of orders whose governance was
// written, each unless a later change marked it again meanwhile.
func (s *Store) ClearGovernance(written map[string]uint64) error {
	if len(written) == 0 {
		return nil
	}
	for range 8 { // a conflict means a batch marked one of them meanwhile: read again
		err := s.db.Update(func(txn *badger.Txn) error {
			for order, nonce := range written {
				item, err := txn.Get(key(pGovPending, order))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var cur uint64
				if err := item.Value(func(v []byte) error {
					if len(v) == 8 {
						cur = binary.BigEndian.Uint64(v)
					}
					return nil
				}); err != nil {
					return err
				}
				if cur == nonce {
					if err := txn.Delete(key(pGovPending, order)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if !errors.Is(err, badger.ErrConflict) {
			if err != nil {
				return fmt.Errorf("store: clear pending governance: %w", err)
			}
			return nil
		}
	}
	return nil // marked again meanwhile: written at the next flush
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
