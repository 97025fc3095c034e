// Package store is orderwatch's only door to Badger: the key layout, the write batch
// that holds one pipeline batch's effects in a single synced commit, the durable
// counters behind /api/v1/stats, and the read queries of the HTTP API. No other
// package opens Badger.
package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Options configures a Store. The zero value (with Dir set) is a durable store.
type Options struct {
	// Dir is the Badger directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory; for tests only.
	InMemory bool
	// NoSync skips the fsync of each commit. Only for benchmarks that say so:
	// acknowledging a message whose effect is not synced breaks the durability
	// contract.
	NoSync bool
	// Scratch tunes Badger for a throwaway store with one writer, such as
	// whatif's replays (scratchOptions); with NoSync. SkipScores and
	// SkipTimelines leave out the orders' score history and timelines, for a
	// scratch store whose reader never reads them (Skip).
	Scratch                   bool
	SkipScores, SkipTimelines bool
	// MarkerTTL bounds how long delivery markers (stream sequences and event ids
	// seen) are kept for duplicate detection. Zero means 14 days.
	MarkerTTL time.Duration
	// MemTableSize is the size of Badger's memtables; a commit may write up to
	// 15% of it (ErrBatchTooBig beyond). Zero means 16 MiB: peak RSS of a
	// 1,000,000-event bench was 1.9 GiB with 16 MiB, 2.7-2.9 GiB with 32.
	MemTableSize int64
	// CheckSpace, when set, is asked before every write: batch commits, outbox
	// attempts and outcomes, settings. While it fails nothing is written and the
	// write returns an error wrapping ErrNoSpace. Badger writes through
	// memory-mapped files and dies of SIGBUS on a full disk instead of returning
	// an error, so every writer must stop before the disk is full, not only the
	// pipeline. It is asked at every write, never answered from a cache (an
	// answer kept 250 ms let batches commit and be acked after the disk had
	// crossed the reserve; a statfs costs microseconds, a synced commit
	// milliseconds), and from several goroutines at once: it must be safe for
	// concurrent use.
	CheckSpace func() error
	// Logger receives Badger's warnings and errors. Nil means discard.
	Logger *slog.Logger
}

// Store holds orderwatch's durable state. It is safe for concurrent use; write
// batches from different goroutines may conflict and then fail with ErrConflict.
type Store struct {
	db        *badger.DB
	markerTTL time.Duration
	log       *slog.Logger
	// checkSpace is Options.CheckSpace.
	checkSpace func() error
	skip       Skip // what the batches leave out
	// writes counts the batches' writes and deletes by record kind (the first
	// byte of the key), for Writes.
	writes [128]atomic.Uint64
	// bytes counts the key and value bytes the batches wrote, by kind.
	bytes [128]atomic.Uint64
}

// addWrites adds a batch's writes to the store's counts.
func (s *Store) addWrites(w *[128]uint32, by *[128]uint64) {
	for i, n := range w {
		if n != 0 {
			s.writes[i].Add(uint64(n))
		}
		if by[i] != 0 {
			s.bytes[i].Add(by[i])
		}
	}
}

// WriteBytes returns the key and value bytes the batches wrote since Open, by
// the prefix of their keys, as Writes counts them (deletes write none).
func (s *Store) WriteBytes() map[string]uint64 { return byKind(&s.bytes) }

// Writes returns how many writes and deletes the batches committed (or tried
// to) since Open, by the prefix of their keys ("o/" order records, "t/"
// timeline events, "v/" score points, "e/" event markers...): what the
// benchmark divides by the events applied.
func (s *Store) Writes() map[string]uint64 { return byKind(&s.writes) }

// byKind reads counts kept by the first byte of their keys, as "<byte>/".
func byKind(counts *[128]atomic.Uint64) map[string]uint64 {
	out := make(map[string]uint64)
	for i := range counts {
		if n := counts[i].Load(); n != 0 {
			out[string(rune(i))+"/"] = n
		}
	}
	return out
}

// Open opens (or creates) the store.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" && !opts.InMemory {
		return nil, fmt.Errorf("store: Options.Dir is empty: set a data directory")
	}
	if opts.MarkerTTL == 0 {
		opts.MarkerTTL = 14 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = 16 << 20
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(!opts.NoSync && !opts.InMemory).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		WithMemTableSize(opts.MemTableSize).
		WithValueLogFileSize(256 << 20).
		WithNumCompactors(2).
		WithBlockCacheSize(64 << 20).
		WithIndexCacheSize(32 << 20).
		WithBaseTableSize(2 << 20).
		// Values over 256 bytes (order records, timeline events) go to the
		// value log and the LSM tree keeps pointers: compactions, which took a
		// sixth of the CPU at 3,000,000 benchmark events, move a fraction of
		// the bytes (the figures are in the README, Benchmark); overwritten
		// records stay in the value log until RunGC rewrites it.
		WithValueThreshold(256)
	// Tables of 2 MiB at every level. With Badger's default (doubling per level
	// below the base) a compaction's table builders, up to 8 at a time per
	// compaction, grow with the database; they held most of the heap of a
	// 1,000,000-event benchmark (peak anonymous RSS 1,284 MiB with 4 MiB tables,
	// 1,102 with 2). The cost: one open file per 2 MiB of tables.
	bo.TableSizeMultiplier = 1
	if opts.Scratch {
		bo = scratchOptions(bo)
	}
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open badger at %q: %w", opts.Dir, err)
	}
	return &Store{db: db, markerTTL: opts.MarkerTTL, log: opts.Logger, checkSpace: opts.CheckSpace,
		skip: Skip{Scores: opts.SkipScores, Timelines: opts.SkipTimelines}}, nil
}

// Writable reports whether writes are taken: nil, or an error wrapping ErrNoSpace
// with the reason. A writer with work outside the store that must be recorded
// (publishing a command, then its outcome) asks before it starts.
func (s *Store) Writable() error {
	if s.checkSpace == nil {
		return nil
	}
	if err := s.checkSpace(); err != nil {
		return noSpace{err}
	}
	return nil
}

// Close flushes and closes Badger. It is idempotent.
func (s *Store) Close() error {
	if s.db.IsClosed() {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close badger: %w", err)
	}
	return nil
}

// Size returns Badger's on-disk size in bytes (LSM tree and value log).
func (s *Store) Size() int64 {
	lsm, vlog := s.db.Size()
	return lsm + vlog
}

// RunGC runs Badger's value-log garbage collection every interval until ctx is
// done: one pass each time, which rewrites at most one value-log file (256
// MiB) whose values are half garbage. Passes back to back until none was
// left took a fifth of the CPU for tens of seconds once the first file
// closed, and the pipeline's commits, which go through the same writer,
// waited behind them (bench's p99 at 300,000 events).
func (s *Store) RunGC(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = s.db.RunValueLogGC(0.5) // ErrNoRewrite: nothing to collect now
		}
	}
}

// badgerLogger routes Badger's own logging to slog, dropping its chatty info and
// debug lines.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error("badger", "msg", fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn("badger", "msg", fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}
