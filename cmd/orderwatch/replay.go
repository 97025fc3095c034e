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
	fs.StringVar(&c.Labels, "labels", "", "labels `file` (CSV from simulate --labels) joined to the exported rows; default: labels derived from each order's events")
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
	in, err := openInput("replay", c.In)
	if err != nil {
		return err
	}
	defer in.Close()
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
	// A scratch dir: replay keeps the same durable state the pipeline keeps, but
	// nothing of it outlives the run.
	dir, err := os.MkdirTemp("", "orderwatch-replay-")
	if err != nil {
		return fmt.Errorf("replay: scratch dir: %w", err)
	}
	defer os.RemoveAll(dir)
	var (
		exp  *process.Exporter
		out  *bufio.Writer // the export file's
		rows *scratchRows  // without --labels: the rows until their orders' outcomes are known
	)
	if c.Export != "" {
		f, err := os.Create(c.Export)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		out = bufio.NewWriterSize(f, 1<<20)
		defer out.Flush()
		tok, err := features.LoadTokenizer("")
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		w := io.Writer(out)
		if labels == nil {
			if rows, err = newScratchRows(filepath.Join(dir, "rows.csv")); err != nil {
				return err
			}
			defer rows.f.Close()
			w = rows.w
		}
		exp = process.NewExporter(w, labels, tok)
	}
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
	opts := process.ReplayOptions{Store: st, Policy: actions.NewLive(policy), Scorer: scorer, BatchSize: c.BatchSize, Logger: slog.New(slog.DiscardHandler)}
	if exp != nil {
		opts.OnRow = exp.Row
	}
	progress := newProgress(stderr, "replay", "lines", in)
	if progress != nil {
		opts.Progress = progress.show
	}
	stats, err := process.Replay(ctx, in, opts)
	progress.done()
	if err != nil {
		return err
	}
	var labelled string
	if exp != nil {
		if err := exp.Flush(); err != nil {
			return fmt.Errorf("replay: write %s: %w", c.Export, err)
		}
		labelled = fmt.Sprintf("replay: labels from %s\n", c.Labels)
		if rows != nil {
			if labelled, err = rows.join(st, out); err != nil {
				return err
			}
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("replay: write %s: %w", c.Export, err)
		}
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "replay: %d lines, %d applied, %d duplicates, %d dead-lettered %v, %d rows in %.1fs (%.0f lines/s)\n",
		stats.Lines, stats.Applied, stats.Duplicates, stats.DeadLettered, stats.Reasons, stats.Rows, secs, float64(stats.Lines)/secs)
	fmt.Fprint(stderr, labelled)
	return nil
}

// scratchRows holds the exported rows in a scratch file until the end of the
// stream, when their orders' outcomes are known: memory holds one outcome per
// order, never the rows.
type scratchRows struct {
	f *os.File
	w *bufio.Writer
}

func newScratchRows(path string) (*scratchRows, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("replay: scratch rows: %w", err)
	}
	return &scratchRows{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// join derives every order's outcome from the replay's store and writes the
// rows with their labels to out. It returns the summary line of the labels.
func (r *scratchRows) join(st *store.Store, out io.Writer) (string, error) {
	if err := r.w.Flush(); err != nil {
		return "", fmt.Errorf("replay: scratch rows: %w", err)
	}
	labels, ost, err := process.Outcomes(st)
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	if _, err := r.f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("replay: scratch rows: %w", err)
	}
	js, err := process.JoinLabels(out, bufio.NewReaderSize(r.f, 1<<20), labels)
	if err != nil {
		return "", fmt.Errorf("replay: %w", err)
	}
	end := "no event"
	if !ost.End.IsZero() {
		end = ost.End.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("replay: labels from the events, as the stream shows them at its end (%s): %d orders with an outcome, %d missed; %d orders have no outcome yet (%d of %d rows without a label)\n",
		end, ost.Labelled, ost.Missed, ost.NoOutcome, js.Unlabeled, js.Rows), nil
}
