package mapping

import (
	"errors"
	"fmt"
)

// Reasons a record is rejected: machine-readable, stable, a bounded set (the
// rejects file's "reason", later the live DLQ's reason and a metric label).
const (
	// ReasonUnmapped: no entry's `when` matched the record (and no skip entry).
	ReasonUnmapped = "unmapped"
	// ReasonMissingField: an expression read a field the record does not have.
	ReasonMissingField = "missing_field"
	// ReasonBadTimestamp: a time (occurred_at or a time in data) is not RFC 3339
	// or not a valid CEL timestamp.
	ReasonBadTimestamp = "bad_timestamp"
	// ReasonWrongType: an expression gave a value of another type than its field
	// takes (a list for a string, a fraction for an integer).
	ReasonWrongType = "wrong_type"
	// ReasonEvalError: an expression failed otherwise (a division by zero, a key
	// missing from a table, the cost limit).
	ReasonEvalError = "eval_error"
	// ReasonInvalidEvent: the event the record mapped to is refused by the
	// schema-1 decoder (features.Decode); the detail carries the decoder's reason.
	ReasonInvalidEvent = "invalid_event"
	// ReasonOversize: the record is larger than MaxRecordBytes.
	ReasonOversize = "oversize"
	// ReasonBadRecord: the record cannot be read at all (a message that is not a
	// JSON object, a CSV row of another width than the header).
	ReasonBadRecord = "bad_record"
)

// Reasons lists every rejection reason, for summaries and metric pre-registration.
var Reasons = []string{
	ReasonUnmapped, ReasonMissingField, ReasonBadTimestamp, ReasonWrongType,
	ReasonEvalError, ReasonInvalidEvent, ReasonOversize, ReasonBadRecord,
}

// ErrBadMapping is returned (wrapped, with the entry, field and what to do) by
// Compile and Load when the mapping file is invalid.
var ErrBadMapping = errors.New("mapping: invalid mapping file")

// RecordError says why one record was not mapped. It is permanent: the same record
// and mapping always give it, so the record belongs in the rejects file (import) or
// the dead-letter stream (live).
type RecordError struct {
	Reason string // one of the Reason constants
	Entry  string // the mapping entry that failed; empty for unmapped and oversize
	Field  string // the field whose expression failed (id, occurred_at, data.warehouse, ...)
	Detail string // human-readable
}

func (e *RecordError) Error() string {
	s := "mapping: record rejected: " + e.Reason
	if e.Entry != "" {
		s += ": entry " + e.Entry
	}
	if e.Field != "" {
		s += " field " + e.Field
	}
	return s + ": " + e.Detail
}

func badMapping(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMapping, fmt.Sprintf(format, args...))
}
