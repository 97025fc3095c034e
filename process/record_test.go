package process

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/binrec"
)

// fill sets every exported field reachable from v to a value that is not zero and
// differs from field to field, so a field the binary form forgets shows.
func fill(t *testing.T, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + time.Duration(*n).String())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint8:
		if v.Type() == reflect.TypeFor[WhatField]() {
			v.SetUint(uint64(WhatNone + 1 + WhatField(*n)%WhatText)) // a known one, not the zero
			return
		}
		v.SetUint(uint64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float64, reflect.Float32:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 5, 18, 8, 0, 0, *n*1000, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, n)
			fill(t, e, n)
			v.SetMapIndex(k, e)
		}
	default:
		t.Fatalf("fill: no rule for %s", v.Type())
	}
}

// mustEncode returns the binary form of rec.
func mustEncode(tb testing.TB, rec *orderRecord) []byte {
	tb.Helper()
	b, err := encodeRecord(nil, rec)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestRecordRoundTrip fails when a field of the order record (its state, policy
// memory, scores) is added without its place in the binary form.
func TestRecordRoundTrip(t *testing.T) {
	var in orderRecord
	n := 0
	fill(t, reflect.ValueOf(&in).Elem(), &n)
	in.Flags = flagsOf(&in.State) // derived, not stored
	var out orderRecord
	if err := decodeRecord(mustEncode(t, &in), &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		a, _ := json.Marshal(&in)
		b, _ := json.Marshal(&out)
		t.Fatalf("round trip changed the record:\n in %s\nout %s", a, b)
	}
	var zero, back orderRecord
	if err := decodeRecord(mustEncode(t, &zero), &back); err != nil || !reflect.DeepEqual(back, orderRecord{Flags: flagsOf(&zero.State)}) {
		t.Fatalf("zero record: %+v, %v", back, err)
	}
}

// TestRecordReadsEarlierJSON: data dirs of earlier versions hold JSON records.
func TestRecordReadsEarlierJSON(t *testing.T) {
	risk := 0.8
	in := orderRecord{State: features.OrderState{OrderID: "SO-1", Known: true, Warehouse: "DAL", Milestone: features.MilestoneCreated},
		Policy: actions.Memory{"r": {Episode: 2, Active: true}}, Risk: &risk, Gauge: gaugeState{Warehouse: "DAL", Open: true, AtRisk: true}}
	raw, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out orderRecord
	if err := decodeRecord(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.State.OrderID != "SO-1" || out.Policy["r"].Episode != 2 || *out.Risk != 0.8 || out.Gauge != in.Gauge {
		t.Fatalf("read %+v from earlier JSON", out)
	}
	if j, err := RecordJSON(raw); err != nil || string(j) != string(raw) {
		t.Fatalf("RecordJSON of JSON = %s, %v; want it unchanged", j, err)
	}
}

// TestRecordRejectsDamage: a cut or unknown record is an error, never a panic.
func TestRecordRejectsDamage(t *testing.T) {
	var in orderRecord
	n := 0
	fill(t, reflect.ValueOf(&in).Elem(), &n)
	raw := mustEncode(t, &in)
	// A recordV3 ends its sections with sectionsEnd: a record cut anywhere,
	// also between two sections, is an error.
	for i := range len(raw) {
		var out orderRecord
		if err := decodeRecord(raw[:i], &out); err == nil {
			t.Fatalf("record cut at %d of %d bytes decoded without error", i, len(raw))
		}
	}
	var out orderRecord
	if err := decodeRecord(append([]byte{9}, raw[1:]...), &out); err == nil {
		t.Fatal("record of form 9 decoded without error")
	}
}

// FuzzDecodeRecord: any stored bytes decode to a record or an error, never a
// panic; a record that decodes encodes to bytes that read back as the same
// record (compared as bytes: a NaN risk is not equal to itself).
func FuzzDecodeRecord(f *testing.F) {
	golden := goldenRecord()
	f.Add(mustEncode(f, &golden))
	var zero orderRecord
	f.Add(mustEncode(f, &zero))
	if j, err := json.Marshal(&golden); err == nil {
		f.Add(j)
	}
	f.Add([]byte(`{"state":{"order_id":"SO-1","known":true,"created_at":"2026-05-18T10:00:00+02:00"},"policy":{"r":{"e":1,"a":true}}}`))
	f.Add([]byte{recordV1, 0x04, 'S', 'O'})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil {
			return
		}
		enc, err := encodeRecord(nil, &rec)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		var back orderRecord
		if err := decodeRecord(enc, &back); err != nil {
			t.Fatalf("an encoded record does not decode: %v\n% x", err, enc)
		}
		again, err := encodeRecord(nil, &back)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("record changed on a second round trip (%v):\n% x\n% x", err, enc, again)
		}
	})
}

// TestRecordV3SkipsAnUnknownSection shows that a record with a section this
// release does not know (written by a newer one) still decodes, and that a
// V3 record without shadows is read as such.
func TestRecordV3SkipsAnUnknownSection(t *testing.T) {
	risk := 0.4
	rec := &orderRecord{Risk: &risk, ScoredAt: time.Date(2026, 5, 18, 8, 0, 0, 0, time.UTC)}
	rec.State.OrderID = "SO-1"
	v1 := mustEncode(t, rec)
	if v1[0] != recordV1 {
		t.Fatalf("a record without sections is written as form %d, want %d", v1[0], recordV1)
	}
	v3 := append([]byte{recordV3}, v1[1:]...)
	v3 = append(v3, 0) // no shadows
	v3 = appendSection(v3, 99, []byte("from a newer release"))
	v3 = binrec.AppendInt(v3, sectionsEnd)
	var got orderRecord
	if err := decodeRecord(v3, &got); err != nil {
		t.Fatalf("decode a V3 record with an unknown section: %v", err)
	}
	if got.State.OrderID != "SO-1" || got.Risk == nil || *got.Risk != risk {
		t.Fatalf("decoded %+v, want the order and its risk", got)
	}
	if err := decodeRecord(v3[:len(v3)-3], &orderRecord{}); err == nil {
		t.Fatal("a truncated section decoded without error")
	}
	if err := decodeRecord(v3[:len(v3)-1], &orderRecord{}); err == nil {
		t.Fatal("a record cut after its last section decoded without error")
	}
}
