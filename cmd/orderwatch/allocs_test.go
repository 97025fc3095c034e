package main

import (
	"runtime"
	"testing"

	"github.com/orderwatch/orderwatch/process"
)

// maxAllocsPerEvent bounds the heap allocations per event of the Processor
// in TestProcessAllocsPerEvent: the measured figure plus about 10%. The
// race detector's runtime allocates more (sync.Pool drops items at random),
// so it has its own bound.
const (
	maxAllocsPerEvent     = 86 // 77.8 measured on 2026-12-06
	maxAllocsPerEventRace = 88 // 79.9 measured on 2026-12-06
)

// TestProcessAllocsPerEvent is the guard of issue 20's allocation work: it
// runs the Processor as BenchmarkProcess does (real Badger and ONNX Runtime,
// each batch staged while the one before commits) over a fixed simulated
// stream and fails when the heap allocations per event grow above the bound.
// Allocations are deterministic enough for that, unlike durations. When it
// fails, find the new allocation with
//
//	go test -run X -bench Process -benchtime 100000x -memprofile /tmp/m.prof -memprofilerate 4096 ./cmd/orderwatch
//	go tool pprof -sample_index=alloc_objects -top /tmp/m.prof
//
// and remove it; raise the bound (to the figure this test logs plus 10%) only
// for an allocation meant to be there.
func TestProcessAllocsPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the models over 12,288 events")
	}
	const (
		batchSize = 1024
		warm      = 4 * batchSize // caches, buffers and the tokenizer warm up
		measured  = 8 * batchSize
	)
	proc, _, msgs := newBenchProcessor(t, t.TempDir(), warm+measured)
	run := func(msgs []*process.Message) { processBatches(t, proc, msgs, batchSize) }
	run(msgs[:warm])
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run(msgs[warm:])
	runtime.ReadMemStats(&after)
	perEvent := float64(after.Mallocs-before.Mallocs) / measured
	bytesPerEvent := float64(after.TotalAlloc-before.TotalAlloc) / measured
	t.Logf("%.1f allocations and %.0f bytes per event over %d events", perEvent, bytesPerEvent, measured)
	bound := float64(maxAllocsPerEvent)
	if raceEnabled {
		bound = maxAllocsPerEventRace
	}
	if perEvent > bound {
		t.Errorf("the Processor made %.1f heap allocations per event, above the bound of %.0f: profile it "+
			"(go test -run X -bench Process -benchtime 100000x -memprofile /tmp/m.prof -memprofilerate 4096 ./cmd/orderwatch; "+
			"go tool pprof -sample_index=alloc_objects -top /tmp/m.prof) and remove the new allocation, "+
			"or raise maxAllocsPerEvent to this figure plus 10%% if it is meant", perEvent, bound)
	}
}
