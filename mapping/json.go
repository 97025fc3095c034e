package mapping

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// JSONRecord decodes a JSON object (a live message, a line of an NDJSON log) into a
// record whose Raw is b. Integers become CEL ints, other numbers doubles; bytes
// that are not one JSON object are a *RecordError with ReasonBadRecord.
func JSONRecord(b []byte) (Record, error) {
	if len(b) > MaxRecordBytes {
		return Record{}, &RecordError{Reason: ReasonOversize, Detail: fmt.Sprintf("record is %d bytes, limit %d", len(b), MaxRecordBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return Record{}, &RecordError{Reason: ReasonBadRecord, Detail: "not a JSON object: " + clip(err.Error())}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, &RecordError{Reason: ReasonBadRecord, Detail: "data after the JSON object"}
	}
	if m == nil {
		return Record{}, &RecordError{Reason: ReasonBadRecord, Detail: "not a JSON object: null"}
	}
	return Record{Fields: numbers(m).(map[string]any), Raw: b}, nil
}

// numbers turns the json.Numbers of v into int64 (when integral and in range) or
// float64, in place.
func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = numbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = numbers(x)
		}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
