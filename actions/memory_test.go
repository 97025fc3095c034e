package actions

import (
	"bytes"
	"reflect"
	"testing"
)

func TestMemoryBinary(t *testing.T) {
	tests := []struct {
		name string
		in   Memory
		want Memory // what reads back
	}{
		{"rules", Memory{"b-reroute": {Episode: 3, Active: true}, "a-hold": {Episode: -1}, "c": {}}, nil},
		{"empty", Memory{}, nil},
		{"nil", nil, nil},
	}
	tests[0].want = tests[0].in
	for _, tt := range tests {
		b, err := tt.in.AppendBinary([]byte("head"))
		if err != nil || string(b[:4]) != "head" {
			t.Fatalf("%s: AppendBinary: %q, %v", tt.name, b, err)
		}
		out := Memory{"stale": {}}
		rest, err := out.DecodeBinary(append(b[4:], "tail"...))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if string(rest) != "tail" || !reflect.DeepEqual(out, tt.want) {
			t.Errorf("%s: read %v, rest %q; want %v, tail", tt.name, out, rest, tt.want)
		}
	}
}

// TestMemoryBinaryOrder: rules are written in id order, so a memory has one
// binary form whatever the map order.
func TestMemoryBinaryOrder(t *testing.T) {
	m := Memory{"d": {Episode: 1}, "a": {Episode: 2}, "c": {Episode: 3}, "b": {Episode: 4}}
	want := []byte{8, 1, 'a', 4, 0, 1, 'b', 8, 0, 1, 'c', 6, 0, 1, 'd', 2, 0}
	for range 20 {
		if got, _ := m.AppendBinary(nil); !bytes.Equal(got, want) {
			t.Fatalf("% x, want % x", got, want)
		}
	}
}

func TestMemoryBinaryDamage(t *testing.T) {
	m := Memory{"hold": {Episode: 3, Active: true}, "reroute": {Episode: 1}}
	b, _ := m.AppendBinary(nil)
	for i := range len(b) {
		var out Memory
		if _, err := out.DecodeBinary(b[:i]); err == nil {
			t.Fatalf("memory cut at %d of %d bytes decoded without error", i, len(b))
		}
	}
}

func BenchmarkMemoryAppendBinary(b *testing.B) {
	m := Memory{"hold": {Episode: 3, Active: true}, "reroute": {Episode: 1}, "flag": {Episode: 2}, "notify": {}}
	buf, _ := m.AppendBinary(nil)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.AppendBinary(buf[:0])
	}
}
