package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Durable counter names, as they appear in /api/v1/stats.
const (
	CounterEventsApplied    = "events_applied"
	CounterDuplicates       = "duplicates"
	CounterDeadLettered     = "dead_lettered"
	CounterOpenOrders       = "open_orders"
	CounterDecisions        = "decisions"
	CounterActionsPublished = "actions_published"
	// CounterActionsDeduplicated counts the commands published again that
	// JetStream dropped as duplicates of an earlier publish (same Nats-Msg-Id).
	CounterActionsDeduplicated = "actions_deduplicated"
)

// Batch collects the effects of one pipeline batch (or of one approval or
// escalation) and commits them atomically with one fsync. A Batch is used by one
// goroutine; call Commit (or CommitAsync) or Discard exactly once (Discard after
// Commit is safe).
//
// A staged batch (NewStagedBatch) reads from a Snapshot and keeps its writes in
// memory until Bind gives it its read-write transaction: the pipeline stages the
// next batch while the previous one commits, since a read-write transaction can
// only start once the commits before it are applied.
type Batch struct {
	s      *Store
	txn    *badger.Txn // nil while staged
	snap   *Snapshot   // reads while staged
	staged []staged
	deltas map[string]int64
	// writes counts the batch's writes and deletes by the first byte of
	// their key (the record kind), for Store.Writes.
	writes [128]uint32
	// bytes counts the key and value bytes of the batch's writes by kind, for
	// Store.WriteBytes.
	bytes [128]uint64
	// slab holds the batch's entries (newEntry); rkey is the key of the
	// latest read, reused: Badger keeps no read key once the read returns.
	slab []badger.Entry
	rkey []byte
	// chunk holds the keys and small values of the batch's writes (room).
	chunk []byte
}

const (
	// entrySlab is how many entries newEntry allocates at once.
	entrySlab = 256
	// keyChunk is the size of the chunks room allocates; a key or value
	// above keyChunk/8 bytes gets an allocation of its own.
	keyChunk = 8 << 10
)

type staged struct {
	e   *badger.Entry
	del bool
}

// Snapshot is a read-only view of what was committed when it was taken.
type Snapshot struct{ txn *badger.Txn }

// Snapshot takes a read-only view of the store. Taken before a batch's
// CommitAsync, it does not wait for that commit and does not see it.
func (s *Store) Snapshot() *Snapshot { return &Snapshot{txn: s.db.NewTransaction(false)} }

// Discard releases the snapshot; it is idempotent.
func (sn *Snapshot) Discard() {
	if sn != nil {
		sn.txn.Discard()
	}
}

// NewBatch starts a read-write batch.
func (s *Store) NewBatch() *Batch {
	return &Batch{s: s, txn: s.db.NewTransaction(true), deltas: make(map[string]int64, 8)}
}

// NewStagedBatch starts a batch that reads from snap and keeps its writes until
// Bind. It takes snap over: Bind or Discard releases it. The caller must know
// what was committed or is committing since snap was taken and not rely on reads
// of those keys.
func (s *Store) NewStagedBatch(snap *Snapshot) *Batch {
	return &Batch{s: s, snap: snap, deltas: make(map[string]int64, 8)}
}

// Bind gives a staged batch its read-write transaction, which waits for the
// commits before it, and replays the writes kept so far; reads and writes go to
// the transaction from then on. Bind on a batch that is not staged does nothing.
func (b *Batch) Bind() error {
	if b.txn != nil {
		return nil
	}
	b.snap.Discard()
	b.snap = nil
	b.txn = b.s.db.NewTransaction(true)
	for _, op := range b.staged {
		if op.del {
			if err := b.txn.Delete(op.e.Key); err != nil {
				return fmt.Errorf("store: delete %q: %w (make the batch smaller)", op.e.Key[:2], err)
			}
			continue
		}
		if err := b.txnSet(op.e); err != nil {
			return err
		}
	}
	b.staged = nil
	return nil
}

// reader is what reads go to: the transaction, or the snapshot while staged.
func (b *Batch) reader() *badger.Txn {
	if b.txn != nil {
		return b.txn
	}
	return b.snap.txn
}

// Discard abandons the batch. It is safe after Commit.
func (b *Batch) Discard() {
	b.snap.Discard()
	if b.txn != nil {
		b.txn.Discard()
	}
}

// Commit writes the counters and everything set on the batch in one synced commit.
func (b *Batch) Commit() error {
	if err := b.prepareCommit(); err != nil {
		return err
	}
	return commitErr(b.txn.Commit())
}

// CommitAsync is Commit without waiting: done receives the outcome, from another
// goroutine, once the commit is synced (or failed).
func (b *Batch) CommitAsync(done func(error)) {
	if err := b.prepareCommit(); err != nil {
		done(err)
		return
	}
	b.txn.CommitWith(func(err error) { done(commitErr(err)) })
}

func commitErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrConflict):
		return ErrConflict
	default:
		return fmt.Errorf("store: commit batch: %w", err)
	}
}

// prepareCommit binds a staged batch and writes the counters.
func (b *Batch) prepareCommit() error {
	if err := b.s.Writable(); err != nil {
		return fmt.Errorf("store: commit batch: %w", err)
	}
	if err := b.Bind(); err != nil {
		return err
	}
	b.s.addWrites(&b.writes, &b.bytes)
	for name, d := range b.deltas {
		if d == 0 {
			continue
		}
		k := key(pCounter, name)
		cur, err := readInt(b.txn, k)
		if err != nil {
			return fmt.Errorf("store: read counter %s: %w", name, err)
		}
		if err := b.set(k, binary.BigEndian.AppendUint64(nil, uint64(cur+d))); err != nil {
			return err
		}
	}
	return nil
}

// Add adds delta to a durable counter when the batch commits.
func (b *Batch) Add(counter string, delta int64) { b.deltas[counter] += delta }

// SeqCommitted reports whether the message at stream sequence seq, of partition
// part, already had its
// effect committed (a redelivery after a lost ack). Dead letters and duplicates
// are marked by sequence; an applied event's marker (MarkEvent) holds its
// sequence instead.
func (b *Batch) SeqCommitted(part int, seq uint64) (bool, error) {
	b.rkey = binary.BigEndian.AppendUint64(appendPart(append(b.rkey[:0], pSeq...), part), seq)
	_, err := b.reader().Get(b.rkey)
	return found(err)
}

// MarkSeq records that the message at stream sequence seq, of partition part, is
// handled by this batch.
func (b *Batch) MarkSeq(part int, seq uint64) error {
	return b.setEntry(b.newEntry(seqKey(part, seq), nil).WithTTL(b.s.markerTTL))
}

// EventSeq returns the stream sequence an event with this id was applied from, and
// whether it was applied before. The same sequence means a redelivery of the same
// message; another one, a duplicate published again.
func (b *Batch) EventSeq(part int, id string) (uint64, bool, error) {
	b.rkey = appendEventKey(b.rkey[:0], part, id)
	item, err := b.reader().Get(b.rkey)
	if ok, err := found(err); !ok || err != nil {
		return 0, false, err
	}
	var seq uint64
	err = item.Value(func(v []byte) error {
		if len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: read event marker %s: %w", id, err)
	}
	return seq, true, nil
}

// MarkEvent records that the event id was applied in partition part from stream
// sequence seq.
func (b *Batch) MarkEvent(part int, id string, seq uint64) error {
	kv := b.room(len(pEventID) + 2 + len(id) + 8)
	kv = appendEventKey(kv, part, id)
	n := len(kv)
	kv = binary.BigEndian.AppendUint64(kv, seq)
	return b.setEntry(b.newEntry(kv[:n:n], kv[n:]).WithTTL(b.s.markerTTL))
}

// Order returns the stored record of an order, or nil when there is none.
func (b *Batch) Order(id string) ([]byte, error) {
	b.rkey = append(append(b.rkey[:0], pOrder...), id...) // key(pOrder, id)
	item, err := b.reader().Get(b.rkey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read order %s: %w", id, err)
	}
	return item.ValueCopy(nil)
}

// PutOrder stores an order's record. A ttl above zero lets Badger expire it (closed
// and orphan orders); zero keeps it.
func (b *Batch) PutOrder(id string, rec []byte, ttl time.Duration) error {
	e := b.newEntry(b.key(pOrder, id), rec)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return b.setEntry(e)
}

// AppendTimeline stores an event's bytes under t/, ordered by event time, as
// releases before issue 20 did for every applied event; a ttl above zero lets
// it expire. The pipeline no longer calls it: an order's timeline now rides in
// its record as references to the stream (process.Timeline), and Order still
// reads the t/ keys earlier releases left. It stays for tests that make such a
// store.
func (b *Batch) AppendTimeline(order string, at time.Time, eventID string, raw []byte, ttl time.Duration) error {
	if b.s.skip.Timelines {
		return nil
	}
	e := b.newEntry(timelineKey(order, at.UnixNano(), eventID), raw)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return b.setEntry(e)
}

// KeepsTimelines reports whether the orders' timelines are kept: false for a
// scratch store opened with SkipTimelines, whose order records then carry no
// timeline.
func (b *Batch) KeepsTimelines() bool { return !b.s.skip.Timelines }

// PutDue records that order is to be rescored at at, in the due index of
// releases before the rescoring time rode in the order record alone (u/).
// orderwatch writes none any more: tests use it to write a store as an
// earlier release left it.
func (b *Batch) PutDue(at time.Time, order string) error {
	return b.set(dueKey(at.UnixNano(), order), nil)
}

// DeleteDue removes a rescoring entry of an earlier release (PutDue).
func (b *Batch) DeleteDue(at time.Time, order string) error {
	b.count(pDue)
	if b.txn == nil {
		b.staged = append(b.staged, staged{e: &badger.Entry{Key: dueKey(at.UnixNano(), order)}, del: true})
		return nil
	}
	if err := b.txn.Delete(dueKey(at.UnixNano(), order)); err != nil {
		return fmt.Errorf("store: delete due entry: %w", err)
	}
	return nil
}

// PutContext stores a context aggregate.
func (b *Batch) PutContext(kind, id string, v []byte) error {
	return b.set(b.key(pContext, kind, id), v)
}

// PutMeta stores a named piece of pipeline metadata.
func (b *Batch) PutMeta(name string, v []byte) error { return b.set(key(pMeta, name), v) }

// PutDecision stores a decision record and indexes it under its order.
func (b *Batch) PutDecision(id, order string, rec []byte) error {
	if err := b.set(key(pDecision, id), rec); err != nil {
		return err
	}
	return b.set(key(pOrderDec, order, id), nil)
}

// Enqueue puts a command into the outbox, to be executed after the commit.
func (b *Batch) Enqueue(decisionID string, cmd []byte) error {
	return b.set(key(pOutbox, decisionID), cmd)
}

func (b *Batch) set(k, v []byte) error { return b.setEntry(b.newEntry(k, v)) }

// room returns an empty slice with room for n bytes that the batch keeps
// until it commits, for a key or value of one of its writes: a part of a
// chunk of the batch, so that one allocation serves many writes. The parts
// of a chunk never overlap and a chunk is never reused: Badger keeps the
// slices until the commit.
func (b *Batch) room(n int) []byte {
	if n > keyChunk/8 {
		return make([]byte, 0, n)
	}
	if cap(b.chunk)-len(b.chunk) < n {
		b.chunk = make([]byte, 0, keyChunk)
	}
	start := len(b.chunk)
	b.chunk = b.chunk[:start+n]
	return b.chunk[start : start : start+n]
}

// key is the package's key, in room of the batch.
func (b *Batch) key(prefix string, parts ...string) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	k := append(b.room(n), prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// newEntry returns an entry of the batch for k and v, from its slab: Badger
// keeps the pointer until the commit, so a full slab is replaced, never grown
// or reused, and one allocation serves entrySlab writes.
func (b *Batch) newEntry(k, v []byte) *badger.Entry {
	if len(b.slab) == cap(b.slab) {
		b.slab = make([]badger.Entry, 0, entrySlab)
	}
	b.slab = append(b.slab, badger.Entry{Key: k, Value: v})
	return &b.slab[len(b.slab)-1]
}

func (b *Batch) setEntry(e *badger.Entry) error {
	if len(e.Key) > 0 && e.Key[0] < 128 {
		b.writes[e.Key[0]]++
		b.bytes[e.Key[0]] += uint64(len(e.Key) + len(e.Value))
	}
	if b.txn == nil {
		b.staged = append(b.staged, staged{e: e})
		return nil
	}
	return b.txnSet(e)
}

// count counts a delete under a key prefix.
func (b *Batch) count(prefix string) { b.writes[prefix[0]]++ }

// txnSet writes an entry to the bound transaction.
func (b *Batch) txnSet(e *badger.Entry) error {
	if err := b.txn.SetEntry(e); err != nil {
		return fmt.Errorf("store: write %q: %w (make the batch smaller)", e.Key[:2], err)
	}
	return nil
}

func found(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("store: read marker: %w", err)
	}
}

func readInt(txn *badger.Txn, k []byte) (int64, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v int64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("counter %q holds %d bytes, want 8", k, len(b))
		}
		v = int64(binary.BigEndian.Uint64(b))
		return nil
	})
	return v, err
}
