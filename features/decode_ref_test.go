package features

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeReference is Decode as it was before the hand-written parser: encoding/json
// into the Event, then one Token call to reject trailing data. The differential
// tests hold Decode to it.
func decodeReference(b []byte, ev *Event) error {
	if len(b) > MaxEventBytes {
		return invalid(ReasonOversize, "event is %d bytes, limit %d", len(b), MaxEventBytes)
	}
	if !utf8.Valid(b) {
		return invalid(ReasonInvalidUTF8, "event is not valid UTF-8")
	}
	*ev = Event{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(ev); err != nil {
		return invalid(ReasonBadJSON, "%v", err)
	}
	// Only white space may follow the object: More is false before a stray
	// closing bracket, so ask for the next token.
	if _, err := dec.Token(); err != io.EOF {
		return invalid(ReasonBadJSON, "trailing data after the event object")
	}
	return Validate(ev)
}

func BenchmarkDecodeReference(b *testing.B) { benchmarkDecode(b, decodeReference) }

// decodeEdgeCases are inputs on which a hand-written decoder easily parts from
// encoding/json; they seed FuzzDecodeMatchesReference.
var decodeEdgeCases = []string{
	// Top level, white space and trailing data.
	``, ` `, `null`, " null \r\n", `nul`, `nullx`, `null}`, `true`, `1`, `"x"`, `[]`, `{}`, `{} `,
	`{}}`, `{}]`, `{} x`, `{}{}`, "\t{\n}\r", "\v{}", "\u00a0{}", "\ufeff{}", `{`, `{"id"`, `{"id":`,
	`{"id":"e"`, `{"id":"e",}`, `{,"id":"e"}`, `{"id" "e"}`, `{"id":"e" "type":"x"}`, `{"data":{}`,
	// Keys: case, folding, escapes, duplicates, unknown keys.
	`{"ID":"a","TYPE":"note.added","Order_Id":"o","SCHEMA":1}`,
	`{"ſchema":1,"id":"a"}`, `{"data":{"ſhort_units":3,"\u017fystem":"x","CUSTOMER_ID":"c"}}`, `{"\u017fchema":1}`, `{"\u212a":1}`, `{"Data":{"WAREHOUSE":"DAL","ShIp_CuToFf":"2026-05-21T20:00:00Z"}}`,
	`{"data":{"\u0077arehouse":"DAL"}}`, `{"\u0069d":"a","i\u0064":"b"}`, `{"id":"a","id":"b","id":null}`,
	`{"data":{"lines":1,"units":2},"data":{"lines":3},"data":null}`, `{"data":{"ship_cutoff":"2026-05-21T20:00:00Z","ship_cutoff":null}}`,
	`{"data":{"ship_cutoff":null,"ship_cutoff":"2026-05-21T20:00:00Z"}}`, `{"occurred_at":"2026-05-21T20:00:00Z","occurred_at":null}`,
	`{"unknown":{"a":[1,2,{"b":null}],"c":"\u00e9"},"x":[],"y":{},"z":-0.5e-3}`, `{"data":{"id":"x","type":1}}`,
	`{"":1}`, `{"data":{"":{"":[]}}}`, `{"data":{"on_time_share":null}}`,
	// Strings and escapes.
	`{"id":"a\"b\\c\/d\be\ff\ng\rh\ti"}`, `{"id":"\u00e9\u4e16\ud83d\ude00"}`, `{"id":"\ud800"}`, `{"id":"\udc00x"}`,
	`{"id":"\ud800\ud800"}`, `{"id":"\ud800\u0041"}`, `{"id":"\ud83d\ude0"}`, `{"id":"\ud800\n"}`, `{"id":"\u0000"}`,
	`{"id":"\x"}`, `{"id":"\'"}`, `{"id":"\u12"}`, `{"id":"\uZZZZ"}`, "{\"id\":\"a\tb\"}", "{\"id\":\"a\x7fb\"}",
	`{"type":"order\u002ecreated"}`, `{"type":"ORDER.CREATED"}`, `{"source":"","source":"x","source":""}`,
	`{"data":{"text":"\u2028 \ud834\udd1e","code":"\"","system":"\\"}}`,
	`{"id":"a\u002db","order_id":"o\"1"}`, `{"id":"a","order_id":"o\u00e9"}`, `{"id":"a\tb","order_id":"o"}`, `{"order_id":"o","id":""}`,
	// Numbers.
	`{"schema":1.0}`, `{"schema":1e0}`, `{"schema":-0}`, `{"schema":01}`, `{"schema":+1}`, `{"schema":.5}`,
	`{"schema":1.}`, `{"schema":1e}`, `{"schema":-}`, `{"schema":9223372036854775807}`, `{"schema":9223372036854775808}`,
	`{"schema":-9223372036854775808}`, `{"schema":-9223372036854775809}`, `{"schema":"1"}`, `{"schema":true}`,
	`{"data":{"value":-0}}`, `{"data":{"value":-0.0e5}}`, `{"data":{"value":1e999}}`, `{"data":{"value":-1e999}}`,
	`{"data":{"value":1e-999}}`, `{"data":{"value":4.9e-324}}`, `{"data":{"value":1.7976931348623157e308}}`,
	`{"data":{"value":0.1}}`, `{"data":{"value":123456789012345678901234567890}}`, `{"data":{"value":9007199254740993}}`,
	`{"data":{"value":1E+2}}`, `{"data":{"value":0.000000000000000000000001}}`, `{"data":{"value":0e99999999999999999999}}`,
	`{"data":{"value":1e99999999999999999999}}`, `{"data":{"delay_minutes":12.5,"on_time_share":0.93}}`,
	`{"data":{"on_time_share":"0.9"}}`, `{"data":{"outage":true,"outage":false}}`, `{"data":{"outage":1}}`, `{"data":{"outage":tru}}`,
	`{"data":{"lines":1.5}}`, `{"data":{"queue":1e2}}`, `{"data":{"capacity":-12}}`,
	// Types of values.
	`{"data":[]}`, `{"data":"x"}`, `{"data":1}`, `{"data":true}`, `{"id":1}`, `{"id":{}}`, `{"id":[]}`, `{"id":null}`,
	`{"occurred_at":1}`, `{"occurred_at":{}}`, `{"occurred_at":"yesterday"}`, `{"occurred_at":"\u0032026-05-21T14:00:00Z"}`,
	`{"data":{"ship_cutoff":[]}}`, `{"data":{"promised_at":true}}`,
	// Times.
	`{"occurred_at":"2026-05-21T14:03:11.250+02:00"}`, `{"occurred_at":"2026-05-21T14:03:11-07:00"}`,
	`{"occurred_at":"2026-05-21T14:03:11+05:30"}`, `{"occurred_at":"2026-05-21T14:03:11.123456789Z"}`,
	`{"occurred_at":"2026-05-21t14:03:11z"}`, `{"occurred_at":"2026-05-21T14:03:11+24:00"}`,
	// Nesting.
	`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	`{"data":{"x":` + strings.Repeat(`{"a":`, 9998) + `1` + strings.Repeat("}", 9998) + `}}`,
	`{"data":{"x":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat("}", 9999) + `}}`,
	`{"x":` + strings.Repeat("[", 20000) + `}`,
}

// FuzzDecodeMatchesReference: for any bytes, Decode and encoding/json
// (decodeReference) both accept, with equal events, or both reject, for the same
// reason.
func FuzzDecodeMatchesReference(f *testing.F) {
	for _, ev := range loadEvents(f) {
		f.Add(ev)
	}
	for _, s := range decodeEdgeCases {
		f.Add([]byte(s))
	}
	for _, s := range decodeFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, ref Event
		errGot, errWant := Decode(b, &got), decodeReference(b, &ref)
		switch {
		case errGot == nil && errWant == nil:
			if diff := eventDiff(got, ref); diff != "" {
				t.Fatalf("Decode(%q) decoded %s", b, diff)
			}
		case errGot == nil:
			t.Fatalf("Decode(%q) accepted, encoding/json rejected: %v", b, errWant)
		case errWant == nil:
			t.Fatalf("Decode(%q) rejected, encoding/json accepted: %v", b, errGot)
		default:
			var de *DecodeError
			if !errors.As(errGot, &de) {
				t.Fatalf("Decode(%q) error %v (%T) is not a *DecodeError", b, errGot, errGot)
			}
			want := errWant.(*DecodeError).Reason
			if de.Reason != want || de.Detail == "" {
				t.Fatalf("Decode(%q) = %v, encoding/json: %v", b, errGot, errWant)
			}
			// Any other reason is Validate's: both decoded, to the same event.
			if want == ReasonBadJSON || want == ReasonInvalidUTF8 || want == ReasonOversize {
				return
			}
			if diff := eventDiff(got, ref); diff != "" {
				t.Fatalf("Decode(%q) decoded %s", b, diff)
			}
		}
	})
}

// eventDiff describes how got differs from want, or returns "" when they are equal:
// deeply, and in the sign of every float (reflect.DeepEqual holds -0 equal to 0).
func eventDiff(got, want Event) string {
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("%#v\nencoding/json: %#v", got, want)
	}
	gf, wf := floatBits(&got), floatBits(&want)
	if gf != wf {
		return fmt.Sprintf("floats with bits %x, encoding/json %x", gf, wf)
	}
	return ""
}

func floatBits(ev *Event) [3]uint64 {
	bits := [3]uint64{math.Float64bits(ev.Data.Value), math.Float64bits(ev.Data.DelayMinutes)}
	if ev.Data.OnTimeShare != nil {
		bits[2] = math.Float64bits(*ev.Data.OnTimeShare)
	}
	return bits
}
