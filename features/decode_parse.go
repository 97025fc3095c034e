package features

import (
	"bytes"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"
)

// The event parser: one pass over the bytes, specialised to the Event schema, that
// decodes what encoding/json decodes into an Event and rejects what it rejects.
// FuzzDecodeMatchesReference holds it to encoding/json (decodeReference). The
// encoding/json behaviours it keeps:
//
//   - Keys match field names case-insensitively, after unescaping, as
//     bytes.EqualFold does (so the Kelvin sign matches k and the long s matches s).
//   - A repeated key is decoded again over the first: the last wins, and a
//     repeated "data" object merges into the first.
//   - Unknown keys are ignored, but their values must be valid JSON nested at most
//     10000 deep.
//   - null leaves a string, number, bool, time or the data object as it was and
//     sets a pointer field (ship_cutoff, promised_at, on_time_share) to nil. A
//     top-level null is an empty event, which Validate then rejects.
//   - Strings are unescaped as encoding/json does, \uXXXX surrogate pairs
//     included; an unpaired surrogate becomes U+FFFD.
//   - Times go, quotes and escapes included, to time.Time.UnmarshalJSON, which
//     does not unescape: "\u0032026-05-21T14:03:11Z" is not a time.
//   - Integer fields take only integer literals (no fraction, no exponent) that
//     fit an int; float fields take any JSON number within float64 range (1e999
//     is not), rounded as strconv.ParseFloat rounds.
//   - A value of the wrong type (a string for a number, an array for data) rejects
//     the event, as encoding/json's UnmarshalTypeError does.
//   - Only JSON white space (space, tab, CR, LF) may surround the event object.
//
// It stops at the first error, where encoding/json checks the syntax of the whole
// input before decoding it; either way the reason is ReasonBadJSON.
//
// Strings are copied out of the input, so the Event never aliases b. To save
// allocations without tying long-lived strings to short-lived ones, a decoded event
// makes at most three string allocations: its id (kept in many stamps), its order
// id (a map key), and one shared by every other string (source, actor and the data
// strings, which an order's state keeps together if at all). A type of the
// taxonomy is the package's constant and costs nothing. The pointer fields share
// one allocation, made only when one of them is set.

// maxNestingDepth is encoding/json's limit on nested objects and arrays.
const maxNestingDepth = 10000

// field is a field of Event or EventData. The string fields come first, so that
// their spans fit a short array.
type field uint8

const (
	fieldID field = iota
	fieldType
	fieldOrderID
	fieldSource
	fieldActor
	fieldWarehouse
	fieldCustomerID
	fieldCustomerTier
	fieldChannel
	fieldCarrier
	fieldServiceLevel
	fieldRegion
	fieldChange
	fieldReason
	fieldText
	fieldSystem
	fieldCode
	fieldTimezone
	numStringFields // not a field: the string fields precede it

	fieldOccurredAt
	fieldSchema
	fieldData
	fieldShipCutoff
	fieldLines
	fieldUnits
	fieldValue
	fieldPromisedAt
	fieldShortUnits
	fieldQueue
	fieldCapacity
	fieldOutage
	fieldOnTimeShare
	fieldDelayMinutes
	fieldUnknown
)

// fieldNames are the JSON names, for case-insensitive matching and error details.
var fieldNames = [fieldUnknown]string{
	fieldID: "id", fieldType: "type", fieldOrderID: "order_id", fieldOccurredAt: "occurred_at",
	fieldSource: "source", fieldActor: "actor", fieldSchema: "schema", fieldData: "data",

	fieldWarehouse: "data.warehouse", fieldShipCutoff: "data.ship_cutoff",
	fieldCustomerID: "data.customer_id", fieldCustomerTier: "data.customer_tier",
	fieldChannel: "data.channel", fieldLines: "data.lines", fieldUnits: "data.units",
	fieldValue: "data.value", fieldCarrier: "data.carrier",
	fieldServiceLevel: "data.service_level", fieldPromisedAt: "data.promised_at",
	fieldRegion: "data.region", fieldChange: "data.change", fieldReason: "data.reason",
	fieldShortUnits: "data.short_units", fieldText: "data.text", fieldSystem: "data.system",
	fieldCode: "data.code", fieldQueue: "data.queue", fieldCapacity: "data.capacity",
	fieldOutage: "data.outage", fieldTimezone: "data.timezone",
	fieldOnTimeShare: "data.on_time_share", fieldDelayMinutes: "data.delay_minutes",
}

// eventField returns the Event field key names, or fieldUnknown.
func eventField(key []byte) field {
	switch string(key) {
	case "id":
		return fieldID
	case "type":
		return fieldType
	case "order_id":
		return fieldOrderID
	case "occurred_at":
		return fieldOccurredAt
	case "source":
		return fieldSource
	case "actor":
		return fieldActor
	case "schema":
		return fieldSchema
	case "data":
		return fieldData
	}
	return foldField(key, "", fieldID, fieldOrderID, fieldOccurredAt, fieldSource,
		fieldActor, fieldSchema, fieldData, fieldType)
}

// dataField returns the EventData field key names, or fieldUnknown.
func dataField(key []byte) field {
	switch string(key) {
	case "warehouse":
		return fieldWarehouse
	case "ship_cutoff":
		return fieldShipCutoff
	case "customer_id":
		return fieldCustomerID
	case "customer_tier":
		return fieldCustomerTier
	case "channel":
		return fieldChannel
	case "lines":
		return fieldLines
	case "units":
		return fieldUnits
	case "value":
		return fieldValue
	case "carrier":
		return fieldCarrier
	case "service_level":
		return fieldServiceLevel
	case "promised_at":
		return fieldPromisedAt
	case "region":
		return fieldRegion
	case "change":
		return fieldChange
	case "reason":
		return fieldReason
	case "short_units":
		return fieldShortUnits
	case "text":
		return fieldText
	case "system":
		return fieldSystem
	case "code":
		return fieldCode
	case "queue":
		return fieldQueue
	case "capacity":
		return fieldCapacity
	case "outage":
		return fieldOutage
	case "timezone":
		return fieldTimezone
	case "on_time_share":
		return fieldOnTimeShare
	case "delay_minutes":
		return fieldDelayMinutes
	}
	return foldField(key, "data.", fieldWarehouse, fieldShipCutoff, fieldCustomerID,
		fieldCustomerTier, fieldChannel, fieldLines, fieldUnits, fieldValue, fieldCarrier,
		fieldServiceLevel, fieldPromisedAt, fieldRegion, fieldChange, fieldReason,
		fieldShortUnits, fieldText, fieldSystem, fieldCode, fieldQueue, fieldCapacity,
		fieldOutage, fieldTimezone, fieldOnTimeShare, fieldDelayMinutes)
}

// foldField is the slow path of a key that is not spelled exactly as a field: the
// field among fs whose name (after prefix) equals key under Unicode case folding,
// as encoding/json matches.
func foldField(key []byte, prefix string, fs ...field) field {
	for _, f := range fs {
		if bytes.EqualFold(key, []byte(fieldNames[f][len(prefix):])) {
			return f
		}
	}
	return fieldUnknown
}

// span is where a string value's contents (without quotes) lie in the input.
type span struct {
	start, end int32
	escaped    bool // holds a backslash: must be unescaped
}

// eventPointers backs the pointer fields of an EventData in one allocation.
type eventPointers struct {
	shipCutoff, promisedAt time.Time
	onTimeShare            float64
}

// eventParser decodes one event. Its zero value with b and ev set is ready; it
// lives on the stack of Decode.
type eventParser struct {
	b    []byte
	pos  int
	ev   *Event
	strs [numStringFields]span
	set  uint32 // bit f: string field f has a value in strs
	ptrs *eventPointers
}

// parse decodes b into p.ev, which must be the zero Event, or returns a
// *DecodeError with ReasonBadJSON.
func (p *eventParser) parse() error {
	p.skipSpace()
	switch p.peek() {
	case '{':
		if err := p.object(false); err != nil {
			return err
		}
	case 'n':
		// encoding/json decodes a top-level null into nothing: an empty event.
		if err := p.scanLiteral("null"); err != nil {
			return err
		}
	default:
		if !p.valueStart() {
			return p.syntaxError("the event object")
		}
		return invalid(ReasonBadJSON, "the event at offset %d is a JSON %s, not an object", p.pos, p.valueKind())
	}
	p.skipSpace()
	if p.pos != len(p.b) {
		return invalid(ReasonBadJSON, "trailing data after the event object at offset %d", p.pos)
	}
	p.setStrings()
	return nil
}

// object decodes the Event object (data false) or the EventData object (data
// true) at p.pos.
func (p *eventParser) object(data bool) error {
	depth := 1
	if data {
		depth = 2
	}
	p.pos++ // {
	p.skipSpace()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	for {
		if p.peek() != '"' {
			return p.syntaxError("an object key")
		}
		ks, ke, escaped, err := p.scanString()
		if err != nil {
			return err
		}
		key := p.b[ks:ke]
		if escaped {
			var buf [64]byte
			key = appendUnquoted(buf[:0], key)
		}
		var f field
		if data {
			f = dataField(key)
		} else {
			f = eventField(key)
		}
		p.skipSpace()
		if p.peek() != ':' {
			return p.syntaxError("a colon after an object key")
		}
		p.pos++
		p.skipSpace()
		if err := p.value(f, depth); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError("a comma or a closing brace after an object value")
		}
	}
}

// value decodes the value at p.pos into field f of an object at depth.
func (p *eventParser) value(f field, depth int) error {
	ev := p.ev
	c := p.peek()
	if c == 'n' && f != fieldUnknown {
		if err := p.scanLiteral("null"); err != nil {
			return err
		}
		// null sets pointers to nil and leaves everything else as it was.
		switch f {
		case fieldShipCutoff:
			ev.Data.ShipCutoff = nil
		case fieldPromisedAt:
			ev.Data.PromisedAt = nil
		case fieldOnTimeShare:
			ev.Data.OnTimeShare = nil
		}
		return nil
	}
	switch f {
	case fieldUnknown:
		return p.skipValue(depth)
	case fieldData:
		if c != '{' {
			return p.typeError(f, "an object")
		}
		return p.object(true)
	case fieldOccurredAt:
		return p.timeValue(f, &ev.OccurredAt)
	case fieldShipCutoff:
		if c != '"' {
			return p.typeError(f, "a string")
		}
		if ev.Data.ShipCutoff == nil {
			ev.Data.ShipCutoff = &p.pointers().shipCutoff
		}
		return p.timeValue(f, ev.Data.ShipCutoff)
	case fieldPromisedAt:
		if c != '"' {
			return p.typeError(f, "a string")
		}
		if ev.Data.PromisedAt == nil {
			ev.Data.PromisedAt = &p.pointers().promisedAt
		}
		return p.timeValue(f, ev.Data.PromisedAt)
	case fieldSchema:
		return p.intValue(f, &ev.Schema)
	case fieldLines:
		return p.intValue(f, &ev.Data.Lines)
	case fieldUnits:
		return p.intValue(f, &ev.Data.Units)
	case fieldShortUnits:
		return p.intValue(f, &ev.Data.ShortUnits)
	case fieldQueue:
		return p.intValue(f, &ev.Data.Queue)
	case fieldCapacity:
		return p.intValue(f, &ev.Data.Capacity)
	case fieldValue:
		return p.floatValue(f, &ev.Data.Value)
	case fieldDelayMinutes:
		return p.floatValue(f, &ev.Data.DelayMinutes)
	case fieldOnTimeShare:
		if !isNumberStart(c) {
			return p.typeError(f, "a number")
		}
		if ev.Data.OnTimeShare == nil {
			ev.Data.OnTimeShare = &p.pointers().onTimeShare
		}
		return p.floatValue(f, ev.Data.OnTimeShare)
	case fieldOutage:
		switch c {
		case 't':
			ev.Data.Outage = true
			return p.scanLiteral("true")
		case 'f':
			ev.Data.Outage = false
			return p.scanLiteral("false")
		}
		return p.typeError(f, "true or false")
	}
	// A string field.
	if c != '"' {
		return p.typeError(f, "a string")
	}
	start, end, escaped, err := p.scanString()
	if err != nil {
		return err
	}
	p.strs[f] = span{start: int32(start), end: int32(end), escaped: escaped}
	p.set |= 1 << f
	return nil
}

func (p *eventParser) pointers() *eventPointers {
	if p.ptrs == nil {
		p.ptrs = new(eventPointers)
	}
	return p.ptrs
}

// timeValue decodes a time the way encoding/json does: the raw value, quotes and all,
// goes to UnmarshalJSON.
func (p *eventParser) timeValue(f field, t *time.Time) error {
	if p.peek() != '"' {
		return p.typeError(f, "a string")
	}
	start := p.pos
	if _, _, _, err := p.scanString(); err != nil {
		return err
	}
	if err := t.UnmarshalJSON(p.b[start:p.pos]); err != nil {
		return invalid(ReasonBadJSON, "%s at offset %d: %v", fieldNames[f], start, err)
	}
	return nil
}

// intValue decodes an integer literal that fits an int, as strconv.ParseInt does.
func (p *eventParser) intValue(f field, dst *int) error {
	start := p.pos
	if !isNumberStart(p.peek()) {
		return p.typeError(f, "a number")
	}
	if err := p.scanNumber(); err != nil {
		return err
	}
	n, ok := parseInt(p.b[start:p.pos])
	if !ok {
		return invalid(ReasonBadJSON, "%s at offset %d: %s is not an integer of Go type int", fieldNames[f], start, p.b[start:p.pos])
	}
	*dst = n
	return nil
}

// floatValue decodes a number that fits a float64, as strconv.ParseFloat does.
func (p *eventParser) floatValue(f field, dst *float64) error {
	start := p.pos
	if !isNumberStart(p.peek()) {
		return p.typeError(f, "a number")
	}
	if err := p.scanNumber(); err != nil {
		return err
	}
	x, ok := parseFloat(p.b[start:p.pos])
	if !ok {
		return invalid(ReasonBadJSON, "%s at offset %d: %s is out of float64 range", fieldNames[f], start, p.b[start:p.pos])
	}
	*dst = x
	return nil
}

// setStrings copies the string values out of the input into the Event: the id and
// the order id into one allocation of their own (short, bounded, kept longer than
// the rest: an applied event's id rides in its order's timeline), a type of the
// taxonomy as the constant, and every other string into one shared allocation.
func (p *eventParser) setStrings() {
	ev, set := p.ev, p.set
	switch hasID, hasOrder := set&(1<<fieldID) != 0, set&(1<<fieldOrderID) != 0; {
	case hasID && hasOrder:
		ev.ID, ev.OrderID = p.ownStrings(p.strs[fieldID], p.strs[fieldOrderID])
	case hasID:
		ev.ID = p.ownString(p.strs[fieldID])
	case hasOrder:
		ev.OrderID = p.ownString(p.strs[fieldOrderID])
	}
	set &^= 1<<fieldID | 1<<fieldOrderID
	if set&(1<<fieldType) != 0 {
		if t, ok := p.taxonomyType(p.strs[fieldType]); ok {
			ev.Type = t
			set &^= 1 << fieldType
		}
	}
	n := 0
	for m := set; m != 0; m &= m - 1 {
		s := p.strs[bits.TrailingZeros32(m)]
		n += int(s.end - s.start)
	}
	if n == 0 {
		return // no other string, or only empty ones: the fields are "" already
	}
	var sb strings.Builder
	sb.Grow(n) // unescaping never lengthens
	var ends [numStringFields]int32
	for m := set; m != 0; m &= m - 1 {
		f := bits.TrailingZeros32(m)
		s := p.strs[f]
		if raw := p.b[s.start:s.end]; s.escaped {
			writeUnquoted(&sb, raw)
		} else {
			sb.Write(raw)
		}
		ends[f] = int32(sb.Len())
	}
	all, from := sb.String(), int32(0)
	for m := set; m != 0; m &= m - 1 {
		f := bits.TrailingZeros32(m)
		*stringField(ev, field(f)) = all[from:ends[f]]
		from = ends[f]
	}
}

// stringField returns the string field f of ev.
func stringField(ev *Event, f field) *string {
	switch f {
	case fieldID:
		return &ev.ID
	case fieldType:
		return &ev.Type
	case fieldOrderID:
		return &ev.OrderID
	case fieldSource:
		return &ev.Source
	case fieldActor:
		return &ev.Actor
	case fieldWarehouse:
		return &ev.Data.Warehouse
	case fieldCustomerID:
		return &ev.Data.CustomerID
	case fieldCustomerTier:
		return &ev.Data.CustomerTier
	case fieldChannel:
		return &ev.Data.Channel
	case fieldCarrier:
		return &ev.Data.Carrier
	case fieldServiceLevel:
		return &ev.Data.ServiceLevel
	case fieldRegion:
		return &ev.Data.Region
	case fieldChange:
		return &ev.Data.Change
	case fieldReason:
		return &ev.Data.Reason
	case fieldText:
		return &ev.Data.Text
	case fieldSystem:
		return &ev.Data.System
	case fieldCode:
		return &ev.Data.Code
	case fieldTimezone:
		return &ev.Data.Timezone
	}
	panic("features: not a string field")
}

// ownString returns the string of s in its own allocation.
func (p *eventParser) ownString(s span) string {
	raw := p.b[s.start:s.end]
	if !s.escaped {
		return string(raw)
	}
	var buf [maxIDBytes]byte
	return string(appendUnquoted(buf[:0], raw))
}

// ownStrings returns the strings of a and b in one allocation of their own.
func (p *eventParser) ownStrings(a, b span) (string, string) {
	var buf [2 * maxIDBytes]byte
	both := p.appendString(buf[:0], a)
	n := len(both)
	s := string(p.appendString(both, b))
	return s[:n], s[n:]
}

// appendString appends the string of s, unquoted, to dst.
func (p *eventParser) appendString(dst []byte, s span) []byte {
	raw := p.b[s.start:s.end]
	if s.escaped {
		return appendUnquoted(dst, raw)
	}
	return append(dst, raw...)
}

// taxonomyType returns the constant of the type s spells, if it is one.
func (p *eventParser) taxonomyType(s span) (string, bool) {
	raw := p.b[s.start:s.end]
	if s.escaped {
		var buf [32]byte
		raw = appendUnquoted(buf[:0], raw)
	}
	for _, t := range Types {
		if t == string(raw) {
			return t, true
		}
	}
	return "", false
}

// valueStart reports whether a JSON value may start with the byte at p.pos.
func (p *eventParser) valueStart() bool {
	switch c := p.peek(); c {
	case '"', '{', '[', 't', 'f', 'n':
		return true
	default:
		return isNumberStart(c)
	}
}

// valueKind names the kind of JSON value that starts at p.pos.
func (p *eventParser) valueKind() string {
	switch c := p.peek(); c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// syntaxError reports what the parser expected at p.pos and found missing.
func (p *eventParser) syntaxError(want string) error {
	if p.pos >= len(p.b) {
		return invalid(ReasonBadJSON, "unexpected end of the event at offset %d, looking for %s", p.pos, want)
	}
	c, _ := utf8.DecodeRune(p.b[p.pos:])
	return invalid(ReasonBadJSON, "invalid character %q at offset %d, looking for %s", c, p.pos, want)
}

// typeError reports a value of the wrong type for field f, or a syntax error when
// no value starts at p.pos.
func (p *eventParser) typeError(f field, want string) error {
	if !p.valueStart() {
		return p.syntaxError("a value")
	}
	return invalid(ReasonBadJSON, "%s at offset %d: want %s, not a JSON %s", fieldNames[f], p.pos, want, p.valueKind())
}
