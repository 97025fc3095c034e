package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// maxAllocsPerEvent bounds the heap allocations per event of the Processor
// in TestProcessAllocsPerEvent: the measured figure plus about 10%. The
// race detector's runtime allocates more (sync.Pool drops items at random),
// so it has its own bound.
const (
	maxAllocsPerEvent     = 87 // 79.0 measured on 2026-12-06
	maxAllocsPerEventRace = 89 // 81.2 measured on 2026-12-06
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
	var msgs []*process.Message
	err := simulateN(context.Background(), sim.Normal, 1, warm+measured, sim.DefaultFaults, func(subject, id string, data []byte) error {
		msgs = append(msgs, &process.Message{Seq: uint64(len(msgs) + 1), Subject: storedSubject(subject), Data: slices.Clone(data),
			Header: nats.Header{jetstream.MsgIDHeader: []string{id}}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "badger")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	registry, err := newRegistry(filepath.Join(dir, "models"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer registry.Close()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := process.New(process.Options{
		Store: st, Policy: actions.NewLive(policy), Scorer: &registryScorer{r: registry}, Logger: log, EventTime: true,
		OpenOrders: process.NewOpenIndex(),
		DeadLetter: func(context.Context, *process.Message, string, string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var flight *process.Flight
	run := func(msgs []*process.Message) {
		for i := 0; i < len(msgs); i += batchSize {
			part := msgs[i:min(i+batchSize, len(msgs))]
			staged, err := proc.Stage(ctx, part)
			if flight != nil {
				if _, err := proc.Wait(flight); err != nil {
					t.Fatal(err)
				}
				flight = nil
			}
			if err == nil {
				flight, err = proc.Submit(staged)
			} else {
				proc.Abort(staged)
			}
			if errors.Is(err, store.ErrBatchTooBig) {
				_, err = proc.Process(ctx, part)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if flight != nil {
			if _, err := proc.Wait(flight); err != nil {
				t.Fatal(err)
			}
			flight = nil
		}
	}
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
