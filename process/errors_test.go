package process

import (
	"errors"
	"fmt"
	"testing"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// TestClassify: each error decides what becomes of its batch, also when it is
// wrapped in another class's sentinel (a commit too big fails as ErrCommit).
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Class
	}{
		{nil, None},
		{store.ErrNoSpace, Transient},
		{fmt.Errorf("%w: %w", ErrCommit, errors.New("i/o")), Transient},
		{fmt.Errorf("%w: %w", ErrCommit, store.ErrBatchTooBig), TooBig},
		{store.ErrBatchTooBig, TooBig},
		{&features.DecodeError{Reason: features.ReasonBadJSON}, Permanent},
		{errors.New("decode stored order SO-1: record ends early"), Poison},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
