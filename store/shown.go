package store

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// ShownDecisions reads the decision a row of a list of orders shows for each
// of orders: among the order's within latest decisions the latest waiting for
// a person (with an open item), else the latest. Each view holds what the
// decision's state needs: its record, open item, trail and the outcome of its
// command (Outcomes[""]); not its attempts, the outcomes of its other
// deliveries or its queued entries (Decision reads those). views[i] is
// orders[i]'s, its ID "" when the order has no decision; errs[i] says why
// orders[i]'s could not be read, the others are read all the same. err is a
// failure of the whole read.
//
// Two iterators serve a run of orders, each seeking to the order's or
// decision's keys, in one read transaction: a page of 500 rows costs a few
// iterators rather than a thousand transactions. A long list is read in up to
// GOMAXPROCS runs at once, each in a transaction of its own (as the rows of a
// list were read, each in its own, before).
func (s *Store) ShownDecisions(orders []string, within int) (views []DecisionView, errs []error, err error) {
	if within <= 0 {
		within = 1
	}
	views, errs = make([]DecisionView, len(orders)), make([]error, len(orders))
	runs := min(runtime.GOMAXPROCS(0), (len(orders)+shownRun-1)/shownRun)
	if runs <= 1 {
		err = s.readShown(orders, within, views, errs)
	} else {
		per := (len(orders) + runs - 1) / runs
		failed := make([]error, runs)
		var wg sync.WaitGroup
		for r := range runs {
			lo, hi := r*per, min(len(orders), (r+1)*per)
			wg.Go(func() { failed[r] = s.readShown(orders[lo:hi], within, views[lo:hi], errs[lo:hi]) })
		}
		wg.Wait()
		err = errors.Join(failed...)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: read the decisions of %d orders: %w", len(orders), err)
	}
	return views, errs, nil
}

// shownRun is the fewest orders ShownDecisions reads in a run of their own.
const shownRun = 128

// readShown is ShownDecisions of a run of orders, in one read transaction.
func (s *Store) readShown(orders []string, within int, views []DecisionView, errs []error) error {
	return s.db.View(func(txn *badger.Txn) error {
		// Forward: Badger steps back through a block by decoding it from
		// its start; an order has few decisions.
		o := badger.DefaultIteratorOptions
		o.Prefix, o.PrefetchValues = []byte(pOrderDec), false
		index := txn.NewIterator(o)
		defer index.Close()
		o = badger.DefaultIteratorOptions
		o.Prefix = []byte(pTrail)
		trails := txn.NewIterator(o)
		defer trails.Close()
		var (
			ids    = make([]string, 0, within)
			prefix []byte
		)
		for i, order := range orders {
			prefix = append(append(append(prefix[:0], pOrderDec...), order...), 0)
			ids = ids[:0]
			for index.Seek(prefix); index.ValidForPrefix(prefix); index.Next() {
				ids = append(ids, string(index.Item().Key()[len(prefix):]))
			}
			if len(ids) == 0 {
				continue
			}
			slices.Reverse(ids) // newest first
			v, err := shownDecision(txn, trails, ids[:min(len(ids), within)])
			if err != nil {
				errs[i] = fmt.Errorf("store: read decision %s of order %s: %w", v.ID, order, err)
			}
			views[i] = v
		}
		return nil
	})
}

// shownDecision reads the first of ids (newest first) with an open item, else
// the first, with what its state needs; trails is an iterator over pTrail.
func shownDecision(txn *badger.Txn, trails *badger.Iterator, ids []string) (DecisionView, error) {
	v := DecisionView{ID: ids[0]}
	for _, id := range ids {
		open, err := get(txn, key(pPending, id))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return DecisionView{ID: id}, err
		}
		v.ID, v.Open = id, open
		break
	}
	var err error
	if v.Record, err = get(txn, key(pDecision, v.ID)); err != nil {
		return v, err
	}
	switch outcome, err := get(txn, key(pOutcome, v.ID)); {
	case err == nil:
		v.Outcomes = map[string][]byte{"": outcome}
	case !errors.Is(err, ErrNotFound):
		return v, err
	}
	prefix := key(pTrail, v.ID, "")
	for trails.Seek(prefix); trails.ValidForPrefix(prefix); trails.Next() {
		val, err := trails.Item().ValueCopy(nil)
		if err != nil {
			return v, err
		}
		v.Trail = append(v.Trail, val)
	}
	return v, nil
}

// EachOpenItem calls fn with every open item, in decision id order, in one
// read transaction: its decision id and version (the item's commit: it
// changes whenever the item is written again), both valid during the call
// only, and value, which calls read with the item's value in place (valid
// during read only). The keys are walked without reading the values: a
// caller that keeps what it read of each item by version reads only the
// items written since.
func (s *Store) EachOpenItem(fn func(decision []byte, version uint64, value func(read func(v []byte) error) error) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pPending)
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		value := func(read func(v []byte) error) error { return it.Item().Value(read) }
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := fn(item.Key()[len(pPending):], item.Version(), value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read open items: %w", err)
	}
	return nil
}
