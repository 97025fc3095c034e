package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Stats are the durable counters behind /api/v1/stats. They are read from Badger,
// so they survive restarts and crashes.
type Stats struct {
	EventsApplied    int64 `json:"events_applied"`
	Duplicates       int64 `json:"duplicates"`
	DeadLettered     int64 `json:"dead_lettered"`
	OpenOrders       int64 `json:"open_orders"`
	Decisions        int64 `json:"decisions"`
	ActionsPublished int64 `json:"actions_published"`
	// ActionsDeduplicated are publishes JetStream dropped as duplicates of an
	// earlier one: not counted in ActionsPublished.
	ActionsDeduplicated int64 `json:"actions_deduplicated"`
}

// Stats reads the durable counters; those kept per partition are summed.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.db.View(func(txn *badger.Txn) error {
		return eachCounter(txn, func(name string, _ int, v int64) {
			switch name {
			case CounterEventsApplied:
				st.EventsApplied += v
			case CounterDuplicates:
				st.Duplicates += v
			case CounterDeadLettered:
				st.DeadLettered += v
			case CounterOpenOrders:
				st.OpenOrders += v
			case CounterDecisions:
				st.Decisions += v
			case CounterActionsPublished:
				st.ActionsPublished += v
			case CounterActionsDeduplicated:
				st.ActionsDeduplicated += v
			}
		})
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	return st, nil
}

// OrderView is everything stored about one order.
type OrderView struct {
	Record []byte // the order record as the pipeline stored it
	// Timeline is the events releases before issue 20 stored whole (t/), by
	// event time; the record now keeps references to the events instead
	// (process.RecordTimeline), which readers merge in.
	Timeline  [][]byte
	Decisions [][]byte // decision records, oldest first
	Outcomes  [][]byte // execution outcomes, where known, in the order of Decisions (nil when pending)
	// Details holds each decision with its trail, deliveries and open item, in the
	// order of Decisions.
	Details []DecisionView
	Scores  [][]byte // score points, by time
}

// Order reads an order's record, timeline and decisions. It returns ErrNotFound when
// nothing is stored for the order.
func (s *Store) Order(id string) (OrderView, error) {
	var v OrderView
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key(pOrder, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if v.Record, err = item.ValueCopy(nil); err != nil {
			return err
		}
		if v.Timeline, err = values(txn, timelinePrefix(id), 0); err != nil {
			return err
		}
		ids, err := suffixes(txn, key(pOrderDec, id, ""))
		if err != nil {
			return err
		}
		for _, did := range ids {
			d, err := readDecision(txn, did)
			if err != nil {
				return fmt.Errorf("decision %s: %w", did, err)
			}
			v.Decisions = append(v.Decisions, d.Record)
			v.Outcomes = append(v.Outcomes, d.Outcomes[""])
			v.Details = append(v.Details, d)
		}
		v.Scores, err = values(txn, key(pScore, id, ""), 0)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return OrderView{}, ErrNotFound
	}
	if err != nil {
		return OrderView{}, fmt.Errorf("store: read order %s: %w", id, err)
	}
	return v, nil
}

// OutboxEntry is a command waiting for its executor.
type OutboxEntry struct {
	DecisionID string
	Command    []byte
}

func completeOutbox(txn *badger.Txn, entry string, outcome []byte, counter string) error {
	if err := txn.Delete(key(pOutbox, entry)); err != nil {
		return err
	}
	if err := txn.Set(key(pOutcome, entry), outcome); err != nil {
		return err
	}
	if counter == "" {
		return nil
	}
	k := key(pCounter, counter)
	n, err := readInt(txn, k)
	if err != nil {
		return err
	}
	return txn.Set(k, binary.BigEndian.AppendUint64(nil, uint64(n+1)))
}

func get(txn *badger.Txn, k []byte) ([]byte, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func values(txn *badger.Txn, prefix []byte, limit int) ([][]byte, error) {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	it := txn.NewIterator(o)
	defer it.Close()
	var out [][]byte
	for it.Rewind(); it.Valid() && (limit == 0 || len(out) < limit); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func suffixes(txn *badger.Txn, prefix []byte) ([]string, error) {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.PrefetchValues = false
	it := txn.NewIterator(o)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, string(it.Item().Key()[len(prefix):]))
	}
	return out, nil
}

// Due is a rescoring entry of the due-time index that releases before the
// rescoring time rode in the order record alone kept (u/<due><order>).
type Due struct {
	At    time.Time
	Order string
}

// Dues returns every rescoring entry stored by an earlier release, earliest
// first.
func (s *Store) Dues() ([]Due, error) {
	var out []Due
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pDue)
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(pDue):]
			if len(k) < 8 {
				return fmt.Errorf("malformed due key %q", k)
			}
			out = append(out, Due{At: time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC(), Order: string(k[8:])})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read due index: %w", err)
	}
	return out, nil
}

// DeleteDues deletes rescoring entries of an earlier release (Dues), in as
// many commits as they take, and syncs.
func (s *Store) DeleteDues(dues []Due) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, d := range dues {
		if err := wb.Delete(dueKey(d.At.UnixNano(), d.Order)); err != nil {
			return fmt.Errorf("store: delete the due index of an earlier release: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: delete the due index of an earlier release: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("store: delete the due index of an earlier release: sync: %w", err)
	}
	return nil
}

// Contexts calls fn for every stored context aggregate.
func (s *Store) Contexts(fn func(kind, id string, v []byte) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pContext)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(pContext):]
			kind, id, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return fmt.Errorf("malformed context key %q", k)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(string(kind), string(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read context: %w", err)
	}
	return nil
}

// Meta reads a named piece of pipeline metadata; nil when absent.
func (s *Store) Meta(name string) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = get(txn, key(pMeta, name))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", name, err)
	}
	return v, nil
}

// Orders calls fn with every stored order record.
func (s *Store) Orders(fn func(id string, rec []byte) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(pOrder)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				return fn(string(it.Item().Key()[len(pOrder):]), v)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: read orders: %w", err)
	}
	return nil
}

// DecisionsPage returns a page of the decisions q selects, newest first: at most
// q.Limit (zero: 100) decided before the decision id after ("" starts at the
// newest), and the id to pass as after for the next page, "" when there is none.
// It seeks to after and reads only the page, so a deep page costs what the first
// one does.
func (s *Store) DecisionsPage(q DecisionsQuery, after string) (page []DecisionView, next string, err error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	floor := ""
	if !q.Since.IsZero() {
		floor = DecisionIDPrefix(q.Since)
	}
	prefix := []byte(pDecision)
	if q.Order != "" {
		prefix = key(pOrderDec, q.Order, "")
	}
	err = s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = prefix
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		start := append(slices.Clip(prefix), "\xff"...)
		if after != "" {
			start = append(slices.Clip(prefix), after...)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(prefix):])
			if id == after {
				continue
			}
			if id < floor {
				break
			}
			if len(page) == q.Limit {
				next = page[len(page)-1].ID
				break
			}
			d, err := readDecision(txn, id)
			if err != nil {
				return fmt.Errorf("decision %s: %w", id, err)
			}
			page = append(page, d)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store: find decisions: %w", err)
	}
	return page, next, nil
}
