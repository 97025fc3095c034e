package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

type replayConfig struct {
	In, Labels, Export, Policy, Models string
	BatchSize                          int
}

func replayCmd(args []string) error {
	var c replayConfig
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.StringVar(&c.In, "in", "", "recorded stream `file`, one event per line (NDJSON); - for stdin")
	fs.StringVar(&c.Labels, "labels", "", "labels `file` (CSV from simulate --labels) joined to the exported rows")
	fs.StringVar(&c.Export, "export", "", "write one CSV row per scoring moment to `file`")
	fs.StringVar(&c.Policy, "policy", "", "policy `file`; default: the shipped policy")
	fs.StringVar(&c.Models, "models", "", "score with the models of this models `dir` (read only; a model it lacks is the shipped one; a version it holds that is refused fails the replay); default: the rules fallback")
	fs.IntVar(&c.BatchSize, "batch-size", 1024, "lines per commit (rows do not depend on it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if c.In == "" {
		return errors.New("replay: --in is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return replay(ctx, c, os.Stderr)
}

func replay(ctx context.Context, c replayConfig, stderr io.Writer) error {
	policy, err := actions.LoadPolicy(c.Policy)
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	var size int64
	if c.In != "-" {
		f, err := os.Open(c.In)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		in = f
	}
	var labels map[string]process.Label
	if c.Labels != "" {
		f, err := os.Open(c.Labels)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		labels, err = process.ReadLabels(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return fmt.Errorf("replay: labels %s: %w", c.Labels, err)
		}
	}
	var exp *process.Exporter
	if c.Export != "" {
		f, err := os.Create(c.Export)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 1<<20)
		defer w.Flush()
		tok, err := features.LoadTokenizer("")
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		exp = process.NewExporter(w, labels, tok)
	}
	// A scratch dir: replay keeps the same durable state the pipeline keeps, but
	// nothing of it outlives the run.
	dir, err := os.MkdirTemp("", "orderwatch-replay-")
	if err != nil {
		return fmt.Errorf("replay: scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	var scorer process.Scorer
	if c.Models != "" {
		mdir := filepath.Join(dir, "models")
		if err := os.Mkdir(mdir, 0o755); err != nil {
			return fmt.Errorf("replay: scratch dir: %w", err)
		}
		r, err := replayRegistry(c.Models, mdir, stderr)
		if err != nil {
			return err
		}
		defer r.Close()
		scorer = &registryScorer{r: r}
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()

	start := time.Now()
	counting := &countingReader{r: in}
	opts := process.ReplayOptions{Store: st, Policy: actions.NewLive(policy), Scorer: scorer, BatchSize: c.BatchSize, Logger: slog.New(slog.DiscardHandler)}
	if exp != nil {
		opts.OnRow = exp.Row
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		last := time.Now()
		opts.Progress = func(lines int) {
			if time.Since(last) < 500*time.Millisecond {
				return
			}
			last = time.Now()
			pct := ""
			if size > 0 {
				pct = fmt.Sprintf(" %3.0f%%", 100*float64(counting.n)/float64(size))
			}
			fmt.Fprintf(stderr, "\rreplay:%s %d lines", pct, lines)
		}
	}
	stats, err := process.Replay(ctx, counting, opts)
	if opts.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if exp != nil {
		if err := exp.Flush(); err != nil {
			return fmt.Errorf("replay: write %s: %w", c.Export, err)
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "replay: %d lines, %d applied, %d duplicates, %d dead-lettered %v, %d rows in %.1fs (%.0f lines/s)\n",
		stats.Lines, stats.Applied, stats.Duplicates, stats.DeadLettered, stats.Reasons, stats.Rows, secs, float64(stats.Lines)/secs)
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
