package actions

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/jsonstr"
)

// The records the pipeline writes for every decision (the decision, its command
// and outbox entries, its open item) are encoded by hand here rather than by
// encoding/json's reflection: the bytes are the ones json.Marshal writes for the
// same value — fields in declaration order, map keys sorted, floats as ES6
// numbers, strings with HTML-safe escaping, times in RFC 3339 with nanoseconds —
// so the stored format does not change, records written by earlier releases read
// the same, and every reader still uses json.Unmarshal. encode_test.go holds the
// encoders to json.Marshal's output. Score points have a binary form of their own
// (scorepoint.go).

// What the record encoders accept: numbers that are finite, times of the years 0
// to 9999 with a zone offset under a day (what json.Marshal accepts), and strings
// of at most MaxRecordString bytes. Anything else is an error that wraps
// ErrBadRecord and names the field (and the map key), so a bad value is found
// where it was made, not in a reader; json.Unmarshal reads all the encoders write.

// MaxRecordString is the longest string a stored record (a decision, a command,
// an open item) holds, map keys included: far above any id, label, reason or
// note, so a value this long is a bug upstream, not something to store.
const MaxRecordString = 8 << 10

// encoder appends JSON to b. The first error (a NaN or infinite number, a time
// outside what RFC 3339 can say, an over-long string) sticks, wrapping the error
// json.Marshal would have returned, if any.
type encoder struct {
	b   []byte
	err error
	// field is the key of the field being written, key the map key within it, for
	// errors: raw sets field when its literal ends with a key, object sets key.
	field, key string
}

// raw appends a literal. A literal that ends with an object key (`,"name":`)
// makes name the field that errors name.
func (e *encoder) raw(s string) {
	e.b = append(e.b, s...)
	if n := len(s); n > 2 && s[n-1] == ':' && s[n-2] == '"' {
		if i := strings.IndexByte(s, '"'); i < n-2 {
			e.field, e.key = s[i+1:n-2], ""
		}
	}
}

func (e *encoder) str(s string) {
	if len(s) > MaxRecordString {
		e.fail(fmt.Errorf("string of %d bytes, limit %d", len(s), MaxRecordString))
	}
	e.b = jsonstr.Append(e.b, s)
}

// fail keeps the first error, naming the field being written.
func (e *encoder) fail(err error) {
	if e.err != nil {
		return
	}
	at := e.field
	if k := e.key; k != "" {
		if len(k) > 64 {
			k = k[:64] + "…"
		}
		at += "[" + strconv.Quote(k) + "]"
	}
	e.err = fmt.Errorf("%w: field %s: %w", ErrBadRecord, at, err)
}

func (e *encoder) bool(v bool) { e.b = strconv.AppendBool(e.b, v) }

func (e *encoder) int(v int) { e.b = strconv.AppendInt(e.b, int64(v), 10) }

func (e *encoder) float(f float64, bits int) {
	var err error
	if e.b, err = appendJSONFloat(e.b, f, bits); err != nil {
		e.fail(err)
	}
}

func (e *encoder) time(t time.Time) {
	var err error
	if e.b, err = appendJSONTime(e.b, t); err != nil {
		e.fail(err)
	}
}

func (e *encoder) strs(s []string) {
	if s == nil {
		e.raw("null")
		return
	}
	e.b = append(e.b, '[')
	for i, v := range s {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(v)
	}
	e.b = append(e.b, ']')
}

func (e *encoder) model(m *ModelRef) {
	e.raw(`{"name":`)
	e.str(m.Name)
	e.raw(`,"version":`)
	e.str(m.Version)
	if m.SHA256 != "" {
		e.raw(`,"sha256":`)
		e.str(m.SHA256)
	}
	e.b = append(e.b, '}')
}

// object writes m as json.Marshal does: its keys sorted, each value written by
// val, null for a nil map.
func object[V any](e *encoder, m map[string]V, val func(V)) {
	if m == nil {
		e.raw("null")
		return
	}
	var buf [16]entry[V]
	e.b = append(e.b, '{')
	for i, kv := range sortedEntries(buf[:0], m) {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.key = kv.k
		e.str(kv.k)
		e.b = append(e.b, ':')
		val(kv.v)
	}
	e.key = ""
	e.b = append(e.b, '}')
}

// floats writes a map of numbers with its keys sorted.
func (e *encoder) floats(m map[string]float64) {
	object(e, m, func(v float64) { e.float(v, 64) })
}

// strMap writes a map of strings with its keys sorted.
func (e *encoder) strMap(m map[string]string) { object(e, m, e.str) }

// featureNamesSorted are features.Names in the order json.Marshal writes them as
// map keys, and featureKeys the JSON of each as a key: `"name":`.
var featureNamesSorted, featureKeys = func() ([]string, []string) {
	ns := slices.Sorted(slices.Values(features.Names[:]))
	keys := make([]string, len(ns))
	for i, n := range ns {
		keys[i] = string(jsonstr.Append(nil, n)) + ":"
	}
	return ns, keys
}()

// features writes a decision's feature values. A map keyed by exactly the spec's
// names (what Decide makes) is written in their precomputed order; any other in
// sorted order too.
func (e *encoder) features(m map[string]float32) {
	if len(m) == len(featureNamesSorted) {
		mark := len(e.b)
		e.b = append(e.b, '{')
		ok := true
		for i, k := range featureNamesSorted {
			v, found := m[k]
			if !found {
				ok = false
				break
			}
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, featureKeys[i]...)
			e.key = k
			e.float(float64(v), 32)
		}
		e.key = ""
		if ok {
			e.b = append(e.b, '}')
			return
		}
		e.b = e.b[:mark]
	}
	object(e, m, func(v float32) { e.float(float64(v), 32) })
}

// entry is one key and value of a map.
type entry[V any] struct {
	k string
	v V
}

// sortedEntries appends m's entries to buf, sorted by key. It sorts by insertion,
// without the allocations of a generic sort: a record's maps are small.
func sortedEntries[V any](buf []entry[V], m map[string]V) []entry[V] {
	kv := buf
	for k, v := range m {
		kv = append(kv, entry[V]{k, v})
	}
	sortEntries(kv)
	return kv
}

// sortEntries sorts kv by key, by insertion.
func sortEntries[V any](kv []entry[V]) {
	for i := 1; i < len(kv); i++ {
		for j := i; j > 0 && kv[j].k < kv[j-1].k; j-- {
			kv[j], kv[j-1] = kv[j-1], kv[j]
		}
	}
}

// appendJSON appends d as json.Marshal writes it.
func (d *Decision) appendJSON(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.raw(`{"id":`)
	e.str(d.ID)
	e.raw(`,"order_id":`)
	e.str(d.OrderID)
	e.raw(`,"at":`)
	e.time(d.At)
	e.raw(`,"trigger_event":`)
	e.str(d.TriggerEvent)
	e.raw(`,"trigger_type":`)
	e.str(d.TriggerType)
	e.raw(`,"feature_spec":`)
	e.str(d.FeatureSpec)
	e.raw(`,"features":`)
	e.features(d.Features)
	if len(d.Attributes) > 0 {
		e.raw(`,"attributes":`)
		e.strMap(d.Attributes)
	}
	e.raw(`,"model":`)
	e.model(&d.Model)
	if d.ClassModel != nil {
		e.raw(`,"class_model":`)
		e.model(d.ClassModel)
	}
	e.raw(`,"scores":`)
	e.floats(d.Scores)
	if len(d.ShadowScores) > 0 {
		e.raw(`,"shadow_scores":`)
		e.floats(d.ShadowScores)
	}
	if len(d.Reasons) > 0 {
		e.raw(`,"reasons":`)
		e.strs(d.Reasons)
	}
	e.raw(`,"degraded":`)
	e.bool(d.Degraded)
	e.raw(`,"policy_version":`)
	e.str(d.PolicyVersion)
	e.raw(`,"rule_id":`)
	e.str(d.RuleID)
	e.raw(`,"action":`)
	e.str(d.Action)
	e.raw(`,"mode":`)
	e.str(d.Mode)
	e.raw(`,"status":`)
	e.str(d.Status)
	e.optStr(`,"suppressed_by":`, d.SuppressedBy)
	e.optStr(`,"suppressed_detail":`, d.SuppressedNote)
	e.optStr(`,"target":`, d.Target)
	e.optStr(`,"escalation":`, d.Escalation)
	e.optStr(`,"team":`, d.Team)
	if d.RequireAck {
		e.raw(`,"require_ack":true`)
	}
	if c := d.Cost; c != nil {
		e.raw(`,"cost":`)
		e.raw(`{"order_value":`)
		e.float(c.OrderValue, 64)
		e.raw(`,"miss_cost":`)
		e.float(c.MissCost, 64)
		e.raw(`,"effect":`)
		e.float(c.Effect, 64)
		e.raw(`,"expected_saving":`)
		e.float(c.ExpectedSaving, 64)
		e.raw(`,"action_cost":`)
		e.float(c.ActionCost, 64)
		e.b = append(e.b, '}')
	}
	e.raw(`,"episode":`)
	e.int(d.Episode)
	e.raw(`,"idempotency_key":`)
	e.str(d.IdempotencyKey)
	e.b = append(e.b, '}')
	return e.b, e.err
}

// optStr writes an omitempty string field: key (with its leading comma) and value,
// unless the value is empty.
func (e *encoder) optStr(key, v string) {
	if v != "" {
		e.raw(key)
		e.str(v)
	}
}

// optTime writes an omitzero time field.
func (e *encoder) optTime(key string, t time.Time) {
	if !t.IsZero() {
		e.raw(key)
		e.time(t)
	}
}

// appendJSON appends c as json.Marshal writes it.
func (c *Command) appendJSON(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.raw(`{"decision_id":`)
	e.str(c.DecisionID)
	e.raw(`,"order_id":`)
	e.str(c.OrderID)
	e.raw(`,"action":`)
	e.str(c.Action)
	e.raw(`,"rule_id":`)
	e.str(c.RuleID)
	e.raw(`,"policy_version":`)
	e.str(c.PolicyVersion)
	e.raw(`,"risk":`)
	e.float(c.Risk, 64)
	if len(c.Classes) > 0 {
		e.raw(`,"classes":`)
		e.floats(c.Classes)
	}
	if len(c.Reasons) > 0 {
		e.raw(`,"reasons":`)
		e.strs(c.Reasons)
	}
	e.raw(`,"degraded":`)
	e.bool(c.Degraded)
	e.raw(`,"idempotency_key":`)
	e.str(c.IdempotencyKey)
	e.raw(`,"decided_at":`)
	e.time(c.DecidedAt)
	e.optStr(`,"warehouse":`, c.Warehouse)
	e.optStr(`,"customer":`, c.Customer)
	e.optStr(`,"carrier":`, c.Carrier)
	e.optStr(`,"target":`, c.Target)
	e.optStr(`,"team":`, c.Team)
	e.optStr(`,"approved_by":`, c.ApprovedBy)
	e.optStr(`,"approval_reason":`, c.ApprovalReason)
	e.optTime(`,"approved_at":`, c.ApprovedAt)
	e.optStr(`,"escalates":`, c.Escalates)
	if c.Tier != 0 {
		e.raw(`,"tier":`)
		e.int(c.Tier)
	}
	e.optStr(`,"waiting":`, c.Waiting)
	e.optTime(`,"waiting_since":`, c.WaitingSince)
	e.b = append(e.b, '}')
	return e.b, e.err
}

// appendJSON appends j as json.Marshal writes it. j.Command must be compact JSON
// that json.Marshal wrote (so holds nothing its HTML-safe compaction would
// change), as appendJSON of a Command is.
func (j *job) appendJSON(b []byte) []byte {
	e := encoder{b: b}
	e.raw(`{"target":`)
	e.str(j.Target)
	e.raw(`,"action":`)
	e.str(j.Action)
	e.raw(`,"msg_id":`)
	e.str(j.MsgID)
	e.raw(`,"command":`)
	if j.Command == nil {
		e.raw("null")
	} else {
		e.b = append(e.b, j.Command...)
	}
	e.b = append(e.b, '}')
	return e.b
}

// appendJSON appends it as json.Marshal writes it.
func (it *OpenItem) appendJSON(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.raw(`{"kind":`)
	e.str(it.Kind)
	e.raw(`,"decision_id":`)
	e.str(it.DecisionID)
	e.raw(`,"order_id":`)
	e.str(it.OrderID)
	e.raw(`,"action":`)
	e.str(it.Action)
	e.raw(`,"rule_id":`)
	e.str(it.RuleID)
	e.raw(`,"idempotency_key":`)
	e.str(it.IdempotencyKey)
	e.raw(`,"since":`)
	e.time(it.Since)
	e.raw(`,"tier":`)
	e.int(it.Tier)
	e.optStr(`,"team":`, it.Team)
	e.optTime(`,"due":`, it.Due)
	if len(it.Ladder) > 0 {
		e.raw(`,"ladder":[`)
		for i, t := range it.Ladder {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.raw(`{"team":`)
			e.str(t.Team)
			e.raw(`,"sla":`)
			e.str(time.Duration(t.SLA).String()) // Duration.MarshalText
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	if it.RequireAck {
		e.raw(`,"require_ack":true`)
	}
	e.b = append(e.b, '}')
	return e.b, e.err
}

// exactInts bounds the integers a float32 ([0]) and a float64 ([1]) hold next to
// their neighbours: 2^24 and 2^53.
var exactInts = [2]float64{1 << 24, 1 << 53}

// appendJSONFloat appends f as encoding/json writes a float of the size bits: like
// %g, but in positional notation from 1e-6 up to 1e21, and exponents unpadded.
// NaN and infinities are json.Marshal's UnsupportedValueError.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, &json.UnsupportedValueError{Value: reflect.ValueOf(f), Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	if f == math.Trunc(f) && math.Abs(f) < exactInts[bits>>6] && (f != 0 || !math.Signbit(f)) {
		// An integer below where the size's spacing passes 1: the shortest digits
		// that read back as f are all of its digits.
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONTime appends t as time.Time.MarshalJSON writes it: quoted RFC 3339
// with nanoseconds. A time it refuses (a year outside 0..9999, a zone offset of a
// day or more) is the error json.Marshal returns.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	n0 := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	// The checks of time.Time.MarshalJSON, on what it wrote.
	switch n := len(b); {
	case b[n0+1+len("9999")] != '-':
		return b[:n0], timeError(t)
	case b[n-1] != 'Z':
		if c := b[n-len("Z07:00")]; '0' <= c && c <= '9' || 10*(b[n-5]-'0')+(b[n-4]-'0') >= 24 {
			return b[:n0], timeError(t)
		}
	}
	return append(b, '"'), nil
}

func timeError(t time.Time) error {
	_, err := t.MarshalJSON()
	return &json.MarshalerError{Type: reflect.TypeFor[time.Time](), Err: err}
}
