package process

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// ReasonPoison is the dead-letter reason of a message whose effect could not be
// staged, decided or written (class Poison); the dead letter's detail is the
// error.
const ReasonPoison = "poison"

var (
	// ErrDeadLetter is returned when a message could not be dead-lettered (the
	// DeadLetterFunc failed: the DLQ stream is unavailable or full). Transient.
	ErrDeadLetter = errors.New("process: dead letter not stored")
	// ErrCommit is returned when the Badger commit of a batch failed. Transient.
	ErrCommit = errors.New("process: batch not committed")
)

// Class is what becomes of a batch, or of one message, after an error. Classify
// is the one place that decides it; the pipeline and Process act on it.
type Class int

const (
	// None: no error.
	None Class = iota
	// Transient: the same batch can succeed later (the store has no space, the
	// DLQ is unavailable, a commit failed on I/O, shutdown). The batch is
	// retried as it is: not acked, nak'd with a back-off (capped at 10 s).
	Transient
	// Permanent: the message itself is invalid (a features.DecodeError). It is
	// dead-lettered with its reason within its batch, acked after the commit.
	Permanent
	// TooBig: the batch is more than one Badger commit takes. It is applied in
	// halves, each committed on its own.
	TooBig
	// Poison: any other error while staging, deciding or writing the effect of
	// a batch (a stored record that does not decode, an encoder that refuses a
	// value, an unexpected error). The batch is bisected down to the message,
	// which is dead-lettered with ReasonPoison and the error as detail; a
	// rescoring timer that fails so is dropped. Nothing else waits for it.
	Poison
)

func (c Class) String() string {
	switch c {
	case None:
		return "none"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case TooBig:
		return "too_big"
	default:
		return "poison"
	}
}

// Classify says which class err is in.
func Classify(err error) Class {
	var (
		de    *features.DecodeError
		pe    *fs.PathError
		errno syscall.Errno
	)
	switch {
	case err == nil:
		return None
	case errors.Is(err, store.ErrBatchTooBig):
		// Before the transient classes: a commit too big fails wrapped in
		// ErrCommit, and must be split, not retried as it is.
		return TooBig
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, store.ErrConflict),
		errors.Is(err, ErrDeadLetter), errors.Is(err, ErrCommit),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &pe), errors.As(err, &errno):
		return Transient
	case errors.As(err, &de):
		return Permanent
	default:
		return Poison
	}
}
