package binrec

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

// TestAppendBytes holds each primitive to its bytes: they are stored on disk. The
// time is 2026-05-18T06:00:00.000000001Z, its nanoseconds zig-zag varint encoded.
func TestAppendBytes(t *testing.T) {
	at := time.Date(2026, 5, 18, 8, 0, 0, 1, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"string", AppendString(nil, "DAL"), []byte{3, 'D', 'A', 'L'}},
		{"empty string", AppendString(nil, ""), []byte{0}},
		{"int", AppendInt(nil, 300), []byte{0xd8, 0x04}},
		{"negative int", AppendInt(nil, -1), []byte{1}},
		{"true", AppendBool(nil, true), []byte{1}},
		{"false", AppendBool(nil, false), []byte{0}},
		{"float64", AppendFloat64(nil, 1.5), []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x3f}},
		{"float32", AppendFloat32(nil, 1.5), []byte{0, 0, 0xc0, 0x3f}},
		{"zero time", AppendTime(nil, time.Time{}), []byte{0}},
		{"time", AppendTime(nil, at), []byte{0x82, 0x80, 0xa6, 0xd9, 0x9a, 0xde, 0xc9, 0xb0, 0x31}},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, tt.got, tt.want)
		}
	}
}

func TestDecoderReadsWhatAppendWrote(t *testing.T) {
	at := time.Date(2026, 5, 18, 8, 0, 0, 1, time.FixedZone("CEST", 2*3600))
	var b []byte
	b = AppendString(b, "SO-1")
	b = AppendInt(b, -42)
	b = AppendBool(b, true)
	b = AppendFloat64(b, math.Pi)
	b = AppendFloat32(b, 0.25)
	b = AppendTime(b, at)
	b = AppendTime(b, time.Time{})
	b = AppendInt(b, 2) // a count
	b = append(b, 7, 7)

	d := NewDecoder(b)
	if s, i, ok, f, g := d.Str(), d.Int(), d.Bool(), d.Float64(), d.Float32(); s != "SO-1" || i != -42 || !ok || f != math.Pi || g != 0.25 {
		t.Fatalf("read %q %d %v %v %v", s, i, ok, f, g)
	}
	if got := d.Time(); !got.Equal(at) || got.Location() != time.UTC {
		t.Fatalf("time %v, want %v in UTC", got, at)
	}
	if got := d.Time(); !got.IsZero() {
		t.Fatalf("zero time read as %v", got)
	}
	if n := d.Count(); n != 2 {
		t.Fatalf("count %d", n)
	}
	if err := d.End(); err == nil {
		t.Fatal("End with two bytes left: no error")
	}
}

// TestDecoderErrors: a cut buffer or a damaged count is an error that sticks,
// never a panic.
func TestDecoderErrors(t *testing.T) {
	var b []byte
	b = AppendString(b, "warehouse")
	b = AppendFloat64(b, 1)
	b = AppendFloat32(b, 1)
	b = AppendBool(b, true)
	b = AppendTime(b, time.Unix(1e9, 0))
	for i := range len(b) {
		d := NewDecoder(b[:i])
		d.Str()
		d.Float64()
		d.Float32()
		d.Bool()
		d.Time()
		if !errors.Is(d.End(), ErrShort) {
			t.Fatalf("cut at %d of %d: %v, want ErrShort", i, len(b), d.Err())
		}
		if d.Rest() != nil || d.Int() != 0 || d.Str() != "" {
			t.Fatal("reads after an error return zero values")
		}
	}
	for _, n := range []int{-1, 3} {
		d := NewDecoder(append(AppendInt(nil, n), 0, 0))
		if got := d.Count(); got != 0 || d.Err() == nil {
			t.Errorf("count %d of 2 bytes: read %d, err %v", n, got, d.Err())
		}
	}
}

type pair struct{ a, b string }

func (p *pair) DecodeBinary(b []byte) ([]byte, error) {
	d := NewDecoder(b)
	p.a, p.b = d.Str(), d.Str()
	return d.Rest(), d.Err()
}

func TestDecode(t *testing.T) {
	b := AppendString(AppendString(AppendString(nil, "x"), "y"), "z")
	d := NewDecoder(b)
	var p pair
	d.Decode(&p)
	if p != (pair{"x", "y"}) || d.Str() != "z" || d.End() != nil {
		t.Fatalf("decoded %+v, err %v", p, d.Err())
	}
	d = NewDecoder(b[:3])
	d.Decode(&p)
	if !errors.Is(d.Err(), ErrShort) {
		t.Fatalf("err %v, want ErrShort", d.Err())
	}
}
