package store

import (
	"errors"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNotFound is returned by the queries when the order or decision does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned by Batch.Commit when a concurrent commit changed a key the
// batch read. The caller retries the whole batch.
var ErrConflict = errors.New("store: write conflict, retry the batch")

// ErrNoSpace is returned, wrapped with the reason, by every write while
// Options.CheckSpace fails. Nothing was written: retry once space returns.
var ErrNoSpace = errors.New("store: not writing, no space")

// noSpace is a refusal for want of space: it reads as its reason (what /readyz
// and the logs show) and is ErrNoSpace for errors.Is.
type noSpace struct{ reason error }

func (e noSpace) Error() string   { return e.reason.Error() }
func (e noSpace) Unwrap() []error { return []error{ErrNoSpace, e.reason} }

// ErrBatchTooBig is returned, wrapped, when a batch holds more than Badger takes in
// one commit. Nothing was written: the caller splits the batch and tries again.
var ErrBatchTooBig = badger.ErrTxnTooBig
