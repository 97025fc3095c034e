package sim

import (
	"bufio"
	"io"
	"time"
)

// CauseFunc receives the ground truth of one order's shared cause.
type CauseFunc func(Cause)

// Cause says that an order received an event about a cause that can touch many
// orders at once: the ground truth that incident grouping is measured against.
// It is reported once per order and cause, at the first event of the order about
// it (what orderwatch can observe), for published orders only.
//
// Kind and ID:
//   - CauseWarehouseOutage: the order got a WMS integration.error during an
//     outage; ID "<warehouse>/<outage start>", e.g. "DAL/2026-05-18T14:03:11.250Z".
//   - CauseCarrierPickup: a carrier.status about a late, missed (no-show) or
//     full (rolled) pickup; ID "<warehouse>/<carrier>/<ground|air|ltl>/<scheduled
//     time>", e.g. "DAL/ODFL/ltl/2026-05-18T20:00:00.000Z".
//   - CauseEDIMapping: an integration.error of a failed mapping; ID
//     "<customer>/<map break start>" for a trading partner's map break (all its
//     orders of the break share it), the order id for an independent failure.
//   - CausePriceContract: a pricing.exception contract_expired; ID
//     "<customer>/<start of the expired contract>".
//
// Times in IDs and At are UTC with milliseconds.
type Cause struct {
	OrderID string
	Kind    string
	ID      string
	At      time.Time // occurred_at of the event
}

// The kinds of Cause.
const (
	CauseWarehouseOutage = "warehouse_outage"
	CauseCarrierPickup   = "carrier_pickup"
	CauseEDIMapping      = "edi_mapping"
	CausePriceContract   = "price_contract"
)

// wantCause reports whether a cause of order o is to be reported: building its
// id costs allocations only then.
func (s *Simulator) wantCause(o *order) bool { return s.opts.Causes != nil && o.visible }

// cause reports a cause of order o at the current sim time; id is built from the
// parts given, joined by '/'.
func (s *Simulator) cause(o *order, kind string, parts ...string) {
	var idb [48]byte
	id := make([]byte, 0, 64)
	for i, p := range parts {
		if i > 0 {
			id = append(id, '/')
		}
		id = append(id, p...)
	}
	s.opts.Causes(Cause{
		OrderID: string(s.appendOrderID(idb[:0], o)),
		Kind:    kind,
		ID:      string(id),
		At:      time.UnixMilli(s.now).UTC(),
	})
}

// millis formats sim time t for a cause id.
func millis(t int64) string { return string(appendMillis(nil, t)) }

// kindNames name the pickup kinds in cause ids.
var kindNames = [numKinds]string{"ground", "air", "ltl"}

// CauseWriter writes causes as NDJSON, one object a line in the order they were
// reported: {"order_id":…,"kind":…,"id":…,"at":…}. It is not safe for concurrent
// use.
type CauseWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

// NewCauseWriter returns a CauseWriter on w.
func NewCauseWriter(w io.Writer) *CauseWriter {
	return &CauseWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write writes one cause; errors are kept for Flush. Its method value is a
// CauseFunc.
func (cw *CauseWriter) Write(c Cause) {
	if cw.err != nil {
		return
	}
	b := append(cw.buf[:0], `{"order_id":`...)
	b = appendJSONString(b, c.OrderID)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, c.Kind)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, c.ID)
	b = append(b, `,"at":"`...)
	b = appendMillis(b, c.At.UnixMilli())
	b = append(b, "\"}\n"...)
	cw.buf = b
	_, cw.err = cw.w.Write(b)
}

// Flush writes what is buffered and returns the first error of any write.
func (cw *CauseWriter) Flush() error {
	if cw.err != nil {
		return cw.err
	}
	return cw.w.Flush()
}
