package features

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// filled returns a state with every field set to a value that differs from
// field to field, so a field the binary form forgets shows.
func filled(tb testing.TB) OrderState {
	var s OrderState
	n := 0
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		n++
		switch v.Kind() {
		case reflect.String:
			v.SetString("v" + time.Duration(n).String())
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int:
			v.SetInt(int64(n))
		case reflect.Float64:
			v.SetFloat(float64(n) + 0.5)
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				v.Set(reflect.ValueOf(time.Date(2026, 5, 18, 8, 0, n, n, time.UTC)))
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					fill(v.Field(i))
				}
			}
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 3, 3))
			for i := range 3 {
				fill(v.Index(i))
			}
		default:
			tb.Fatalf("filled: no rule for %s", v.Type())
		}
	}
	fill(reflect.ValueOf(&s).Elem())
	return s
}

// TestStateBinaryRoundTrip fails when a field of OrderState is added without its
// place in the binary form, and checks that what follows the state is left.
func TestStateBinaryRoundTrip(t *testing.T) {
	for name, in := range map[string]OrderState{"filled": filled(t), "zero": {}} {
		b, err := in.AppendBinary([]byte("head"))
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:4]) != "head" {
			t.Fatalf("%s: AppendBinary changed what was in the buffer", name)
		}
		var out OrderState
		rest, err := out.DecodeBinary(append(b[4:], "tail"...))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(rest) != "tail" {
			t.Errorf("%s: rest %q, want tail", name, rest)
		}
		if !reflect.DeepEqual(in, out) {
			a, _ := json.Marshal(&in)
			o, _ := json.Marshal(&out)
			t.Errorf("%s: round trip changed the state:\n in %s\nout %s", name, a, o)
		}
	}
}

// TestStateBinaryDamage: a cut state or a damaged text count is an error, never a
// panic or a huge allocation.
func TestStateBinaryDamage(t *testing.T) {
	in := filled(t)
	b, _ := in.AppendBinary(nil)
	for i := range len(b) {
		var out OrderState
		if _, err := out.DecodeBinary(b[:i]); err == nil {
			t.Fatalf("state cut at %d of %d bytes decoded without error", i, len(b))
		}
	}
	// The text count sits after the last event time; make it claim 2^40 texts.
	var zero OrderState
	zero.Texts = []Text{{}}
	z, _ := zero.AppendBinary(nil)
	i := bytes.LastIndex(z, []byte{2, 0, 0, 0, 0}) // count 1 (zig-zag 2), then the text's zero time, ids
	if i < 0 {
		t.Fatalf("text count not found in % x", z)
	}
	damaged := append(append(append([]byte{}, z[:i]...), 0x80, 0x80, 0x80, 0x80, 0x80, 0x40), z[i+1:]...)
	var out OrderState
	if _, err := out.DecodeBinary(damaged); err == nil {
		t.Fatal("a text count of 2^40 decoded without error")
	}
}

func BenchmarkStateAppendBinary(b *testing.B) {
	s := filled(b)
	buf, _ := s.AppendBinary(nil)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = s.AppendBinary(buf[:0])
	}
}
