package features

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Dead-letter reasons: machine-readable, stable, used as the DLQ subject token and as
// the reason label of orderwatch_dlq_total.
const (
	ReasonBadJSON        = "bad_json"
	ReasonInvalidUTF8    = "invalid_utf8"
	ReasonOversize       = "oversize"
	ReasonWrongSchema    = "wrong_schema"
	ReasonUnknownType    = "unknown_type"
	ReasonMissingID      = "missing_id"
	ReasonMissingTime    = "missing_occurred_at"
	ReasonAbsurdTime     = "absurd_occurred_at"
	ReasonMissingOrderID = "missing_order_id"
	ReasonMissingField   = "missing_field"
	ReasonBadID          = "bad_id"
	// ReasonOutOfRange: a number in data lies outside its documented range
	// (bounds.go); the detail names the field and the range.
	ReasonOutOfRange = "out_of_range"
	// ReasonSubjectMismatch: the subject the event was read from names another
	// type or order than the event, or has no shape of the contract
	// (CheckSubject); the detail says which.
	ReasonSubjectMismatch = "subject_mismatch"
	// ReasonUnpartitioned: an order event published to orders.<type>, without
	// its order in the subject, so in no partition (CheckSubject).
	ReasonUnpartitioned = "unpartitioned"
)

// maxIDBytes bounds event and order ids; they become parts of store keys.
const maxIDBytes = 128

// Reasons lists every dead-letter reason, for metrics label pre-registration.
var Reasons = []string{
	ReasonBadJSON, ReasonInvalidUTF8, ReasonOversize, ReasonWrongSchema,
	ReasonUnknownType, ReasonMissingID, ReasonMissingTime, ReasonAbsurdTime,
	ReasonMissingOrderID, ReasonMissingField, ReasonBadID, ReasonOutOfRange,
	ReasonSubjectMismatch, ReasonUnpartitioned,
}

// DecodeError says why an encoded event was rejected. It is permanent: the same bytes
// will always be rejected, so the message belongs in the dead-letter stream.
type DecodeError struct {
	Reason string // one of the Reason constants
	Detail string // human-readable, names the offending field
}

func (e *DecodeError) Error() string {
	return "features: invalid event: " + e.Reason + ": " + e.Detail
}

func invalid(reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Plausible event times: anything outside this range is a producer bug (a zero
// time, seconds taken for milliseconds) and would poison time-based features.
var (
	minEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxEventTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Decode parses and validates one encoded event into ev. It returns a *DecodeError
// for every kind of bad input. Decode is safe for concurrent use on distinct ev.
//
// It accepts and decodes exactly what encoding/json would (see decode_parse.go),
// in one pass specialised to the schema; the strings of ev never alias b.
func Decode(b []byte, ev *Event) error {
	if len(b) > MaxEventBytes {
		return invalid(ReasonOversize, "event is %d bytes, limit %d", len(b), MaxEventBytes)
	}
	if !utf8.Valid(b) {
		return invalid(ReasonInvalidUTF8, "event is not valid UTF-8")
	}
	*ev = Event{}
	p := eventParser{b: b, ev: ev}
	if err := p.parse(); err != nil {
		return err
	}
	return Validate(ev)
}

// Validate checks the envelope, the required fields of ev's type and the bounds of
// every field (bounds.go).
func Validate(ev *Event) error {
	if err := validateRequired(ev); err != nil {
		return err
	}
	return checkBounds(ev)
}

// validateRequired checks the envelope and the required fields of ev's type.
func validateRequired(ev *Event) error {
	if ev.Schema != SchemaVersion {
		return invalid(ReasonWrongSchema, "schema is %d, this build reads %d", ev.Schema, SchemaVersion)
	}
	if ev.ID == "" {
		return invalid(ReasonMissingID, "field id is empty")
	}
	if !goodID(ev.ID) {
		return invalid(ReasonBadID, "id must be 1..%d bytes without control characters", maxIDBytes)
	}
	if !KnownType(ev.Type) {
		return invalid(ReasonUnknownType, "type %q is not in the taxonomy", truncate(ev.Type, 64))
	}
	if ev.OccurredAt.IsZero() {
		return invalid(ReasonMissingTime, "field occurred_at is missing")
	}
	if !plausibleTime(ev.OccurredAt) {
		return invalid(ReasonAbsurdTime, "occurred_at %s is outside 2000..2099", ev.OccurredAt.Format(time.RFC3339))
	}
	switch {
	case ev.Type == TypeWarehouseLoad:
		if ev.Data.Warehouse == "" {
			return invalid(ReasonMissingField, "warehouse.load needs data.warehouse")
		}
		return nil
	case ev.Type == TypeCarrierPerformance:
		if ev.Data.Carrier == "" {
			return invalid(ReasonMissingField, "carrier.performance needs data.carrier")
		}
		return nil
	case ev.OrderID == "":
		return invalid(ReasonMissingOrderID, "%s needs order_id", ev.Type)
	case !goodID(ev.OrderID):
		return invalid(ReasonBadID, "order_id must be 1..%d bytes without control characters", maxIDBytes)
	}
	if ev.Type == TypeOrderCreated {
		if ev.Data.Warehouse == "" {
			return invalid(ReasonMissingField, "order.created needs data.warehouse")
		}
		if ev.Data.ShipCutoff == nil {
			return invalid(ReasonMissingField, "order.created needs data.ship_cutoff")
		}
	}
	return nil
}

func goodID(s string) bool { return goodLabel(s, maxIDBytes) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
