package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/whatif"
)

// Exit codes of `orderwatch whatif`.
const (
	whatifOK     = 0 // no change, or none of a --fail-on kind
	whatifError  = 1
	whatifUsage  = 2
	whatifFailOn = 3 // a change of a --fail-on kind
)

// failOnParity is the --fail-on kind of a baseline that does not match the
// recorded run.
const failOnParity = "parity"

// modelsNone is the --models value that scores with the rules fallback.
const modelsNone = "none"

type whatifConfig struct {
	CandidatePolicy, CandidateModels string
	Policy, Models                   string
	In                               string
	NATS                             natsFlags
	Stream                           string
	Since, Warmup                    days
	From, To                         string
	JSON                             string
	FailOn                           []string
	List, MaxDecisions, BatchSize    int
	Recorded                         string // the URL of the instance whose decisions parity compares
}

// days is a duration flag that also takes a number of days (7d).
type days time.Duration

func (d *days) String() string {
	v := time.Duration(*d)
	if v > 0 && v%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", v/(24*time.Hour))
	}
	return v.String()
}

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseFloat(n, 64)
		if err != nil || v < 0 || v > 3650 {
			return fmt.Errorf("%q: want a duration such as 36h or a number of days such as 7d", s)
		}
		*d = days(time.Duration(v * float64(24*time.Hour)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q: want a duration such as 36h or a number of days such as 7d", s)
	}
	*d = days(v)
	return nil
}

// whatifMain runs `orderwatch whatif` and returns its exit code.
func whatifMain(args []string, stdout, stderr io.Writer) int {
	c, err := parseWhatifFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return whatifOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "orderwatch whatif: %v\n", err)
		return whatifUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := runWhatif(ctx, c, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "orderwatch: %v\n", err)
		return whatifError
	}
	var hit []string
	for _, kind := range c.FailOn {
		n := rep.Changes.Count(kind)
		if kind == failOnParity && rep.Parity != nil {
			n = rep.Parity.Mismatched()
		}
		if n > 0 {
			hit = append(hit, fmt.Sprintf("%d %s", n, kind))
		}
	}
	if len(hit) > 0 {
		fmt.Fprintf(stderr, "whatif: --fail-on %s: %s\n", strings.Join(c.FailOn, ","), strings.Join(hit, ", "))
		return whatifFailOn
	}
	return whatifOK
}

func parseWhatifFlags(args []string, stderr io.Writer) (whatifConfig, error) {
	c := whatifConfig{Since: days(7 * 24 * time.Hour), Warmup: days(3 * 24 * time.Hour)}
	var failOn string
	fs := flag.NewFlagSet("whatif", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.CandidatePolicy, "candidate-policy", "", "the candidate's policy `file`; default: the baseline's")
	fs.StringVar(&c.CandidateModels, "candidate-models", "", "the candidate's models `dir` (none: the rules fallback); default: the baseline's")
	fs.StringVar(&c.Policy, "policy", "", "the baseline's policy `file` (on a live system: the live one); default: the shipped policy")
	fs.StringVar(&c.Models, "models", "", "the baseline's models `dir`, read only (on a live system: the live models dir); none: the rules fallback; default: the shipped models")
	fs.StringVar(&c.In, "in", "", "recorded stream `file` (NDJSON, as simulate --out writes); - for stdin")
	c.NATS.register(fs, "read the ORDERS stream of this NATS `url` instead, through an ordered consumer (the live consumers are left alone)")
	fs.StringVar(&c.Stream, "stream", "ORDERS", "the `stream` to read with --nats-url")
	fs.Var(&c.Since, "since", "report the decisions of this last `span` (7d, 36h): before the last event of --in, before now on NATS")
	fs.StringVar(&c.From, "from", "", "report the decisions from this `time` (RFC 3339 or 2006-01-02, UTC), with --to, instead of --since")
	fs.StringVar(&c.To, "to", "", "report the decisions before this `time`")
	fs.Var(&c.Warmup, "warmup", "replay this `span` before the window without reporting its decisions, so that orders and context have their state")
	fs.StringVar(&c.JSON, "json", "", "also write the report as JSON to `file`")
	fs.StringVar(&failOn, "fail-on", "", "exit 3 when a change of these `kinds` occurred: added,removed,changed (for a CI gate)")
	fs.IntVar(&c.List, "list", 20, "list the first `n` changes of each kind")
	fs.IntVar(&c.MaxDecisions, "max-decisions", 1_000_000, "fail when a run decides more than `n` times (memory: about 80 bytes a decision per run)")
	fs.StringVar(&c.Recorded, "recorded", "", "compare the baseline with the decisions this running orderwatch recorded (its API `URL`; ORDERWATCH_API_TOKEN when it asks for one)")
	fs.IntVar(&c.BatchSize, "batch-size", 1024, "lines per commit of each replay (decisions are taken on the latest state of each batch: both arms use it)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case (c.In == "") == (c.NATS.URL == ""):
		return c, errors.New("give one of --in FILE and --nats-url URL")
	case c.In != "" && set["stream"]:
		return c, errors.New("--stream is for --nats-url")
	case (c.From == "") != (c.To == ""):
		return c, errors.New("--from and --to go together")
	case c.From != "" && set["since"]:
		return c, errors.New("give --since or --from and --to, not both")
	case c.Since <= 0 && c.From == "":
		return c, errors.New("--since must be more than 0")
	case c.List < 0 || c.MaxDecisions < 1 || c.BatchSize < 1:
		return c, errors.New("--list, --max-decisions and --batch-size take a positive number")
	}
	if err := c.NATS.check(); err != nil {
		return c, err
	}
	if err := checkRecorded(c.Recorded); err != nil {
		return c, err
	}
	for _, k := range strings.Split(failOn, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if k == failOnParity && c.Recorded == "" {
			return c, errors.New("--fail-on parity needs --recorded URL")
		}
		if !slices.Contains(whatif.Kinds, k) && k != failOnParity {
			return c, fmt.Errorf("--fail-on %q: want a list of %s,%s", k, strings.Join(whatif.Kinds, ","), failOnParity)
		}
		c.FailOn = append(c.FailOn, k)
	}
	for _, t := range []struct{ flag, v string }{{"--from", c.From}, {"--to", c.To}} {
		if _, err := parseWhen(t.v); t.v != "" && err != nil {
			return c, fmt.Errorf("%s %q: want an RFC 3339 time (2026-05-18T00:00:00Z) or a date (2026-05-18)", t.flag, t.v)
		}
	}
	return c, nil
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse(time.DateOnly, s)
}

// runWhatif replays the window through the baseline and the candidate and
// writes the report.
func runWhatif(ctx context.Context, c whatifConfig, stdout, stderr io.Writer) (*whatif.Report, error) {
	scratch, err := os.MkdirTemp("", "orderwatch-whatif-")
	if err != nil {
		return nil, fmt.Errorf("whatif: scratch dir: %w", err)
	}
	defer os.RemoveAll(scratch)

	var base, cand whatif.Arm
	for _, a := range []struct {
		arm            *whatif.Arm
		name           string
		policy, models string
	}{{&base, "baseline", c.Policy, c.Models}, {&cand, "candidate", or(c.CandidatePolicy, c.Policy), or(c.CandidateModels, c.Models)}} {
		p, err := actions.LoadPolicy(a.policy)
		if err != nil {
			return nil, fmt.Errorf("whatif: %s: %w", a.name, err)
		}
		a.arm.Policy, a.arm.PolicyName = p, a.policy
		closeScorer, err := armModels(a.arm, "whatif: "+a.name, a.models, filepath.Join(scratch, a.name+"-models"), stderr)
		if err != nil {
			return nil, err
		}
		defer closeScorer()
	}

	// The source: the file, or a scratch copy of stdin or of the stream.
	var win whatif.Window
	if c.From != "" {
		win.From, _ = parseWhen(c.From)
		win.To, _ = parseWhen(c.To)
	}
	path := c.In
	if c.In == "-" {
		path = filepath.Join(scratch, "events.ndjson")
		if err := copyTo(path, os.Stdin); err != nil {
			return nil, err
		}
	}
	if c.NATS.URL != "" {
		if c.From == "" {
			win.To = time.Now().UTC()
			win.From = win.To.Add(-time.Duration(c.Since))
		}
		path = filepath.Join(scratch, "events.ndjson")
		if err := readStream(ctx, c, win.From.Add(-time.Duration(c.Warmup)), path, stderr); err != nil {
			return nil, err
		}
	} else if c.From == "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("whatif: %w", err)
		}
		last, err := whatif.LastEventTime(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if last.IsZero() {
			return nil, fmt.Errorf("whatif: %s holds no event that decodes: nothing to replay", c.In)
		}
		// The last event's decisions are in the window.
		win.To = last.Add(time.Nanosecond)
		win.From = win.To.Add(-time.Duration(c.Since))
	}
	win.Start = win.From.Add(-time.Duration(c.Warmup))

	opts := whatif.Options{
		Baseline: base, Candidate: cand, Window: win, Scratch: scratch,
		Open:         func() (io.ReadCloser, error) { return os.Open(path) },
		MaxDecisions: c.MaxDecisions, List: c.List, BatchSize: c.BatchSize,
		Done: func(arm string, st process.ReplayStats, took time.Duration) {
			fmt.Fprintf(stderr, "whatif: %s: %d lines, %d applied, %d duplicates, %d dead-lettered, %d rows in %.1fs\n",
				arm, st.Lines, st.Applied, st.Duplicates, st.DeadLettered, st.Rows, took.Seconds())
		},
		Logger: slog.New(slog.DiscardHandler),
	}
	if c.Recorded != "" {
		opts.Recorded = recordedFromAPI(c.Recorded, os.Getenv)
	}
	rep, err := whatif.Run(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := rep.Markdown(stdout); err != nil {
		return nil, fmt.Errorf("whatif: write the report: %w", err)
	}
	if c.JSON != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("whatif: encode the report: %w", err)
		}
		if err := os.WriteFile(c.JSON, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("whatif: %w", err)
		}
	}
	return rep, nil
}

func or(s, dflt string) string {
	if s != "" {
		return s
	}
	return dflt
}

// armModels sets an arm's scorer: none for the rules fallback, else a
// registry of dir's models (read only; the shipped ones for a model dir lacks,
// or for every model when dir is empty) in scratch. It returns what closes it.
func armModels(a *whatif.Arm, cmd, dir, scratch string, stderr io.Writer) (func(), error) {
	if dir == modelsNone {
		a.Models = "none: rules fallback"
		return func() {}, nil
	}
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, fmt.Errorf("%s: scratch dir: %w", cmd, err)
	}
	a.Models = dir
	if dir == "" {
		// An empty models dir: every model is the shipped one.
		a.Models = "shipped"
		dir = scratch + "-empty"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("%s: scratch dir: %w", cmd, err)
		}
	}
	r, err := scratchRegistry(cmd, dir, scratch, stderr)
	if err != nil {
		return nil, err
	}
	a.Scorer = &registryScorer{r: r}
	return func() { r.Close() }, nil
}

// copyTo copies r to a new file at path.
func copyTo(path string, r io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("whatif: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("whatif: copy the events: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("whatif: copy the events: %w", err)
	}
	return nil
}

// readStream copies the stream's messages from start, up to its last one now,
// to a scratch file at path.
func readStream(ctx context.Context, c whatifConfig, start time.Time, path string, stderr io.Writer) error {
	nc, err := c.NATS.connect("orderwatch-whatif", slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("whatif: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("whatif: jetstream: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("whatif: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	t0 := time.Now()
	n, err := whatif.ReadStream(ctx, js, c.Stream, start, w)
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("whatif: write the events: %w", err)
	}
	fmt.Fprintf(stderr, "whatif: read %d messages of %s published since %s in %.1fs\n", n, c.Stream, start.Format(time.RFC3339), time.Since(t0).Seconds())
	return nil
}
