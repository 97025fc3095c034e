package features

import (
	"math"
	"strconv"
	"time"
)

// The bounds of what producers send: every field of an event is checked here, by
// Validate, before anything is folded, whatever the event's type (a field a type
// does not use is checked too: a producer that sends it wrong sends it wrong). An
// id or label outside its bounds is ReasonBadID, a number ReasonOutOfRange, a time
// ReasonAbsurdTime; each detail names the field and its bounds. The README's event
// schema section lists the same bounds.

// Length limits of the string fields, in bytes.
const (
	// maxLabelBytes bounds the values that become keys of context aggregates,
	// metric label values or categorical features: warehouse, carrier, customer
	// tier, channel, service level, region, source, system, timezone.
	maxLabelBytes = 64
	// maxCodeBytes bounds short codes that are shown, never keyed: change,
	// reason, code.
	maxCodeBytes = 128
	// MaxTextBytes bounds a free text (data.text) as an order keeps it: a longer
	// one is accepted and kept cut at a rune boundary below this length (the
	// event itself, with the whole text, is in the timeline).
	MaxTextBytes = 4096
)

// A field's valid range. The bounds are wide enough for any real order or
// warehouse; what lies beyond is a producer bug (a unit mix-up, an overflow, a
// sentinel value), and folding it would poison the features of many orders.
type numRange struct {
	f      field
	lo, hi float64
}

// Ranges of the numeric data fields, inclusive.
var (
	rangeLines        = numRange{fieldLines, 0, 100_000}
	rangeUnits        = numRange{fieldUnits, 0, 10_000_000}
	rangeShortUnits   = numRange{fieldShortUnits, 0, 10_000_000}
	rangeValue        = numRange{fieldValue, 0, 1e10}
	rangeQueue        = numRange{fieldQueue, 0, 10_000_000}
	rangeCapacity     = numRange{fieldCapacity, 0, 10_000_000}
	rangeOnTimeShare  = numRange{fieldOnTimeShare, 0, 1}
	rangeDelayMinutes = numRange{fieldDelayMinutes, -10080, 43200} // a week early .. 30 days late
)

// check returns a *DecodeError with ReasonOutOfRange unless lo <= x <= hi (NaN is
// never within).
func (r numRange) check(x float64) error {
	if x >= r.lo && x <= r.hi {
		return nil
	}
	return invalid(ReasonOutOfRange, "%s %s is outside %s..%s", fieldNames[r.f],
		strconv.FormatFloat(x, 'g', 6, 64), strconv.FormatFloat(r.lo, 'g', -1, 64), strconv.FormatFloat(r.hi, 'g', -1, 64))
}

func (r numRange) checkInt(n int) error {
	if float64(n) >= r.lo && float64(n) <= r.hi {
		return nil
	}
	return invalid(ReasonOutOfRange, "%s %d is outside %s..%s", fieldNames[r.f], n,
		strconv.FormatFloat(r.lo, 'g', -1, 64), strconv.FormatFloat(r.hi, 'g', -1, 64))
}

// checkBounds checks every field of ev against its bounds; the envelope's id,
// order id and occurred_at are checked by Validate.
func checkBounds(ev *Event) error {
	d := &ev.Data
	labels := [...]struct {
		f   field
		s   string
		max int
	}{
		{fieldSource, ev.Source, maxLabelBytes},
		{fieldActor, ev.Actor, maxIDBytes},
		{fieldWarehouse, d.Warehouse, maxLabelBytes},
		{fieldCustomerID, d.CustomerID, maxIDBytes},
		{fieldCustomerTier, d.CustomerTier, maxLabelBytes},
		{fieldChannel, d.Channel, maxLabelBytes},
		{fieldCarrier, d.Carrier, maxLabelBytes},
		{fieldServiceLevel, d.ServiceLevel, maxLabelBytes},
		{fieldRegion, d.Region, maxLabelBytes},
		{fieldSystem, d.System, maxLabelBytes},
		{fieldTimezone, d.Timezone, maxLabelBytes},
		{fieldChange, d.Change, maxCodeBytes},
		{fieldReason, d.Reason, maxCodeBytes},
		{fieldCode, d.Code, maxCodeBytes},
	}
	for _, l := range labels {
		if !goodLabel(l.s, l.max) {
			return invalid(ReasonBadID, "%s must be at most %d bytes without control characters (it is %d bytes)",
				fieldNames[l.f], l.max, len(l.s))
		}
	}
	for _, c := range [...]struct {
		r numRange
		n int
	}{{rangeLines, d.Lines}, {rangeUnits, d.Units}, {rangeShortUnits, d.ShortUnits},
		{rangeQueue, d.Queue}, {rangeCapacity, d.Capacity}} {
		if err := c.r.checkInt(c.n); err != nil {
			return err
		}
	}
	if err := rangeValue.check(d.Value); err != nil {
		return err
	}
	if err := rangeDelayMinutes.check(d.DelayMinutes); err != nil {
		return err
	}
	if d.OnTimeShare != nil {
		if err := rangeOnTimeShare.check(*d.OnTimeShare); err != nil {
			return err
		}
	}
	for _, t := range [...]struct {
		f field
		t *time.Time
	}{{fieldShipCutoff, d.ShipCutoff}, {fieldPromisedAt, d.PromisedAt}} {
		if t.t != nil && !plausibleTime(*t.t) {
			return invalid(ReasonAbsurdTime, "%s %s is outside 2000..2099", fieldNames[t.f], t.t.Format(time.RFC3339))
		}
	}
	return nil
}

// plausibleTime reports whether t lies in the years 2000..2099, the window of
// every time of an event.
func plausibleTime(t time.Time) bool { return !t.Before(minEventTime) && t.Before(maxEventTime) }

// goodLabel reports whether s is at most max bytes without control characters
// (C0, DEL or C1; s is valid UTF-8, so a C1 control is 0xC2 0x80..0x9F). It may be
// empty: whether a field is required is the type's business.
func goodLabel(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f:
			return false
		}
	}
	return true
}

// cutText returns s cut to at most MaxTextBytes at a rune boundary.
func cutText(s string) string {
	if len(s) <= MaxTextBytes {
		return s
	}
	i := MaxTextBytes
	for i > 0 && s[i]&0xc0 == 0x80 { // a continuation byte: back to the rune's start
		i--
	}
	return s[:i]
}

// finite returns x, or def when x is NaN or infinite.
func finite(x, def float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return def
	}
	return x
}
