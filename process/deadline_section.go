package process

import (
	"errors"
	"fmt"
	"time"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// The deadline watches of an order ride in its record (sectionWatches), so
// that a clock that starts, fires or stops costs no write of its own: the
// record is written in that commit anyway, or (a timer that fires with no
// event) is written by it. The exception of a watch stays a record of its own
// (X/, read by the API); the watch keeps its key, and the exception is read
// from there when the watches load.
//
// The payload is a form number (watchSectionV1), a count, then per watch:
// deadline, started, start event, due, exception key ("" when none; the part
// of the X/ key after the order), warehouse, carrier, customer, milestone,
// passed, remind at, escalate at; strings, times and booleans as
// internal/binrec writes them. The order is the record's.
const watchSectionV1 = 1

// appendWatchSection appends the payload of the watches of order in ws, in
// the order they started; nothing when it has none.
func appendWatchSection(b []byte, ws *watches, order string) []byte {
	ds := ws.of[order]
	if len(ds) == 0 {
		return b
	}
	b = binrec.AppendInt(b, watchSectionV1)
	b = binrec.AppendInt(b, len(ds))
	for _, d := range ds {
		w := ws.m[watchKey{order, d}]
		b = binrec.AppendString(b, w.Deadline)
		b = binrec.AppendTime(b, w.Started)
		b = binrec.AppendString(b, w.StartEvent)
		b = binrec.AppendTime(b, w.Due)
		var ex string
		if w.Exception != nil {
			ex = exceptionKey(w.Exception)
		}
		b = binrec.AppendString(b, ex)
		b = binrec.AppendString(b, w.Warehouse)
		b = binrec.AppendString(b, w.Carrier)
		b = binrec.AppendString(b, w.Customer)
		b = binrec.AppendString(b, w.Milestone)
		b = binrec.AppendBool(b, w.Passed)
		b = binrec.AppendTime(b, w.RemindAt)
		b = binrec.AppendTime(b, w.EscalateAt)
	}
	return b
}

// storedWatch is a watch read from a record, with the key of its exception
// ("" when it has none), which the loader reads.
type storedWatch struct {
	w  *watch
	ex string
}

// errWatchSection: a watch section this release cannot read.
var errWatchSection = errors.New("unknown form of the deadline watches")

// parseWatchSection reads the watches of order from a section's payload.
func parseWatchSection(order string, raw []byte) ([]storedWatch, error) {
	d := binrec.NewDecoder(raw)
	if form := d.Int(); d.Err() == nil && form != watchSectionV1 {
		return nil, fmt.Errorf("%w: form %d", errWatchSection, form)
	}
	n := d.Count()
	out := make([]storedWatch, 0, n)
	for range n {
		w := &watch{Order: order, Deadline: d.Str(), Started: d.Time(), StartEvent: d.Str(), Due: d.Time()}
		ex := d.Str()
		w.Warehouse, w.Carrier, w.Customer, w.Milestone = d.Str(), d.Str(), d.Str(), d.Str()
		w.Passed, w.RemindAt, w.EscalateAt = d.Bool(), d.Time(), d.Time()
		if d.Err() != nil {
			break
		}
		out = append(out, storedWatch{w, ex})
	}
	if err := d.End(); err != nil {
		return nil, err
	}
	return out, nil
}

// keepsWatches reports whether the record carries deadline watches: it is
// then kept (no ttl) whatever its order's state, since a shipped order keeps
// its deadlines.
func (rec *orderRecord) keepsWatches() bool { return len(rec.watchRaw) > 0 }

// recordTTL is the ttl an order record is written with: closed and orphan
// orders expire after the retention, unless the record carries watches.
func (p *Processor) recordTTL(rec *orderRecord, open bool) time.Duration {
	if open || rec.keepsWatches() {
		return 0
	}
	return p.opts.Retention
}
