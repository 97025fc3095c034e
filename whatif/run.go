package whatif

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// Arm is one side of a comparison: the policy and models it decides with.
type Arm struct {
	Policy *actions.Policy // required; an arm's own (a policy keeps governance state)
	Scorer process.Scorer  // nil means the rules fallback
	// PolicyName and Models say in the report what the arm ran: the policy's
	// file (empty: the shipped one) and the models.
	PolicyName, Models string
}

// Options configures Run. Zero values mean the defaults.
type Options struct {
	Baseline, Candidate Arm
	Window              Window // required: From and To; Start zero means From
	// Open opens the recorded stream (NDJSON events in stream order); Run
	// opens it once per arm and closes it.
	Open func() (io.ReadCloser, error)
	// Scratch is the directory of the runs' stores (one each, no fsync),
	// removed by the caller; required.
	Scratch string
	// MaxDecisions bounds the decisions of each run, warm-up included (about 80
	// bytes each in memory); zero means 1,000,000.
	MaxDecisions int
	// List is how many changes of each kind the report lists; zero means 20.
	List int
	// BatchSize is the lines per commit of each replay; zero means 1024.
	BatchSize int
	// Done, when set, is called as each run finishes its replay, one call at
	// a time.
	Done   func(arm string, st process.ReplayStats, elapsed time.Duration)
	Logger *slog.Logger // nil means discard
	// Recorded, when set, is the decisions a live run recorded: the report's
	// Parity compares the baseline's with them.
	Recorded Recorded
}

// Report is a comparison's result: what Markdown prints and --json writes.
type Report struct {
	Window struct {
		Start time.Time `json:"start"` // replayed from here (the warm-up's start)
		From  time.Time `json:"from"`
		To    time.Time `json:"to"`
		Hours float64   `json:"hours"`
	} `json:"window"`
	Events struct {
		Lines        int            `json:"lines"`   // read
		Skipped      int            `json:"skipped"` // before Start, not replayed
		Applied      int            `json:"applied"`
		Duplicates   int            `json:"duplicates"`
		DeadLettered int            `json:"dead_lettered"`
		Reasons      map[string]int `json:"dead_letter_reasons,omitempty"`
	} `json:"events"`
	// Outcomes are the orders' outcomes at the stream's end (process.Outcomes).
	Outcomes struct {
		End       time.Time `json:"end"`
		Labelled  int       `json:"with_outcome"`
		Missed    int       `json:"missed"`
		NoOutcome int       `json:"no_outcome_yet"`
	} `json:"outcomes"`
	// CostsFrom says whose costs: section priced both runs' Summary.Cost:
	// "candidate", or "baseline" when the candidate's policy states none;
	// empty, and no cost, when neither does.
	CostsFrom string  `json:"costs_from,omitempty"`
	Baseline  Summary `json:"baseline"`
	Candidate Summary `json:"candidate"`
	Changes   Changes `json:"changes"`
	// Parity is the baseline against the decisions recorded live, with
	// Options.Recorded; nil without.
	Parity *Parity `json:"parity,omitempty"`
}

// arm is what one replay left.
type armResult struct {
	st     *store.Store
	recs   []Record
	stats  process.ReplayStats
	filter FilterStats
	scored map[string]orderFacts // the orders scored in the window, as last scored
	// The baseline's: the orders' outcomes at the stream's end (the same in
	// both runs: the events are).
	outcomes map[string]process.Label
	ost      process.OutcomeStats
}

// Run replays the stream through both arms at once, each on its own scratch
// store on event time (process.Replay), and compares their decisions.
func Run(ctx context.Context, opts Options) (*Report, error) {
	switch {
	case opts.Baseline.Policy == nil || opts.Candidate.Policy == nil:
		return nil, errors.New("whatif: Options.Baseline.Policy and Candidate.Policy are required")
	case opts.Open == nil:
		return nil, errors.New("whatif: Options.Open is required")
	case opts.Scratch == "":
		return nil, errors.New("whatif: Options.Scratch is required")
	case !opts.Window.From.Before(opts.Window.To):
		return nil, fmt.Errorf("whatif: the window's from %s is not before its to %s", opts.Window.From.Format(time.RFC3339), opts.Window.To.Format(time.RFC3339))
	}
	if opts.Window.Start.IsZero() || opts.Window.Start.After(opts.Window.From) {
		opts.Window.Start = opts.Window.From
	}
	if opts.MaxDecisions == 0 {
		opts.MaxDecisions = 1_000_000
	}
	if opts.List <= 0 {
		opts.List = 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	names := NewNames()
	if done := opts.Done; done != nil {
		var mu sync.Mutex
		opts.Done = func(arm string, st process.ReplayStats, elapsed time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			done(arm, st, elapsed)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type done struct {
		res *armResult
		err error
	}
	results := [2]chan done{make(chan done, 1), make(chan done, 1)}
	for i, arm := range [2]struct {
		name string
		a    Arm
	}{{"baseline", opts.Baseline}, {"candidate", opts.Candidate}} {
		go func() {
			res, err := replayArm(ctx, &opts, arm.name, arm.a, names, i == 0)
			if err != nil {
				cancel() // the other run is of no use alone
				err = fmt.Errorf("%s run: %w", arm.name, err)
			}
			results[i] <- done{res, err}
		}()
	}
	var arms [2]*armResult
	var errs, canceled []error
	for i := range results {
		d := <-results[i]
		arms[i] = d.res
		switch {
		case d.err == nil:
		case errors.Is(d.err, context.Canceled):
			canceled = append(canceled, d.err)
		default:
			errs = append(errs, d.err)
		}
	}
	defer func() {
		for _, a := range arms {
			if a != nil {
				a.st.Close()
			}
		}
	}()
	if len(errs) == 0 {
		errs = canceled // a run canceled by the caller, not by the other's failure
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	base, cand := arms[0], arms[1]
	outcomes, ost := base.outcomes, base.ost
	rep := &Report{}
	w := opts.Window
	rep.Window.Start, rep.Window.From, rep.Window.To, rep.Window.Hours = w.Start.UTC(), w.From.UTC(), w.To.UTC(), w.Hours()
	ev := &rep.Events
	ev.Lines, ev.Skipped = base.filter.Lines, base.filter.Skipped
	ev.Applied, ev.Duplicates, ev.DeadLettered = base.stats.Applied, base.stats.Duplicates, base.stats.DeadLettered
	if len(base.stats.Reasons) > 0 {
		ev.Reasons = base.stats.Reasons
	}
	rep.Outcomes.End, rep.Outcomes.Labelled, rep.Outcomes.Missed, rep.Outcomes.NoOutcome = ost.End.UTC(), ost.Labelled, ost.Missed, ost.NoOutcome
	rep.Baseline = summarise(base.recs, names, w, outcomes, base.scored)
	rep.Candidate = summarise(cand.recs, names, w, outcomes, base.scored)
	rep.Baseline.Policy, rep.Baseline.Models = policyName(opts.Baseline), opts.Baseline.Models
	rep.Candidate.Policy, rep.Candidate.Models = policyName(opts.Candidate), opts.Candidate.Models
	costs, from := opts.Candidate.Policy.Costs, "candidate"
	if costs == nil {
		costs, from = opts.Baseline.Policy.Costs, "baseline"
	}
	if costs != nil {
		rep.CostsFrom = from
		rep.Baseline.Cost = expectedCost(base.recs, names, w, outcomes, base.scored, costs)
		rep.Candidate.Cost = expectedCost(cand.recs, names, w, outcomes, base.scored, costs)
	}
	rep.Changes = compare(base.recs, cand.recs, names, w, opts.List)
	for i := range rep.Changes.List {
		c := &rep.Changes.List[i]
		if err := reasons(base.st, c.Baseline); err != nil {
			return nil, err
		}
		if err := reasons(cand.st, c.Candidate); err != nil {
			return nil, err
		}
	}
	if opts.Recorded != nil {
		rec, other, err := collectRecorded(ctx, opts.Recorded, w, names, opts.MaxDecisions, opts.Baseline.Policy.Version)
		if err != nil {
			return nil, err
		}
		p := compareParity(rec, base.recs, other, names, w, opts.List)
		for i := range p.List {
			if err := reasons(base.st, p.List[i].Replayed); err != nil {
				return nil, err
			}
		}
		rep.Parity = &p
	}
	return rep, nil
}

func policyName(a Arm) string {
	file := a.PolicyName
	if file == "" {
		file = "shipped"
	}
	return a.Policy.Version + " (" + file + ")"
}

// reasons reads the top drivers of a listed decision from its run's store.
func reasons(st *store.Store, s *Side) error {
	if s == nil {
		return nil
	}
	v, err := st.Decision(s.id)
	if err != nil {
		return fmt.Errorf("whatif: read decision %s: %w", s.id, err)
	}
	var d struct {
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(v.Record, &d); err != nil {
		return fmt.Errorf("whatif: decision %s: %w", s.id, err)
	}
	s.Reasons = d.Reasons
	return nil
}

// replayArm replays the stream through one arm and collects its decisions.
// The store it returns is open, for the caller to close.
func replayArm(ctx context.Context, opts *Options, name string, arm Arm, names *Names, baseline bool) (*armResult, error) {
	dir := filepath.Join(opts.Scratch, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("whatif: scratch dir: %w", err)
	}
	// A scratch store of what the comparison reads back: the decisions, and
	// in the baseline's the timelines the outcomes are derived from; no
	// score history (store.Skip).
	st, err := store.Open(store.Options{Dir: dir, NoSync: true, Scratch: true, SkipScores: true, SkipTimelines: !baseline})
	if err != nil {
		return nil, err
	}
	res := &armResult{st: st}
	fail := func(err error) (*armResult, error) {
		st.Close()
		return nil, err
	}
	in, err := opts.Open()
	if err != nil {
		return fail(err)
	}
	defer in.Close()
	f := NewFilter(in, opts.Window.Start)
	ro := process.ReplayOptions{Store: st, Policy: actions.NewLive(arm.Policy), Scorer: arm.Scorer, BatchSize: opts.BatchSize, Logger: opts.Logger}
	if baseline {
		// The orders scored in the window: recall's denominator. Both runs
		// score the same moments (policy and models change what is decided,
		// not when orders are scored).
		res.scored = map[string]orderFacts{}
		w := opts.Window
		ro.OnRow = func(r *process.Row) {
			if !r.Moment.Before(w.From) && r.Moment.Before(w.To) {
				res.scored[r.OrderID] = factsOf(&r.Vector)
			}
		}
	}
	start := time.Now()
	res.stats, err = process.Replay(ctx, f, ro)
	if err != nil {
		return fail(err)
	}
	res.filter = f.Stats
	if opts.Done != nil {
		opts.Done(name, res.stats, time.Since(start))
	}
	if res.recs, err = Collect(st, names, opts.MaxDecisions); err != nil {
		return fail(err)
	}
	if baseline {
		if res.outcomes, res.ost, err = process.Outcomes(st); err != nil {
			return fail(fmt.Errorf("whatif: %w", err))
		}
	}
	return res, nil
}
