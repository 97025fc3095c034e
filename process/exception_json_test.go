package process

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestExceptionJSONMatchesEncodingJSON holds the hand-written encoder to
// json.Marshal, byte for byte: every field set, every field zero, and strings
// that need escaping.
func TestExceptionJSONMatchesEncodingJSON(t *testing.T) {
	var full Exception
	n := 0
	fill(t, reflect.ValueOf(&full).Elem(), &n)
	full.Escalations = -3
	odd := Exception{ID: "x\"\\\b\f\n\r\t\x01<>&\u2028\u2029é\xff\xc3", Order: "SO-1", Open: true, Reminders: 12,
		StartedAt: time.Date(2026, 5, 18, 8, 0, 0, 123456789, time.FixedZone("X", 3600))}
	for name, x := range map[string]Exception{"full": full, "zero": {}, "odd": odd} {
		want, err := json.Marshal(&x)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := x.appendJSON(nil)
		if !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: appendJSON\n%s\nwant json.Marshal's\n%s", name, got, want)
		}
	}
	bad := Exception{DueAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := json.Marshal(&bad); err == nil {
		t.Fatal("json.Marshal took a year 10000")
	}
	if _, ok := bad.appendJSON(nil); ok {
		t.Error("appendJSON took a year 10000 that json.Marshal refuses")
	}
}

func BenchmarkExceptionJSON(b *testing.B) {
	var x Exception
	n := 0
	fill(&testing.T{}, reflect.ValueOf(&x).Elem(), &n)
	b.Run("appendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = x.appendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(&x)
		}
	})
}
