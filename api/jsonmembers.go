package api

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// The at-risk page reads a few members of JSON values it does not own (open
// items, decision records) without decoding the rest: a record's features
// and scores, an item's ladder. What the walk cannot read exactly as
// encoding/json would, encoding/json decodes.

// eachMember calls fn with the name and raw value of each top-level member of
// the JSON object v, in order, stepping over the values without decoding
// them; raw is valid JSON only as far as its brackets and strings go. It
// returns false when v is not an object the walk reads (or a name holds
// escapes) or fn returns false: the caller decodes v with encoding/json then.
func eachMember(v []byte, fn func(name, raw []byte) bool) bool {
	i := skipSpace(v, 0)
	if i == len(v) || v[i] != '{' {
		return false
	}
	i = skipSpace(v, i+1)
	if i < len(v) && v[i] == '}' {
		return true
	}
	for i < len(v) {
		name, esc, j := scanString(v, i)
		if j < 0 || esc { // encoding/json unescapes names
			return false
		}
		if i = skipSpace(v, j); i == len(v) || v[i] != ':' {
			return false
		}
		i = skipSpace(v, i+1)
		start := i
		if i = skipValue(v, i); i < 0 || !fn(name, v[start:i]) {
			return false
		}
		if i = skipSpace(v, i); i == len(v) {
			return false
		}
		switch v[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(v, i+1)
		default:
			return false
		}
	}
	return false
}

// plainString returns the bytes of the JSON string raw when it holds no
// escapes and is valid UTF-8 (what encoding/json decodes to them as they are).
func plainString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		return nil, false
	}
	return s, true
}

// foldsTo reports whether encoding/json would take name for one of names
// (it matches them without regard to case) without being exactly it.
func foldsTo(name []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(name, []byte(n)) {
			return true
		}
	}
	return false
}

// openItemFields reads the order_id and team of an open item's JSON
// (actions.OpenItem) from its top-level members (its ladder names teams
// too). ok is false when the walk cannot read them as encoding/json would:
// the caller decodes v then. The strings returned share v's memory.
func openItemFields(v []byte) (order, team []byte, ok bool) {
	ok = eachMember(v, func(name, raw []byte) bool {
		var ok bool
		switch string(name) {
		case "order_id":
			order, ok = plainString(raw)
		case "team":
			team, ok = plainString(raw)
		default:
			ok = !foldsTo(name, "order_id", "team")
		}
		return ok
	})
	if !ok {
		return nil, nil, false
	}
	return order, team, true
}

// rowRecord is what a row of the at-risk page shows of a decision record
// (actions.Decision).
type rowRecord struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	RuleID  string    `json:"rule_id"`
	Action  string    `json:"action"`
	Mode    string    `json:"mode"`
	Status  string    `json:"status"`
	Reasons []string  `json:"reasons"`
}

// decodeRowRecord reads into d the members of the decision record v a row
// shows, as json.Unmarshal(v, d) would, stepping over the others (features,
// scores, attributes) without decoding them: a record damaged inside one of
// those is read all the same.
func decodeRowRecord(v []byte, d *rowRecord) error {
	ok := eachMember(v, func(name, raw []byte) bool {
		var dst *string
		switch string(name) {
		case "id":
			dst = &d.ID
		case "rule_id":
			dst = &d.RuleID
		case "action":
			dst = &d.Action
		case "mode":
			dst = &d.Mode
		case "status":
			dst = &d.Status
		case "at":
			return d.At.UnmarshalJSON(raw) == nil
		case "reasons":
			return json.Unmarshal(raw, &d.Reasons) == nil
		default:
			return !foldsTo(name, "id", "rule_id", "action", "mode", "status", "at", "reasons")
		}
		if s, ok := plainString(raw); ok {
			*dst = string(s)
			return true
		}
		return json.Unmarshal(raw, dst) == nil
	})
	if ok {
		return nil
	}
	*d = rowRecord{}
	return json.Unmarshal(v, d)
}

// skipSpace returns the index of the first byte of v at or after i that is
// not JSON white space.
func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// scanString reads the JSON string at v[i]: its bytes between the quotes,
// whether it holds escapes, and the index after it; -1 when there is none.
func scanString(v []byte, i int) (s []byte, esc bool, next int) {
	if i == len(v) || v[i] != '"' {
		return nil, false, -1
	}
	for j := i + 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '"':
			return v[i+1 : j], esc, j + 1
		case c == '\\':
			esc = true
			j++
		case c < 0x20:
			return nil, false, -1
		}
	}
	return nil, false, -1
}

// skipValue returns the index after the JSON value at v[i], -1 when there is
// none: strings and nesting are followed, a literal (number, true, false,
// null) runs to the next delimiter.
func skipValue(v []byte, i int) int {
	if i == len(v) {
		return -1
	}
	switch v[i] {
	case '"':
		_, _, next := scanString(v, i)
		return next
	case '{', '[':
		depth := 0
		for i < len(v) {
			switch v[i] {
			case '"':
				if _, _, i = scanString(v, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	j := i
	for j < len(v) && v[j] != ',' && v[j] != '}' && v[j] != ']' && v[j] != ' ' && v[j] != '\t' && v[j] != '\n' && v[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
