package mapping

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/orderwatch/orderwatch/features"
)

// Record is one foreign record: the fields the expressions see as r, and the bytes
// a derived id is a hash of (the message body, the CSV row as read).
type Record struct {
	// Fields is r: a decoded JSON object (map[string]any), or a CSV row as column
	// -> string with the empty cells left out (so has(r.col) tests for a value).
	Fields map[string]any
	// Raw is the record as received; same bytes, same derived ids.
	Raw []byte
}

// Event is one schema-1 event a record mapped to.
type Event struct {
	Entry string         // the name of the entry that produced it
	Event features.Event // as features.Decode read JSON back
	JSON  []byte         // the encoded event, accepted by features.Decode
}

// Map maps one record to the events of every entry whose `when` holds, in file
// order, up to the first skip entry that holds. A record no entry holds for is a
// *RecordError with ReasonUnmapped; a record a skip entry holds for first gives no
// event and no error. Any failing expression, or an event the decoder refuses, is a
// *RecordError with its reason, and no event of the record is returned.
func (m *Mapping) Map(rec Record) ([]Event, error) {
	if len(rec.Raw) > MaxRecordBytes {
		return nil, &RecordError{Reason: ReasonOversize, Detail: fmt.Sprintf("record is %d bytes, limit %d", len(rec.Raw), MaxRecordBytes)}
	}
	act := map[string]any{"r": rec.Fields, "tables": m.tables}
	var out []Event
	matched := false
	for _, e := range m.entries {
		v, err := e.when.eval(act)
		if err != nil {
			re := recordErr(e, e.when, err)
			if re.Reason == ReasonMissingField {
				continue // a record of another shape: this entry does not hold
			}
			return nil, re
		}
		ok, isBool := v.(bool)
		if !isBool {
			return nil, &RecordError{Reason: ReasonWrongType, Entry: e.name, Field: "when", Detail: fmt.Sprintf("%q gave %T, want a bool", e.when.text, v)}
		}
		if !ok {
			continue
		}
		if e.skip {
			if !matched {
				return nil, nil
			}
			break
		}
		matched = true
		ev, err := e.build(act, rec.Raw)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.Event.ID == ev.Event.ID {
				return nil, &RecordError{Reason: ReasonInvalidEvent, Entry: e.name, Field: "id",
					Detail: fmt.Sprintf("id %q is also the id of entry %s's event for this record: give the entries distinct ids", ev.Event.ID, o.Entry)}
			}
		}
		out = append(out, ev)
	}
	if !matched {
		return nil, &RecordError{Reason: ReasonUnmapped, Detail: "no entry's when holds for this record"}
	}
	return out, nil
}

// Kind evaluates the mapping's kind expression over rec (what the summaries count
// records by, e.g. the CSV's activity), or returns "" when there is none or it
// fails; at most 64 bytes.
func (m *Mapping) Kind(rec Record) string {
	if m.kind == nil {
		return ""
	}
	v, err := m.kind.eval(map[string]any{"r": rec.Fields, "tables": m.tables})
	s, ok := v.(string)
	if err != nil || !ok {
		return ""
	}
	if len(s) > 64 {
		i := 64
		for i > 0 && s[i]&0xc0 == 0x80 { // a continuation byte: back to the rune's start
			i--
		}
		s = s[:i]
	}
	return s
}

// build evaluates an entry's expressions into a decoded, validated event.
func (e *entry) build(act map[string]any, raw []byte) (Event, error) {
	ev := features.Event{Type: e.typ, Schema: features.SchemaVersion}
	var err error
	if e.id != nil {
		if ev.ID, err = e.str(act, e.id); err != nil {
			return Event{}, err
		}
	} else {
		ev.ID = derivedID(e.name, raw)
	}
	if e.orderID != nil {
		if ev.OrderID, err = e.str(act, e.orderID); err != nil {
			return Event{}, err
		}
	}
	t, err := e.time(act, e.occurred)
	if err != nil {
		return Event{}, err
	}
	if t == nil {
		return Event{}, &RecordError{Reason: ReasonMissingField, Entry: e.name, Field: "occurred_at", Detail: fmt.Sprintf("%q gave no time", e.occurred.text)}
	}
	ev.OccurredAt = *t
	if e.source != nil {
		if ev.Source, err = e.str(act, e.source); err != nil {
			return Event{}, err
		}
	}
	if e.actor != nil {
		if ev.Actor, err = e.str(act, e.actor); err != nil {
			return Event{}, err
		}
	}
	for _, d := range e.data {
		if err := e.setData(act, &ev.Data, d); err != nil {
			return Event{}, err
		}
	}
	b, err := json.Marshal(&ev)
	if err != nil {
		return Event{}, &RecordError{Reason: ReasonInvalidEvent, Entry: e.name, Detail: err.Error()}
	}
	// The real decoder has the last word: what it accepts here, run accepts.
	var back features.Event
	if err := features.Decode(b, &back); err != nil {
		detail := err.Error()
		if de, ok := err.(*features.DecodeError); ok {
			detail = de.Reason + ": " + de.Detail
		}
		return Event{}, &RecordError{Reason: ReasonInvalidEvent, Entry: e.name, Detail: detail}
	}
	return Event{Entry: e.name, Event: back, JSON: b}, nil
}

// derivedID is the id of an entry's event when the mapping gives no id expression:
// stable, so the same record mapped again (a redelivery, an import run twice) gives
// the same id and is recognised as a duplicate.
func derivedID(entry string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(entry))
	h.Write([]byte{0})
	h.Write(raw)
	return "m-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (e *entry) setData(act map[string]any, d *features.EventData, x dataExpr) error {
	switch x.kind {
	case kindTime:
		t, err := e.time(act, x.e)
		if err != nil || t == nil {
			return err
		}
		switch x.name {
		case "ship_cutoff":
			d.ShipCutoff = t
		case "promised_at":
			d.PromisedAt = t
		}
		return nil
	case kindString:
		s, err := e.str(act, x.e)
		if err != nil {
			return err
		}
		setString(d, x.name, s)
		return nil
	case kindBool:
		v, err := x.e.eval(act)
		if err != nil {
			return recordErr(e, x.e, err)
		}
		switch b := v.(type) {
		case nil:
		case bool:
			d.Outage = b
		default:
			return e.wrongType(x.e, v, x.kind)
		}
		return nil
	}
	v, err := x.e.eval(act)
	if err != nil {
		return recordErr(e, x.e, err)
	}
	f, ok := number(v)
	if v == nil {
		return nil
	}
	if !ok || (x.kind == kindInt && (f != math.Trunc(f) || math.Abs(f) > 1<<53)) {
		return e.wrongType(x.e, v, x.kind)
	}
	switch x.name {
	case "lines":
		d.Lines = int(f)
	case "units":
		d.Units = int(f)
	case "short_units":
		d.ShortUnits = int(f)
	case "queue":
		d.Queue = int(f)
	case "capacity":
		d.Capacity = int(f)
	case "value":
		d.Value = f
	case "on_time_share":
		d.OnTimeShare = &f
	case "delay_minutes":
		d.DelayMinutes = f
	}
	return nil
}

func setString(d *features.EventData, name, s string) {
	switch name {
	case "warehouse":
		d.Warehouse = s
	case "customer_id":
		d.CustomerID = s
	case "customer_tier":
		d.CustomerTier = s
	case "channel":
		d.Channel = s
	case "carrier":
		d.Carrier = s
	case "service_level":
		d.ServiceLevel = s
	case "region":
		d.Region = s
	case "change":
		d.Change = s
	case "reason":
		d.Reason = s
	case "text":
		d.Text = s
	case "system":
		d.System = s
	case "code":
		d.Code = s
	case "timezone":
		d.Timezone = s
	}
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	}
	return 0, false
}

// str evaluates a string field; an absent optional or null gives "". An int is
// written in decimal (ids and order numbers are often numbers in JSON).
func (e *entry) str(act map[string]any, x *expr) (string, error) {
	v, err := x.eval(act)
	if err != nil {
		return "", recordErr(e, x, err)
	}
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	case int64, uint64:
		return fmt.Sprint(s), nil
	case float64:
		if s == math.Trunc(s) && math.Abs(s) < 1<<53 {
			return fmt.Sprintf("%.0f", s), nil
		}
	}
	return "", e.wrongType(x, v, kindString)
}

// time evaluates a time field: a CEL timestamp or an RFC 3339 string; nil when the
// expression gives an absent optional, null or "".
func (e *entry) time(act map[string]any, x *expr) (*time.Time, error) {
	v, err := x.eval(act)
	if err != nil {
		return nil, recordErr(e, x, err)
	}
	switch t := v.(type) {
	case nil:
		return nil, nil
	case time.Time:
		u := t.UTC()
		return &u, nil
	case string:
		if t == "" {
			return nil, nil
		}
		p, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return nil, &RecordError{Reason: ReasonBadTimestamp, Entry: e.name, Field: x.field,
				Detail: fmt.Sprintf("%q gave %q, not an RFC 3339 time (2026-05-21T14:03:11Z)", x.text, clip(t))}
		}
		p = p.UTC()
		return &p, nil
	}
	return nil, e.wrongType(x, v, kindTime)
}

func (e *entry) wrongType(x *expr, v any, k kind) error {
	return &RecordError{Reason: ReasonWrongType, Entry: e.name, Field: x.field,
		Detail: fmt.Sprintf("%q gave %s, want %s", x.text, clip(fmt.Sprintf("%T %v", v, v)), k)}
}

// eval runs the program and gives its value as Go: nil (null, absent optional),
// bool, int64, uint64, float64, string, time.Time, or another Go value.
func (x *expr) eval(act map[string]any) (any, error) {
	v, _, err := x.prg.Eval(act)
	if err != nil {
		return nil, err
	}
	return native(v), nil
}

func native(v ref.Val) any {
	switch t := v.(type) {
	case types.Null:
		return nil
	case *types.Optional:
		if !t.HasValue() {
			return nil
		}
		return native(t.GetValue())
	case types.Timestamp:
		return t.Time
	}
	return v.Value()
}

// recordErr classifies a CEL evaluation error into a reason.
func recordErr(e *entry, x *expr, err error) *RecordError {
	msg := err.Error()
	lower := strings.ToLower(msg)
	reason := ReasonEvalError
	switch {
	case strings.Contains(msg, "no such key"), strings.Contains(msg, "no such attribute"):
		reason = ReasonMissingField
	case strings.Contains(lower, "timestamp"), strings.Contains(msg, "parsing time"):
		reason = ReasonBadTimestamp
	case strings.Contains(msg, "no such overload"), strings.Contains(msg, "type conversion"):
		reason = ReasonWrongType
	}
	return &RecordError{Reason: reason, Entry: e.name, Field: x.field, Detail: fmt.Sprintf("%q: %s", x.text, clip(msg))}
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
