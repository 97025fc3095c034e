package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimitFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want memoryLimit
	}{
		{"auto", memoryLimit{auto: true}},
		{"off", memoryLimit{}},
		{"768MiB", memoryLimit{bytes: 768 << 20}},
		{"2GiB", memoryLimit{bytes: 2 << 30}},
		{"1TiB", memoryLimit{bytes: 1 << 40}},
		{"64KiB", memoryLimit{bytes: 64 << 10}},
		{"1000B", memoryLimit{bytes: 1000}},
		{"123456789", memoryLimit{bytes: 123456789}},
	} {
		var m memoryLimit
		if err := m.Set(tt.in); err != nil {
			t.Errorf("Set(%q): %v", tt.in, err)
			continue
		}
		if m != tt.want {
			t.Errorf("Set(%q) = %+v, want %+v", tt.in, m, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "-1MiB", "768MB", "1.5GiB", "lots", "9000000TiB"} {
		var m memoryLimit
		err := m.Set(bad)
		if err == nil {
			t.Errorf("Set(%q) = %+v, want an error", bad, m)
			continue
		}
		if !strings.Contains(err.Error(), "768MiB") {
			t.Errorf("Set(%q) error %q does not show a valid value", bad, err)
		}
	}
}

// TestMemoryLimitApplies checks that the flag reaches the runtime: a size is the
// limit, off lifts it, and auto keeps what GOMEMLIMIT set.
func TestMemoryLimitApplies(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)

	if got := (memoryLimit{bytes: 3 << 30}).apply(log); got != 3<<30 {
		t.Errorf("apply(3GiB) = %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("runtime limit %d after 3GiB, want %d", got, int64(3<<30))
	}
	if got := (memoryLimit{}).apply(log); got != 0 {
		t.Errorf("apply(off) = %d, want 0", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("runtime limit %d after off, want none", got)
	}
	// The runtime reads GOMEMLIMIT at start; here it is set by hand as it would
	// have been, and auto must leave it alone.
	t.Setenv("GOMEMLIMIT", "5GiB")
	debug.SetMemoryLimit(5 << 30)
	if got := (memoryLimit{auto: true}).apply(log); got != 5<<30 {
		t.Errorf("apply(auto) with GOMEMLIMIT=5GiB = %d, want %d", got, int64(5<<30))
	}
	if got := debug.SetMemoryLimit(-1); got != 5<<30 {
		t.Errorf("runtime limit %d after auto with GOMEMLIMIT, want it unchanged", got)
	}
}
