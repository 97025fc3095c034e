package whatif

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// Window is the span a comparison reports, by event time: decisions in
// [From, To). Events from Start (From less the warm-up) are replayed: those
// before From build the orders' state and the context aggregates, and their
// decisions count for the episodes but are not reported. Events after To are
// replayed too, to the stream's end, so that more orders have an outcome.
type Window struct {
	Start, From, To time.Time
}

// Hours is the window's length in hours.
func (w Window) Hours() float64 { return w.To.Sub(w.From).Hours() }

// contains reports whether t (unix nanoseconds) is in [From, To).
func (w Window) contains(t int64) bool {
	return t >= w.From.UnixNano() && t < w.To.UnixNano()
}

// maxLine bounds a line of a recorded stream, as process.Replay does.
const maxLine = 4 << 20

// LastEventTime returns the greatest occurred_at of the lines of r (NDJSON
// events), the zero time when none decodes. Lines that do not decode are
// skipped: the replay counts them.
func LastEventTime(r io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var last time.Time
	var ev features.Event
	for sc.Scan() {
		if features.Decode(sc.Bytes(), &ev) == nil && ev.OccurredAt.After(last) {
			last = ev.OccurredAt
		}
	}
	if err := sc.Err(); err != nil {
		return last, fmt.Errorf("whatif: read events: %w", err)
	}
	return last, nil
}

// FilterStats counts what a Filter did.
type FilterStats struct {
	Lines   int // read
	Skipped int // events before the window's start, not replayed
}

// Filter passes on the lines of an NDJSON stream except the events that
// occurred before start; a line that does not decode is passed on (the replay
// dead-letters it). Not safe for concurrent use.
type Filter struct {
	sc    *bufio.Scanner
	start time.Time
	ev    features.Event
	buf   []byte // the line being passed on, with its newline
	off   int    // how much of buf is passed on
	Stats FilterStats
}

// NewFilter filters r from start.
func NewFilter(r io.Reader, start time.Time) *Filter {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	return &Filter{sc: sc, start: start}
}

// Read implements io.Reader.
func (f *Filter) Read(p []byte) (int, error) {
	for f.off == len(f.buf) {
		if !f.sc.Scan() {
			if err := f.sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					return 0, fmt.Errorf("whatif: line %d is longer than %d bytes", f.Stats.Lines+1, maxLine)
				}
				return 0, fmt.Errorf("whatif: read events: %w", err)
			}
			return 0, io.EOF
		}
		f.Stats.Lines++
		line := f.sc.Bytes()
		if !f.start.IsZero() && features.Decode(line, &f.ev) == nil && f.ev.OccurredAt.Before(f.start) {
			f.Stats.Skipped++
			continue
		}
		f.buf, f.off = append(append(f.buf[:0], line...), '\n'), 0
	}
	n := copy(p, f.buf[f.off:])
	f.off += n
	return n, nil
}
