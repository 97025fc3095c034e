package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// ContextPart is the partition number, in keys and counters, of the stream's
// messages outside the order partitions: context events, and what is
// dead-lettered from their subjects.
const ContextPart = 0xFFFF

// PartCounter is the name of a counter of one partition: the counters of the
// stream's messages (events applied, duplicates, dead letters, open orders) are
// kept per partition, so a partition's count moves with it. Stats sums them.
func PartCounter(name string, part int) string {
	if part == ContextPart {
		return name + "@ctx"
	}
	return name + "@" + strconv.Itoa(part)
}

// splitCounter returns a stored counter's name and partition (-1 when it has none).
func splitCounter(stored string) (string, int) {
	name, part, ok := strings.Cut(stored, "@")
	if !ok {
		return stored, -1
	}
	if part == "ctx" {
		return name, ContextPart
	}
	n, err := strconv.Atoi(part)
	if err != nil || n < 0 || n >= ContextPart {
		return stored, -1
	}
	return name, n
}

// PartStats are the counters of one partition.
type PartStats struct {
	EventsApplied int64 `json:"events_applied"`
	Duplicates    int64 `json:"duplicates"`
	DeadLettered  int64 `json:"dead_lettered"`
	OpenOrders    int64 `json:"open_orders"`
}

func (ps *PartStats) field(name string) *int64 {
	switch name {
	case CounterEventsApplied:
		return &ps.EventsApplied
	case CounterDuplicates:
		return &ps.Duplicates
	case CounterDeadLettered:
		return &ps.DeadLettered
	case CounterOpenOrders:
		return &ps.OpenOrders
	}
	return nil
}

// Add adds o to ps.
func (ps *PartStats) Add(o PartStats) {
	ps.EventsApplied += o.EventsApplied
	ps.Duplicates += o.Duplicates
	ps.DeadLettered += o.DeadLettered
	ps.OpenOrders += o.OpenOrders
}

// PartitionStats reads the counters of every partition that has any here, by
// partition (ContextPart for the context subjects).
func (s *Store) PartitionStats() (map[int]PartStats, error) {
	out := map[int]PartStats{}
	err := s.db.View(func(txn *badger.Txn) error {
		return eachCounter(txn, func(name string, part int, v int64) {
			if part < 0 {
				return
			}
			ps := out[part]
			if f := ps.field(name); f != nil {
				*f += v
				out[part] = ps
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: partition stats: %w", err)
	}
	return out, nil
}

// eachCounter calls fn with every stored counter.
func eachCounter(txn *badger.Txn, fn func(name string, part int, v int64)) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = []byte(pCounter)
	it := txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().KeyCopy(nil)
		v, err := readInt(txn, k)
		if err != nil {
			return fmt.Errorf("read counter %q: %w", k, err)
		}
		name, part := splitCounter(string(k[len(pCounter):]))
		fn(name, part, v)
	}
	return nil
}

// PartitionEpoch returns the lease epoch the local state of a partition is
// current for, and false when it is not known to be current for any (never
// owned here, or dropped).
func (s *Store) PartitionEpoch(part int) (uint64, bool, error) {
	v, err := s.Meta(partEpochName(part))
	if err != nil || len(v) != 8 {
		return 0, false, err
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// SetPartitionEpoch records that the local state of a partition is current for
// a lease epoch: everything of the partition acked so far is committed here.
func (s *Store) SetPartitionEpoch(part int, epoch uint64) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(key(pMeta, partEpochName(part)), binary.BigEndian.AppendUint64(nil, epoch))
	})
	if err != nil {
		return fmt.Errorf("store: record epoch of partition %d: %w", part, err)
	}
	return nil
}

func partEpochName(part int) string { return "part@" + strconv.Itoa(part) }

// DropPartition deletes the local state of a partition that another instance
// owns now: the records and rescoring entries of the given orders (the caller
// knows which orders the partition holds), the partition's dedupe markers and
// its counters; with governance, also the orders' governance that moves with
// them (cooldowns, decisions in flight with their open items, timers, trails and
// outbox entries: the next owner has them from the group's state bucket). The
// decisions of the past and the orders' timelines stay: they are records of what this instance
// did and saw. The partition's
// epoch is forgotten first, so a drop cut short by a crash is done again at the
// next takeover.
func (s *Store) DropPartition(part int, orders map[string]bool, governance bool) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(key(pMeta, partEpochName(part)))
	})
	if err != nil {
		return fmt.Errorf("store: drop partition %d: %w", part, err)
	}
	var dels [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		collect := func(prefix []byte, keep func(k []byte) bool) {
			o := badger.DefaultIteratorOptions
			o.Prefix = prefix
			o.PrefetchValues = false
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				if k := it.Item().Key(); keep(k) {
					dels = append(dels, it.Item().KeyCopy(nil))
				}
			}
		}
		all := func([]byte) bool { return true }
		collect(appendPart([]byte(pSeq), part), all)
		collect(appendPart([]byte(pEventID), part), all)
		collect([]byte(pOrder), func(k []byte) bool { return orders[string(k[len(pOrder):])] })
		collect([]byte(pDue), func(k []byte) bool {
			return len(k) >= len(pDue)+8 && orders[string(k[len(pDue)+8:])]
		})
		collect([]byte(pWatch), func(k []byte) bool { return orders[keyOrder(k, pWatch)] })
		collect([]byte(pException), func(k []byte) bool { return orders[keyOrder(k, pException)] })
		suffix := []byte(PartCounter("", part))
		collect([]byte(pCounter), func(k []byte) bool { return bytes.HasSuffix(k, suffix) })
		collect([]byte(pGovPending), func(k []byte) bool {
			order, ok := govMarkOrder(k[len(pGovPending):])
			return ok && orders[order]
		})
		if !governance {
			return nil
		}
		var err error
		dels, err = dropGovernance(txn, orders, dels)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: drop partition %d: list keys: %w", part, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range dels {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("store: drop partition %d: %w", part, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: drop partition %d: %w", part, err)
	}
	if err := s.db.Sync(); err != nil && !errors.Is(err, badger.ErrDBClosed) {
		return fmt.Errorf("store: drop partition %d: sync: %w", part, err)
	}
	return nil
}

// MemberID returns this data dir's member id in a group, made from the host
// name and a random suffix the first time and kept, so a restart is the same
// member (and takes its own partitions back without rebuilding them).
func (s *Store) MemberID(host string, random func() string) (string, error) {
	v, err := s.Meta("member")
	if err != nil {
		return "", err
	}
	if len(v) > 0 {
		return string(v), nil
	}
	id := host + "-" + random()
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(key(pMeta, "member"), []byte(id)) })
	if err != nil {
		return "", fmt.Errorf("store: record member id: %w", err)
	}
	return id, nil
}
