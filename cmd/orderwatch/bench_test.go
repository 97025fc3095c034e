package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// TestBenchPrintsEveryFigure runs a small benchmark end to end and checks that each
// figure is printed, once, as a positive number. Speeds are not asserted: they
// depend on the machine.
func TestBenchPrintsEveryFigure(t *testing.T) {
	c := benchConfig{Events: 2000, Scenario: "normal", BatchSize: 256, NATSSync: "always", Latency: time.Second}
	checkFigures(t, runBench(t, context.Background(), c))
}

// runBench runs the bench and returns its figures by name, each printed once as
// `name value`.
func runBench(t *testing.T, ctx context.Context, c benchConfig) map[string]float64 {
	t.Helper()
	var out bytes.Buffer
	if err := bench(ctx, c, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("line %q is not `name value`", line)
		}
		if name == "writes_per_event_by_kind" || name == "bytes_per_event_by_kind" {
			continue // a list
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
	return got
}

// checkFigures checks that each figure is a positive number and that the
// percentiles are in order.
func checkFigures(t *testing.T, got map[string]float64) {
	t.Helper()
	for _, name := range []string{"floor_events_per_s", "pipeline_events_per_s", "ratio", "p50_event_to_decision_ms",
		"p99_event_to_decision_ms", "latency_events_per_s", "floor_p50_publish_to_fetch_ms", "floor_p99_publish_to_fetch_ms",
		"scoring_us_per_order", "peak_rss_mb", "peak_anon_rss_mb", "badger_bytes_per_open_order",
		"p50_publish_to_stored_ms", "p99_publish_to_stored_ms", "latency_batches", "latency_batch_mean_messages", "latency_batch_max_messages",
		"state_floor_events_per_s", "state_floor_ratio", "floor_cpu_us_per_event", "state_floor_cpu_us_per_event",
		"pipeline_cpu_us_per_event", "durable_bytes_per_event"} {
		if got[name] <= 0 {
			t.Errorf("%s = %v, want a positive figure (figures: %v)", name, got[name], got)
		}
	}
	if _, ok := got["latency_rescores_per_event"]; !ok {
		t.Errorf("latency_rescores_per_event not printed (figures: %v)", got)
	}
	if got["peak_anon_rss_mb"] > got["peak_rss_mb"] {
		t.Errorf("peak anonymous RSS %v above the peak RSS %v", got["peak_anon_rss_mb"], got["peak_rss_mb"])
	}
	if got["p99_event_to_decision_ms"] < got["p50_event_to_decision_ms"] {
		t.Errorf("p99 %v below p50 %v", got["p99_event_to_decision_ms"], got["p50_event_to_decision_ms"])
	}
	if got["p99_publish_to_stored_ms"] < got["p50_publish_to_stored_ms"] {
		t.Errorf("publish to stored: p99 %v below p50 %v", got["p99_publish_to_stored_ms"], got["p50_publish_to_stored_ms"])
	}
	if got["floor_p99_publish_to_fetch_ms"] < got["floor_p50_publish_to_fetch_ms"] {
		t.Errorf("floor p99 %v below its p50 %v", got["floor_p99_publish_to_fetch_ms"], got["floor_p50_publish_to_fetch_ms"])
	}
}

// newBenchProcessor opens a Processor as run keeps it (real Badger in dir and
// ONNX Runtime, the shipped policy, event time, an open-order index) and
// simulates n events for it.
func newBenchProcessor(tb testing.TB, dir string, n int) (*process.Processor, *store.Store, []*process.Message) {
	tb.Helper()
	var msgs []*process.Message
	err := simulateN(context.Background(), sim.Normal, 1, n, sim.DefaultFaults, func(subject, id string, data []byte) error {
		msgs = append(msgs, &process.Message{Seq: uint64(len(msgs) + 1), Subject: storedSubject(subject), Data: slices.Clone(data),
			Header: nats.Header{jetstream.MsgIDHeader: []string{id}}})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "badger")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	registry, err := newRegistry(filepath.Join(dir, "models"), log, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { registry.Close() })
	policy, err := actions.LoadPolicy("")
	if err != nil {
		tb.Fatal(err)
	}
	proc, err := process.New(process.Options{
		Store: st, Policy: actions.NewLive(policy), Scorer: &registryScorer{r: registry}, Logger: log, EventTime: true,
		OpenOrders: process.NewOpenIndex(), // as run keeps it
		DeadLetter: func(context.Context, *process.Message, string, string) error { return nil },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return proc, st, msgs
}

// processBatches runs msgs through proc as the live pipeline does: each batch
// is staged while the one before commits, and a batch too big is applied in
// parts, each in its own commit. It returns when the last batch committed.
func processBatches(tb testing.TB, proc *process.Processor, msgs []*process.Message, batchSize int) {
	tb.Helper()
	ctx := context.Background()
	var flight *process.Flight
	for i := 0; i < len(msgs); i += batchSize {
		part := msgs[i:min(i+batchSize, len(msgs))]
		staged, err := proc.Stage(ctx, part)
		if flight != nil {
			if _, err := proc.Wait(flight); err != nil {
				tb.Fatal(err)
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
			tb.Fatal(err)
		}
	}
	if flight != nil {
		if _, err := proc.Wait(flight); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestOrderIDOfSimulatedEvent: the state floor keys its records by the order
// of the simulated event, found without decoding it.
func TestOrderIDOfSimulatedEvent(t *testing.T) {
	var got, want []string
	err := simulateN(context.Background(), sim.Normal, 1, 50, sim.DefaultFaults, func(_, _ string, data []byte) error {
		var ev struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return err
		}
		got, want = append(got, orderID(data)), append(want, ev.OrderID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || !slices.ContainsFunc(want, func(id string) bool { return id != "" }) {
		t.Errorf("orderID gave %q, the decoded events %q", got, want)
	}
	if id := orderID([]byte(`{"id":"e1"}`)); id != "" {
		t.Errorf("orderID of an event without order_id = %q, want empty", id)
	}
}

// TestBenchLatencyRate checks that --latency-rate sets the rate of the latency
// phases, in place of half the sustained rate.
func TestBenchLatencyRate(t *testing.T) {
	c := benchConfig{Events: 2000, Scenario: "normal", BatchSize: 256, NATSSync: "always", Latency: time.Second, LatencyRate: 300}
	got := runBench(t, context.Background(), c)
	checkFigures(t, got)
	if got["latency_events_per_s"] != 300 {
		t.Errorf("latency_events_per_s = %v, want the 300 of --latency-rate", got["latency_events_per_s"])
	}
}

// TestBenchOnNATSURL runs the bench on a standalone server (a second nats-server
// beside the bench, as --nats-url finds one): every figure, and nothing of the
// bench left on the server after it.
func TestBenchOnNATSURL(t *testing.T) {
	ns := natstest.Start(t, nil)
	c := benchConfig{Events: 2000, Scenario: "normal", BatchSize: 256, Latency: time.Second, LatencyRate: 300,
		NATS: natsFlags{URL: ns.ClientURL(), Replicas: 1}}
	checkFigures(t, runBench(t, context.Background(), c))
	js := natstest.JetStream(t, ns.ClientURL())
	if names := streamNames(t, js); len(names) > 0 {
		t.Errorf("the bench left streams %v on the server", names)
	}
}

// TestBenchRefusesAServerWithOrderwatchStreams checks that the bench neither
// touches nor deletes a stream it did not create: a server that already has
// ORDERS (or ORDERS_DLQ, or ACTIONS) is refused with errServerInUse, and the
// stream keeps its message and has no consumer of the bench's.
func TestBenchRefusesAServerWithOrderwatchStreams(t *testing.T) {
	for _, name := range []string{pipeline.StreamOrders, pipeline.StreamDLQ, pipeline.StreamActions} {
		t.Run(name, func(t *testing.T) {
			ns := natstest.Start(t, nil)
			js := natstest.JetStream(t, ns.ClientURL())
			ctx := context.Background()
			subject := "user." + strings.ToLower(name)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}}); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, subject, []byte("theirs")); err != nil {
				t.Fatal(err)
			}
			c := benchConfig{Events: 2000, Scenario: "normal", BatchSize: 256, Latency: time.Second,
				NATS: natsFlags{URL: ns.ClientURL(), Replicas: 1}}
			err := bench(ctx, c, io.Discard, io.Discard)
			if !errors.Is(err, errServerInUse) {
				t.Fatalf("bench on a server with %s: %v, want errServerInUse", name, err)
			}
			if !strings.Contains(err.Error(), "did not create") {
				t.Errorf("error %q does not say the stream is not the bench's", err)
			}
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatalf("the user's stream %s: %v", name, err)
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != 1 || info.State.Consumers != 0 {
				t.Errorf("the user's stream %s holds %d messages and %d consumers, want its 1 and none", name, info.State.Msgs, info.State.Consumers)
			}
			if names := streamNames(t, js); len(names) != 1 {
				t.Errorf("streams %v on the server, want the user's %s alone", names, name)
			}
		})
	}
}

// TestBenchInterruptedDeletesItsStreams interrupts the bench while it publishes
// to the server of --nats-url: it returns, and its streams are gone.
func TestBenchInterruptedDeletesItsStreams(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := benchConfig{Events: 200_000, Scenario: "normal", BatchSize: 256, Latency: time.Second,
		NATS: natsFlags{URL: ns.ClientURL(), Replicas: 1}}
	done := make(chan error, 1)
	go func() { done <- bench(ctx, c, io.Discard, io.Discard) }()
	// Interrupt once the bench's ORDERS holds messages.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the bench stored no event on the server within a minute")
		}
		s, err := js.Stream(ctx, pipeline.StreamOrders)
		if err == nil && s.CachedInfo().State.Msgs > 0 {
			break
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("interrupted bench returned %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the interrupted bench did not return within a minute")
	}
	if names := streamNames(t, js); len(names) > 0 {
		t.Errorf("the interrupted bench left streams %v on the server", names)
	}
}

// streamNames lists the streams of the server.
func streamNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	l := js.StreamNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// BenchmarkProcess runs the pipeline's Processor (decode, fold, features, both
// models, policy, one synced Badger commit per batch, each batch staged while the
// one before commits) over simulated events on event time, without JetStream: the
// CPU and allocations per event of everything after the fetch.
//
//	go test -run X -bench Process -benchtime 100000x ./cmd/orderwatch
func BenchmarkProcess(b *testing.B) {
	const batchSize = 1024
	dir := b.TempDir()
	if d := os.Getenv("BENCH_DIR"); d != "" {
		dir = d
	}
	proc, st, msgs := newBenchProcessor(b, dir, max(b.N, batchSize))
	b.ReportAllocs()
	b.ResetTimer()
	processBatches(b, proc, msgs[:b.N], batchSize)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	stats, err := st.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(stats.Decisions)/float64(b.N), "decisions/event")
	b.ReportMetric(float64(stats.OpenOrders), "open_orders")
	var n, size int
	_ = st.Orders(func(_ string, rec []byte) error { n++; size += len(rec); return nil })
	b.ReportMetric(float64(size)/float64(max(n, 1)), "record_bytes")
}

// storedSubject is the subject ORDERS (DefaultPartitions) stores a message
// published to subject under: orders.<type>.<token> gets the token's partition
// in front, orders.<type> stays.
func storedSubject(subject string) string {
	tokens := strings.Split(subject, ".")
	if len(tokens) != 4 {
		return subject
	}
	return fmt.Sprintf("orders.%d.%s", features.Partition(tokens[3], pipeline.DefaultPartitions), strings.Join(tokens[1:], "."))
}
