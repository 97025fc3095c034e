package process

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// maxLine bounds one line of a recorded stream; longer lines are an error (events
// over features.MaxEventBytes but under this are dead-lettered as oversize).
const maxLine = 4 << 20

// ReplayOptions configures Replay.
type ReplayOptions struct {
	Store  *store.Store  // required: a scratch store (NoSync is fine)
	Policy *actions.Live // required
	Scorer Scorer        // nil means the rules fallback
	OnRow  func(*Row)    // receives every scoring moment
	// BatchSize is the lines per commit; zero means 1024. Rows do not depend on it.
	BatchSize int
	// Progress, when set, is called after each batch with the lines read so far.
	Progress func(lines int)
	Logger   *slog.Logger
}

// ReplayStats counts what a replay did with the lines it read.
type ReplayStats struct {
	Lines        int            `json:"lines"`
	Applied      int            `json:"applied"`
	Duplicates   int            `json:"duplicates"`
	DeadLettered int            `json:"dead_lettered"`
	Rows         int            `json:"rows"`
	Reasons      map[string]int `json:"reasons,omitempty"`
}

// Replay runs a recorded stream, one event per line (NDJSON, as `orderwatch
// simulate --out` writes), through the same Processor as the live pipeline, on
// event time: scoring moments and rescoring timers follow the watermark, so the
// rows are those the live pipeline would have scored in event-time mode. Rejected
// lines are counted by reason instead of published.
func Replay(ctx context.Context, r io.Reader, opts ReplayOptions) (ReplayStats, error) {
	st := ReplayStats{Reasons: map[string]int{}}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	onRow := opts.OnRow
	proc, err := New(Options{
		Store: opts.Store, Policy: opts.Policy, Scorer: opts.Scorer, EventTime: true, Logger: opts.Logger,
		OnRow: func(row *Row) {
			st.Rows++
			if onRow != nil {
				onRow(row)
			}
		},
		DeadLetter: func(_ context.Context, _ *Message, reason, _ string) error {
			st.Reasons[reason]++
			return nil
		},
	})
	if err != nil {
		return st, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	msgs := make([]Message, opts.BatchSize)
	ptrs := make([]*Message, 0, opts.BatchSize)
	flush := func() error {
		if len(ptrs) == 0 {
			return nil
		}
		res, err := proc.Process(ctx, ptrs)
		if err != nil {
			return fmt.Errorf("process: replay lines up to %d: %w", st.Lines, err)
		}
		st.Applied += res.Applied
		st.Duplicates += res.Duplicates
		st.DeadLettered += res.DeadLettered
		ptrs = ptrs[:0]
		if opts.Progress != nil {
			opts.Progress(st.Lines)
		}
		return nil
	}
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Lines++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		m := &msgs[len(ptrs)]
		// The scanner reuses its buffer: keep a copy for the batch.
		*m = Message{Seq: uint64(st.Lines), Data: append(m.Data[:0], line...)}
		ptrs = append(ptrs, m)
		if len(ptrs) == opts.BatchSize {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("process: replay line %d is longer than %d bytes", st.Lines+1, maxLine)
		}
		return st, fmt.Errorf("process: read recorded stream: %w", err)
	}
	return st, flush()
}
