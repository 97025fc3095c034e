package store

import (
	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// scratchOptions tunes Badger for a throwaway store (Options.Scratch): one
// writer, a few minutes of life, removed afterwards. No compression (the
// bytes never leave the scratch dir), no conflict detection (a replay is
// the only writer), and level 0 compacted late (its tables are read while
// they are few and hot; the store is gone before they would matter).
func scratchOptions(bo badger.Options) badger.Options {
	bo = bo.WithCompression(options.None).
		WithDetectConflicts(false).
		WithNumLevelZeroTables(16).
		WithNumLevelZeroTablesStall(48).
		WithNumCompactors(2)
	return bo
}

// Skip is what a scratch store's batches leave out (Options.SkipScores,
// SkipTimelines): writes its reader never reads. A replay whose decisions
// are all that is read (whatif's candidate) needs neither; one whose
// outcomes are derived (process.Outcomes reads the timelines) needs the
// timelines. Nothing in the processing of a batch reads either.
type Skip struct {
	Scores, Timelines bool
}
