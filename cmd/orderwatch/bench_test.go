package main

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchPrintsEveryFigure runs a small benchmark end to end and checks that each
// figure is printed, once, as a positive number. Speeds are not asserted: they
// depend on the machine.
func TestBenchPrintsEveryFigure(t *testing.T) {
	var out bytes.Buffer
	c := benchConfig{Events: 2000, Scenario: "normal", BatchSize: 256, NATSSync: "always", Latency: time.Second}
	if err := bench(context.Background(), c, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("line %q is not `name value`", line)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if _, dup := got[name]; dup {
			t.Errorf("%s printed twice", name)
		}
		got[name] = f
	}
	for _, name := range []string{"floor_events_per_s", "pipeline_events_per_s", "ratio", "p50_event_to_decision_ms",
		"p99_event_to_decision_ms", "scoring_us_per_order", "peak_rss_mb", "badger_bytes_per_open_order"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v, want a positive figure (output:\n%s)", name, got[name], out.String())
		}
	}
	if got["p99_event_to_decision_ms"] < got["p50_event_to_decision_ms"] {
		t.Errorf("p99 %v below p50 %v", got["p99_event_to_decision_ms"], got["p50_event_to_decision_ms"])
	}
}
