package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/sim"
)

type benchConfig struct {
	Events    int
	Scenario  string
	BatchSize int
	NATSSync  string
	// NATS, with a URL, runs every phase on that server instead of embedded
	// ones (see benchServer).
	NATS    natsFlags
	Latency time.Duration
	// LatencyRate is the rate of the latency phases, in events per second; 0
	// means half the sustained rate.
	LatencyRate       float64
	CPUProfile        string
	MemProfile        string
	LatencyCPUProfile string
	// LatencyTrace, when set, is the file of a runtime/trace of the pipeline's
	// latency phase (go tool trace).
	LatencyTrace string
	// VlogGC is the interval of Badger's value-log GC during the pipeline's
	// phases; 0 runs none.
	VlogGC time.Duration
}

func benchCmd(args []string) error {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&c.Events, "events", 100_000, "simulated `events` through the floor and the pipeline")
	fs.StringVar(&c.Scenario, "scenario", "normal", "simulator `scenario`")
	fs.IntVar(&c.BatchSize, "batch-size", 1024, "pipeline batch `size`")
	fs.StringVar(&c.NATSSync, "nats-sync", "always", "embedded JetStream sync `policy`, the same for the floor and the pipeline")
	c.NATS.register(fs, "run every phase on the nats-server at `url` instead of embedded ones: a server of the bench's own, where it creates ORDERS, ORDERS_DLQ and ACTIONS and deletes them at its end (it refuses a server that has them)")
	fs.DurationVar(&c.Latency, "latency-for", 10*time.Second, "how long to publish at the latency rate to measure latency")
	fs.Float64Var(&c.LatencyRate, "latency-rate", 0, "`events` per second of the latency phases, the pipeline's and the floor's (0 = half the sustained rate)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the pipeline phase to `file` (go tool pprof)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile at the end of the pipeline phase to `file` (go tool pprof)")
	fs.DurationVar(&c.VlogGC, "vlog-gc-every", 30*time.Second, "`interval` of Badger's value-log GC during the pipeline's phases (run does it every 5 minutes; 0 = none)")
	fs.StringVar(&c.LatencyCPUProfile, "latency-cpuprofile", "", "write a CPU profile of the pipeline's latency phase to `file` (go tool pprof)")
	fs.StringVar(&c.LatencyTrace, "latency-trace", "", "write a runtime trace of the pipeline's latency phase to `file` (go tool trace: where the goroutines wait)")
	memLimit := memoryLimit{auto: true}
	fs.Var(&memLimit, "memory-limit", "Go heap soft `limit`, as run takes it: auto, off, or a size such as 768MiB")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if c.Events < 1000 {
		return errors.New("bench: --events must be at least 1000")
	}
	if c.LatencyRate < 0 {
		return errors.New("bench: --latency-rate must be positive, or 0 for half the sustained rate")
	}
	if err := c.NATS.check(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.NATS.URL != "" {
		var syncSet bool
		fs.Visit(func(f *flag.Flag) { syncSet = syncSet || f.Name == "nats-sync" })
		if syncSet {
			return errors.New("bench: --nats-sync sets the embedded servers' sync; the server of --nats-url syncs as it is configured (sync_interval in its jetstream block): drop one of them")
		}
	}
	memLimit.apply(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	// An interrupt ends the bench through ctx, so that it deletes what it
	// created on the server of --nats-url.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench(ctx, c, os.Stdout, os.Stderr)
}

// bench measures, in one run on one machine and one sync setting, the JetStream
// floor (publish, then a durable pull consumer that only fetches and acks) and the
// full pipeline over the same simulated events, and prints one figure per line.
func bench(ctx context.Context, c benchConfig, out, stderr io.Writer) error {
	scenario, err := sim.ParseScenario(c.Scenario)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp("", "orderwatch-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	// Progress goes to a terminal only; scripts get the figures on stdout alone.
	say := func(string, ...any) {}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		say = func(format string, a ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", a...) }
	}
	if c.NATS.URL != "" {
		if err := checkBenchServer(ctx, c.NATS); err != nil {
			return err
		}
		say("%d %s events on the nats-server at %s (its own sync setting), batch %d, data in %s", c.Events, scenario, redactURLs(c.NATS.URL), c.BatchSize, root)
	} else {
		say("%d %s events, nats sync %s, batch %d, data in %s", c.Events, scenario, c.NATSSync, c.BatchSize, root)
	}

	stopAnon := anonPeak(100 * time.Millisecond)
	floor, err := benchFloor(ctx, c, scenario, filepath.Join(root, "floor"), say)
	if err != nil {
		return fmt.Errorf("bench: floor: %w", err)
	}
	res, err := benchPipeline(ctx, c, scenario, floor.ingest, filepath.Join(root, "pipeline"), stderr, say)
	if err != nil {
		return fmt.Errorf("bench: pipeline: %w", err)
	}
	state, err := benchStateFloor(ctx, c, scenario, filepath.Join(root, "state-floor"), res.recordBytes, say)
	if err != nil {
		return fmt.Errorf("bench: state floor: %w", err)
	}
	say("floor latency: publishing %d events at %.0f/s", res.latencyEvents, res.latencyRate)
	floorP50, floorP99, err := benchFloorLatency(ctx, c, scenario, filepath.Join(root, "floor-latency"), res.latencyRate, res.latencyEvents)
	if err != nil {
		return fmt.Errorf("bench: floor latency: %w", err)
	}
	fmt.Fprintf(out, "floor_events_per_s %.0f\n", floor.rate)
	fmt.Fprintf(out, "pipeline_events_per_s %.0f\n", res.rate)
	fmt.Fprintf(out, "ratio %.2f\n", res.rate/floor.rate)
	fmt.Fprintf(out, "state_floor_events_per_s %.0f\n", state.rate)
	fmt.Fprintf(out, "state_floor_ratio %.2f\n", state.rate/floor.rate)
	fmt.Fprintf(out, "floor_cpu_us_per_event %.1f\n", floor.cpuUS)
	fmt.Fprintf(out, "state_floor_cpu_us_per_event %.1f\n", state.cpuUS)
	fmt.Fprintf(out, "pipeline_cpu_us_per_event %.1f\n", res.cpuUS)
	fmt.Fprintf(out, "p50_event_to_decision_ms %.1f\n", res.p50)
	fmt.Fprintf(out, "p99_event_to_decision_ms %.1f\n", res.p99)
	fmt.Fprintf(out, "latency_events_per_s %.0f\n", res.latencyRate)
	fmt.Fprintf(out, "p50_publish_to_stored_ms %.2f\n", res.storedP50)
	fmt.Fprintf(out, "p99_publish_to_stored_ms %.2f\n", res.storedP99)
	fmt.Fprintf(out, "latency_batches %d\n", res.latencyBatches)
	fmt.Fprintf(out, "latency_batch_mean_messages %.1f\n", res.latencyBatchMean)
	fmt.Fprintf(out, "latency_batch_max_messages %d\n", res.latencyBatchMax)
	fmt.Fprintf(out, "latency_outbox_depth_start %.0f\n", res.outboxStart)
	fmt.Fprintf(out, "latency_outbox_depth_end %.0f\n", res.outboxEnd)
	fmt.Fprintf(out, "latency_rescores_per_event %.2f\n", res.rescoresPerEvent)
	fmt.Fprintf(out, "floor_p50_publish_to_fetch_ms %.2f\n", floorP50)
	fmt.Fprintf(out, "floor_p99_publish_to_fetch_ms %.2f\n", floorP99)
	fmt.Fprintf(out, "scoring_us_per_order %.2f\n", res.scoringUS)
	fmt.Fprintf(out, "peak_rss_mb %.0f\n", peakRSSMB())
	fmt.Fprintf(out, "peak_anon_rss_mb %.0f\n", stopAnon())
	fmt.Fprintf(out, "memory_limit_mb %.0f\n", float64(currentMemoryLimit())/(1<<20))
	fmt.Fprintf(out, "badger_bytes_per_open_order %.0f\n", res.badgerPerOrder)
	fmt.Fprintf(out, "durable_writes_per_event %.2f\n", res.writesPerEvent)
	fmt.Fprintf(out, "writes_per_event_by_kind %s\n", res.writesByKind)
	fmt.Fprintf(out, "durable_bytes_per_event %.0f\n", res.bytesPerEvent)
	fmt.Fprintf(out, "bytes_per_event_by_kind %s\n", res.bytesByKind)
	fmt.Fprintf(out, "scored_rows_per_event %.2f\n", res.rowsPerEvent)
	return nil
}

// writesPer divides the store's writes by the events committed: in all, and by
// record kind, largest first ("o/=1.00 t/=0.98 ...").
func writesPer(w map[string]uint64, events int64) (float64, string) {
	return perEvent(w, events, "%s=%.2f")
}

// perEvent divides counts by kind by the events committed: their sum, and
// each kind's share in format, largest first.
func perEvent(w map[string]uint64, events int64, format string) (float64, string) {
	if events <= 0 {
		return 0, "-"
	}
	kinds := make([]string, 0, len(w))
	var all uint64
	for k, n := range w {
		kinds = append(kinds, k)
		all += n
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if w[a] != w[b] {
			return cmpDesc(w[a], w[b])
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf(format, k, float64(w[k])/float64(events))
	}
	return float64(all) / float64(events), strings.Join(parts, " ")
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

// benchDupeWindow is the Nats-Msg-Id dedupe window of the benchmark's streams.
// JetStream keeps every id published within it (about 115 bytes each): the bench
// publishes its N events at well over 100,000/s, so with the product's 2 minutes
// the window would hold all of them, and the embedded server's memory would grow
// with N (1.1 GiB at 10 million). The simulator's duplicate copies follow their
// original within a few hundred events; 10 s holds them at any rate.
const benchDupeWindow = 10 * time.Second

var errEnough = errors.New("enough events")

// simulateN emits the first n events of a simulated network.
func simulateN(ctx context.Context, scenario sim.Scenario, seed uint64, n int, faults sim.Faults, emit func(subject, id string, data []byte) error) error {
	s, err := sim.New(sim.Options{Scenario: scenario, Seed: seed, Faults: faults})
	if err != nil {
		return err
	}
	count := 0
	err = s.Run(ctx, func(ev *sim.Emitted) error {
		if count == n {
			return errEnough
		}
		count++
		return emit(ev.Subject(), eventID(ev.Data), ev.Data)
	})
	if errors.Is(err, errEnough) || (err == nil && count == n) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("the simulation ended after %d of %d events", count, n)
	}
	return err
}

func eventID(data []byte) string {
	const prefix = `{"id":"`
	rest, ok := bytes.CutPrefix(data, []byte(prefix))
	if !ok {
		return ""
	}
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// publishAll publishes the first n simulated events, asynchronously with a bounded
// window, waits for every acknowledgement and returns how many messages ORDERS
// holds (fewer than n, since the simulated bus duplicates some events and
// JetStream drops those copies by Nats-Msg-Id) and the rate at which JetStream
// took them, acknowledgements included.
func publishAll(ctx context.Context, js jetstream.JetStream, scenario sim.Scenario, seed uint64, n int) (int, float64, error) {
	start := time.Now()
	err := simulateN(ctx, scenario, seed, n, sim.DefaultFaults, func(subject, id string, data []byte) error {
		_, err := publishAsync(ctx, js, subject, id, data)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	rate := float64(n) / time.Since(start).Seconds()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return int(info.State.Msgs), rate, nil
}

// publishAsync publishes without waiting for the ack; when too many acks are
// outstanding it waits for them and tries again.
func publishAsync(ctx context.Context, js jetstream.JetStream, subject, id string, data []byte) (jetstream.PubAckFuture, error) {
	for {
		f, err := js.PublishAsync(subject, slices.Clone(data), jetstream.WithMsgID(id))
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return f, err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// floorResult is what the floor measured: the rate at which a durable pull
// consumer fetches and acks, and the rate at which JetStream took the published
// events.
type floorResult struct{ rate, ingest, cpuUS float64 }

// benchFloor measures how fast a durable pull consumer fetches and acks n
// published event messages, and how fast they were published.
func benchFloor(ctx context.Context, c benchConfig, scenario sim.Scenario, dir string, say func(string, ...any)) (floorResult, error) {
	var res floorResult
	js, stop, err := benchServer(ctx, c, dir)
	if err != nil {
		return res, err
	}
	defer stop()
	stored, ingest, err := publishAll(ctx, js, scenario, 1, c.Events)
	if err != nil {
		return res, err
	}
	res.ingest = ingest
	say("floor: %d events published and stored at %.0f/s", c.Events, ingest)
	it, err := floorConsumer(ctx, js, benchFloorConsumer, c.BatchSize)
	if err != nil {
		return res, err
	}
	defer it.Stop()
	cpu0 := cpuTime()
	start := time.Now()
	for range stored {
		m, err := nextMsg(ctx, it)
		if err != nil {
			return res, err
		}
		if err := m.Ack(); err != nil {
			return res, err
		}
	}
	res.rate = float64(stored) / time.Since(start).Seconds()
	res.cpuUS = float64(cpuTime()-cpu0) / float64(max(stored, 1)) / 1e3
	say("floor: %d messages fetched and acked at %.0f/s", stored, res.rate)
	return res, nil
}

// floorConsumer opens the floor's durable pull consumer on ORDERS, with the
// pipeline's fetch window for a batch size: it only fetches and acks.
func floorConsumer(ctx context.Context, js jetstream.JetStream, name string, batchSize int) (jetstream.MessagesContext, error) {
	cons, err := js.CreateOrUpdateConsumer(ctx, pipeline.StreamOrders, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 8 * batchSize,
	})
	if err != nil {
		return nil, err
	}
	return cons.Messages(jetstream.PullMaxMessages(2 * batchSize))
}

// nextMsg is it.Next, which reports a missed heartbeat and goes on: on a
// loaded machine a heartbeat can come late, and the messages still come. It
// gives up when ctx is done.
func nextMsg(ctx context.Context, it jetstream.MessagesContext) (jetstream.Msg, error) {
	for {
		m, err := it.Next()
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			return m, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (the server sends no heartbeats)", ctx.Err())
		}
	}
}

type pipelineResult struct {
	rate, p50, p99, scoringUS, badgerPerOrder float64
	// latencyRate is the rate the latency phase published latencyEvents at.
	latencyRate   float64
	latencyEvents int
	// latencyBatches is the number of batches the latency phase committed, of
	// latencyBatchMean messages on average and latencyBatchMax at most.
	latencyBatches, latencyBatchMax int
	latencyBatchMean                float64
	// outboxStart and outboxEnd are the executor's outbox depth at its last
	// scan when the latency phase starts and when it ends.
	outboxStart, outboxEnd float64
	// rescoresPerEvent is the orders the latency phase rescored by a timer
	// (orderwatch_rescores_total) per event published: on event time they
	// fire with the event that moves the watermark past them, and a pickup
	// time shared by many orders makes one batch carry hundreds.
	rescoresPerEvent float64
	// storedP50 and storedP99 are the latency phase's times from publish to
	// JetStream's ack: the share of p50 and p99 before the pipeline sees it.
	storedP50, storedP99 float64
	// writesPerEvent is the store's writes and deletes in the drain phase per
	// message committed, writesByKind the same by record kind.
	writesPerEvent float64
	writesByKind   string
	// bytesPerEvent is the key and value bytes the store wrote in the drain
	// phase per message committed, bytesByKind the same by record kind.
	bytesPerEvent float64
	bytesByKind   string
	// rowsPerEvent is the rows the models scored in the drain phase per
	// message committed.
	rowsPerEvent float64
	// recordBytes is the mean size of an order record the drain wrote, key
	// included; cpuUS the process's CPU time per message committed in it.
	recordBytes int
	cpuUS       float64
}

// timedScorer measures the scoring of the pipeline's batches.
type timedScorer struct {
	pipeline.Scorer
	rows atomic.Int64
	nano atomic.Int64
}

func (t *timedScorer) Score(rows []float32, texts [][]string, risk, classes []float32) (pipeline.Scored, error) {
	start := time.Now()
	sc, err := t.Scorer.Score(rows, texts, risk, classes)
	t.nano.Add(int64(time.Since(start)))
	t.rows.Add(int64(len(risk)))
	return sc, err
}

// benchPipeline measures the pipeline's rate over the published events, then the
// event-to-decision latency at half the sustained rate: half the slower of the
// pipeline and JetStream's ingest (with sync always, the server syncs every
// published message and may take events slower than the pipeline handles them).
func benchPipeline(ctx context.Context, c benchConfig, scenario sim.Scenario, ingest float64, dir string, stderr io.Writer, say func(string, ...any)) (pipelineResult, error) {
	var res pipelineResult
	js, st, stored, stop, err := benchStream(ctx, c, scenario, dir)
	if err != nil {
		return res, err
	}
	defer stop()
	// Errors (a batch that does not commit, a model that fails) make the figures
	// meaningless: they go to stderr.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	registry, err := newRegistry(filepath.Join(dir, "models"), log, nil)
	if err != nil {
		return res, err
	}
	defer registry.Close()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		return res, err
	}
	// The executor's metrics say how far behind it is when the latency phase
	// starts and ends (orderwatch_outbox_depth).
	execMetrics := prometheus.NewRegistry()
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Publish: actionPublisher(js), Logger: log, Registerer: execMetrics})
	if err != nil {
		return res, err
	}
	scorer := &timedScorer{Scorer: &registryScorer{r: registry}}
	// The processor's metrics say how many timers the latency phase fired.
	pipeMetrics := prometheus.NewRegistry()

	var committed atomic.Int64
	probe := newLatencyProbe()
	// Event time: the simulated stream covers hours of a network in seconds, and
	// its orders are scored at the moments of their events, as replay does; on
	// the wall clock every simulated order would be long past its cutoff.
	pipe, err := pipeline.New(pipeline.Options{
		JetStream: js, Store: st, Policy: actions.NewLive(policy), Scorer: scorer, OnCommit: exec.Wake, BatchSize: c.BatchSize, Logger: log,
		EventTime: true, Group: benchGroup, Registerer: pipeMetrics,
		OnCommitted: func(msgs []*pipeline.Message) {
			committed.Add(int64(len(msgs)))
			probe.committed(len(msgs))
			now := time.Now()
			for _, m := range msgs {
				probe.seen(m.Header.Get(jetstream.MsgIDHeader), now)
			}
		},
	})
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	runs := []func(context.Context) error{pipe.Run, exec.Run}
	if c.VlogGC > 0 {
		// Badger's value-log GC, as in run, by default every 30 s: the bench
		// writes a day of a large distributor's events in a minute.
		runs = append(runs, func(ctx context.Context) error { return st.RunGC(ctx, c.VlogGC) })
	}
	for _, run := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(runCtx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	stopProfile, err := startCPUProfile(c.CPUProfile)
	if err != nil {
		return res, err
	}
	cpu0 := cpuTime()
	start := time.Now()
	for committed.Load() < int64(stored) {
		if err := ctx.Err(); err != nil {
			_ = stopProfile()
			return res, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu1 := cpuTime()
	if err := stopProfile(); err != nil {
		return res, err
	}
	res.rate = float64(stored) / elapsed.Seconds()
	res.writesPerEvent, res.writesByKind = writesPer(st.Writes(), committed.Load())
	res.bytesPerEvent, res.bytesByKind = perEvent(st.WriteBytes(), committed.Load(), "%s=%.0f")
	if n := st.Writes()["o/"]; n > 0 {
		res.recordBytes = int(st.WriteBytes()["o/"] / n)
	}
	res.cpuUS = float64(cpu1-cpu0) / float64(max(committed.Load(), 1)) / 1e3
	if c.MemProfile != "" {
		if err := writeHeapProfile(c.MemProfile); err != nil {
			return res, err
		}
	}
	say("pipeline: %d messages applied, scored, decided and committed at %.0f/s", stored, res.rate)
	if n := scorer.rows.Load(); n > 0 {
		res.scoringUS = float64(scorer.nano.Load()) / float64(n) / 1e3
		res.rowsPerEvent = float64(n) / float64(max(committed.Load(), 1))
	}

	// Latency at --latency-rate, or half the sustained rate, on the events that follow in the same
	// simulated stream: the network, its open orders and their rescoring go on
	// as in the first phase.
	res.latencyRate = c.LatencyRate
	if res.latencyRate == 0 {
		res.latencyRate = min(res.rate, ingest) / 2
	}
	res.latencyEvents = max(int(res.latencyRate*c.Latency.Seconds()), 100)
	say("latency: publishing %d events at %.0f/s", res.latencyEvents, res.latencyRate)
	// The simulated bus duplicates some events; JetStream drops a copy by its
	// Nats-Msg-Id and says so in its ack, and a dropped copy never commits.
	res.outboxStart = gaugeValue(execMetrics, "orderwatch_outbox_depth")
	rescoresStart := counterValue(pipeMetrics, "orderwatch_rescores_total")
	stopProfile, err = startCPUProfile(c.LatencyCPUProfile)
	if err != nil {
		return res, err
	}
	stopTrace, err := startTrace(c.LatencyTrace)
	if err != nil {
		_ = stopProfile()
		return res, err
	}
	err = probe.publish(ctx, js, scenario, c.Events, res.latencyEvents, res.latencyRate)
	if err == nil {
		probe.drain(ctx, time.Minute)
	}
	if terr := stopTrace(); err == nil {
		err = terr
	}
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return res, err
	}
	res.p50, res.p99 = probe.percentiles()
	res.latencyBatches, res.latencyBatchMean, res.latencyBatchMax = probe.batchSizes()
	res.storedP50, res.storedP99 = probe.storedPercentiles()
	res.outboxEnd = gaugeValue(execMetrics, "orderwatch_outbox_depth")
	res.rescoresPerEvent = (counterValue(pipeMetrics, "orderwatch_rescores_total") - rescoresStart) / float64(res.latencyEvents)

	stats, err := st.Stats()
	if err != nil {
		return res, err
	}
	if stats.OpenOrders > 0 {
		res.badgerPerOrder = float64(dirSize(filepath.Join(dir, "badger"))) / float64(stats.OpenOrders)
	}
	return res, nil
}

// gaugeValue reads a gauge without labels from a registry; 0 when missing.
func gaugeValue(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// counterValue reads a counter without labels from a registry; 0 when missing.
func counterValue(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// startCPUProfile starts a CPU profile to path; "" profiles nothing. stop ends
// it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error { pprof.StopCPUProfile(); return f.Close() }, nil
}

// startTrace starts a runtime trace to path; "" traces nothing. stop ends it
// and closes the file.
func startTrace(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error { trace.Stop(); return f.Close() }, nil
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// peakRSSMB is the process's peak resident set (VmHWM), in MiB.
func peakRSSMB() float64 { return statusMB("VmHWM:") }

// statusMB reads a memory field of /proc/self/status, in MiB; 0 when missing.
func statusMB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// anonPeak samples the process's anonymous resident memory (RssAnon: the heap of
// Go and of ONNX Runtime, stacks) until stop is called, which returns its peak in
// MiB. The kernel keeps no high-water mark of it, unlike VmHWM, which also counts
// the pages of files mapped into memory: Badger maps its tables, so VmHWM grows
// with the database as compactions read it, while those pages stay page cache the
// kernel takes back under pressure.
func anonPeak(every time.Duration) (stop func() float64) {
	done := make(chan struct{})
	peak := make(chan float64)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var hi float64
		for {
			hi = max(hi, statusMB("RssAnon:"))
			select {
			case <-done:
				peak <- hi
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 { close(done); return <-peak }
}
