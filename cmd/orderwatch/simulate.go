package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/term"

	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/sim"
)

// simulateConfig holds the flags of `orderwatch simulate`.
type simulateConfig struct {
	Orders   int64
	Seed     uint64
	Start    time.Time
	Warmup   time.Duration
	Scenario sim.Scenario
	Scale    float64
	Out      string
	NATS     natsFlags
	// Partitions of ORDERS when simulate creates it; 0 means the existing
	// stream's, or pipeline.DefaultPartitions.
	Partitions int
	Rate       float64
	Labels     string
	// Causes is a file to write the ground truth of shared causes to (NDJSON).
	Causes string
	Faults sim.Faults
	// OCEL2 is a file to write the run's history to as an OCEL 2.0 JSON log.
	OCEL2 string
}

func parseSimulateFlags(args []string, stderr io.Writer) (simulateConfig, error) {
	var (
		c             simulateConfig
		start, scname string
	)
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Int64Var(&c.Orders, "orders", 10000, "`orders` to simulate; the run ends when every one is finished")
	fs.Uint64Var(&c.Seed, "seed", 1, "random `seed`; part of every event and order id")
	fs.StringVar(&start, "start", sim.DefaultStart.Format(time.RFC3339), "time of the first order, `RFC3339`")
	fs.DurationVar(&c.Warmup, "warmup", 48*time.Hour, "network `history` simulated before --start and not written, so the stream starts on a loaded network")
	fs.StringVar(&scname, "scenario", string(sim.Normal), "`scenario`: normal, peak, carrier-disruption, warehouse-outage or incidents")
	fs.Float64Var(&c.Scale, "scale", 1, "network `size`: order volume, pickers, customers, trailers")
	fs.StringVar(&c.Out, "out", "", "write NDJSON events to `file` (default stdout unless --nats-url)")
	c.NATS.register(fs, "publish to JetStream at `url` instead (subject orders.<type>.<order_id>, Nats-Msg-Id = id)")
	fs.IntVar(&c.Partitions, "partitions", 0, "with --nats-url: `n` partitions of ORDERS if it is created (0 = an existing stream's, else 16)")
	fs.Float64Var(&c.Rate, "rate", 0, "with --nats-url: at most `n` events per second (0 = as fast as possible)")
	fs.StringVar(&c.Labels, "labels", "", "write the ground truth to `file` (CSV: order_id,missed_cutoff,minutes_late,exception_class)")
	fs.StringVar(&c.Causes, "causes", "", "write the ground truth of shared causes to `file` (NDJSON: order_id, kind, id, at; one line per order and cause)")
	fs.StringVar(&c.OCEL2, "ocel2", "", "also write the run's history as an OCEL 2.0 JSON log to `file` (duplicates left out; import it with examples/mapping/simulator-ocel2.yaml)")
	fs.Float64Var(&c.Faults.Duplicates, "duplicates", sim.DefaultFaults.Duplicates, "`share` of events delivered twice (same id)")
	fs.Float64Var(&c.Faults.OutOfOrder, "out-of-order", sim.DefaultFaults.OutOfOrder, "`share` of events delivered after later ones")
	fs.Float64Var(&c.Faults.Late, "late", sim.DefaultFaults.Late, "`share` of events delivered 10 min to 4 h after they happened")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("simulate: unexpected argument %q", fs.Arg(0))
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return c, fmt.Errorf("--start %q: want RFC 3339, e.g. 2026-05-18T00:00:00Z", start)
	}
	c.Start = t
	if c.Scenario, err = sim.ParseScenario(scname); err != nil {
		return c, fmt.Errorf("--scenario: %w", err)
	}
	if err := c.NATS.check(); err != nil {
		return c, fmt.Errorf("simulate: %w", err)
	}
	switch {
	case c.Orders <= 0:
		return c, fmt.Errorf("--orders %d: want at least 1", c.Orders)
	case c.Out != "" && c.NATS.URL != "":
		return c, errors.New("--out and --nats-url: choose one")
	case c.Rate < 0:
		return c, fmt.Errorf("--rate %v: want >= 0", c.Rate)
	case c.Rate > 0 && c.NATS.URL == "":
		return c, errors.New("--rate needs --nats-url")
	case c.Partitions < 0 || c.Partitions > pipeline.MaxPartitions:
		return c, fmt.Errorf("--partitions %d: want 1..%d, or 0", c.Partitions, pipeline.MaxPartitions)
	case c.Partitions > 0 && c.NATS.URL == "":
		return c, errors.New("--partitions needs --nats-url")
	}
	return c, nil
}

func simulateCmd(args []string) error {
	cfg, err := parseSimulateFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return simulate(ctx, cfg, os.Stdout, os.Stderr)
}

// simulate runs the simulator into a file, stdout or JetStream and writes a
// summary to stderr (progress too when stderr is a terminal).
func simulate(ctx context.Context, cfg simulateConfig, stdout, stderr io.Writer) (err error) {
	opts := sim.Options{
		Scenario: cfg.Scenario, Orders: cfg.Orders, Seed: cfg.Seed, Start: cfg.Start,
		Warmup: cfg.Warmup, Scale: cfg.Scale, Faults: cfg.Faults,
	}
	var labels *sim.LabelWriter
	if cfg.Labels != "" {
		f, ferr := os.Create(cfg.Labels)
		if ferr != nil {
			return fmt.Errorf("labels: %w", ferr)
		}
		defer closeErr(f, &err)
		labels = sim.NewLabelWriter(f)
		opts.Labels = labels.Write
	}
	var causes *sim.CauseWriter
	if cfg.Causes != "" {
		f, ferr := os.Create(cfg.Causes)
		if ferr != nil {
			return fmt.Errorf("causes: %w", ferr)
		}
		defer closeErr(f, &err)
		causes = sim.NewCauseWriter(f)
		opts.Causes = causes.Write
	}
	s, err := sim.New(opts)
	if err != nil {
		return err
	}

	var emit sim.EmitFunc
	var pub *jsSink
	var out *bufio.Writer
	if cfg.NATS.URL != "" {
		pub, err = newJSSink(ctx, cfg.NATS, cfg.Partitions, 4096, stderr)
		if err != nil {
			return err
		}
		defer pub.close()
		emit = pub.emit
		if cfg.Rate > 0 {
			emit = paced(emit, cfg.Rate)
		}
	} else {
		w := stdout
		if cfg.Out != "" && cfg.Out != "-" {
			f, ferr := os.Create(cfg.Out)
			if ferr != nil {
				return fmt.Errorf("out: %w", ferr)
			}
			defer closeErr(f, &err)
			w = f
		}
		out = bufio.NewWriterSize(w, 1<<20)
		emit = func(ev *sim.Emitted) error {
			out.Write(ev.Data)
			return out.WriteByte('\n')
		}
	}
	var ocel *sim.OCELWriter
	if cfg.OCEL2 != "" {
		if ocel, err = sim.NewOCELWriter(filepath.Dir(cfg.OCEL2)); err != nil {
			return err
		}
		defer ocel.Close()
		next := emit
		emit = func(ev *sim.Emitted) error {
			if err := ocel.Add(ev); err != nil {
				return err
			}
			return next(ev)
		}
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		emit = withProgress(emit, s, stderr)
	}

	began := time.Now()
	runErr := s.Run(ctx, emit)
	if out != nil {
		if err := out.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("out: %w", err)
		}
	}
	if pub != nil && runErr == nil {
		runErr = pub.drain(ctx)
	}
	if labels != nil {
		if err := labels.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("labels: %w", err)
		}
	}
	if causes != nil {
		if err := causes.Flush(); err != nil && runErr == nil {
			runErr = fmt.Errorf("causes: %w", err)
		}
	}
	if ocel != nil && runErr == nil {
		runErr = writeOCEL(cfg.OCEL2, ocel, stderr)
	}
	elapsed := time.Since(began)
	st := s.Stats()
	missed := 0.0
	if st.Labelled > 0 {
		missed = 100 * float64(st.Missed) / float64(st.Labelled)
	}
	fmt.Fprintf(stderr, "simulate: %d events (%d duplicates, %d out of order, %d late), %d orders, %.2f s, %.0f events/s, missed cutoff %.1f%%",
		st.Events, st.Duplicates, st.OutOfOrder, st.Late, st.Orders, elapsed.Seconds(), float64(st.Events)/elapsed.Seconds(), missed)
	if pub != nil {
		fmt.Fprintf(stderr, ", published %d (%d dropped as duplicates by JetStream)", pub.stored, pub.deduped)
	}
	fmt.Fprintln(stderr)
	return runErr
}

// writeOCEL writes the OCEL 2.0 log through a temporary file renamed at the end,
// so a failed run leaves no half log.
func writeOCEL(path string, ocel *sim.OCELWriter, stderr io.Writer) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("ocel2: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("ocel2: %w", err)
	}
	n, err := ocel.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ocel2: write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ocel2: %w", err)
	}
	fmt.Fprintf(stderr, "simulate: ocel2: %d events, %d objects, %d bytes in %s\n", ocel.Events(), ocel.Objects(), n, path)
	return nil
}

// paced limits emit to rate events per second.
func paced(emit sim.EmitFunc, rate float64) sim.EmitFunc {
	start, n := time.Now(), 0.0
	return func(ev *sim.Emitted) error {
		n++
		if wait := time.Until(start.Add(time.Duration(n / rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		return emit(ev)
	}
}

// withProgress shows events, orders and sim time on a terminal about twice a
// second.
func withProgress(emit sim.EmitFunc, s *sim.Simulator, w io.Writer) sim.EmitFunc {
	var n int
	last := time.Now()
	return func(ev *sim.Emitted) error {
		if n++; n&0x3fff == 0 && time.Since(last) > 500*time.Millisecond {
			last = time.Now()
			st := s.Stats()
			fmt.Fprintf(w, "\r%d events, %d orders, sim time %s ", st.Events, st.Orders, ev.OccurredAt.Format(time.DateTime))
		}
		return emit(ev)
	}
}

// jsSink publishes events to JetStream asynchronously with at most window
// publishes awaiting their ack.
type jsSink struct {
	ctx     context.Context
	nc      *nats.Conn
	js      jetstream.JetStream
	window  int
	pending []jetstream.PubAckFuture
	stored  int64 // acked and stored
	deduped int64 // acked as duplicates within the stream's dedupe window
}

func newJSSink(ctx context.Context, conn natsFlags, partitions, window int, stderr io.Writer) (*jsSink, error) {
	nc, err := conn.connect("orderwatch-simulate", slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Replicas: conn.Replicas, Partitions: partitions}); err != nil {
		nc.Close()
		return nil, err
	}
	return &jsSink{ctx: ctx, nc: nc, js: js, window: window}, nil
}

func (p *jsSink) emit(ev *sim.Emitted) error {
	msg := &nats.Msg{
		Subject: ev.Subject(),
		Data:    bytes.Clone(ev.Data), // kept by the future until acked
		Header:  nats.Header{jetstream.MsgIDHeader: []string{ev.ID()}},
	}
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return fmt.Errorf("publish %s: %w", ev.ID(), err)
	}
	p.pending = append(p.pending, f)
	if len(p.pending) >= p.window {
		return p.drain(p.ctx)
	}
	return nil
}

// drain waits for every pending ack.
func (p *jsSink) drain(ctx context.Context) error {
	for i, f := range p.pending {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				p.deduped++
			} else {
				p.stored++
			}
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
		case <-ctx.Done():
			return ctx.Err()
		}
		p.pending[i] = nil
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *jsSink) close() { p.nc.Close() }

func closeErr(c io.Closer, err *error) {
	if cerr := c.Close(); cerr != nil && *err == nil {
		*err = cerr
	}
}
