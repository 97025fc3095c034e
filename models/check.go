package models

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Bound is the closed range of one feature's values in the running spec
// (features.Bounds converts element by element): the sweep scores a bundle at
// both ends.
type Bound struct{ Lo, Hi float32 }

// Check statuses of a CheckResult.
const (
	CheckOK      = "ok"
	CheckFailed  = "failed"
	CheckSkipped = "skipped" // an earlier check failed
)

// The checks of a Report, in the order they run. A bundle serves only when every
// one passes; the registry runs all but CheckLatency (figures only) on each
// version before it serves it.
const (
	CheckBundle    = "bundle"    // bundle.json valid, model.onnx matches its sha256
	CheckSpec      = "spec"      // trained on the running feature spec
	CheckModel     = "model"     // model.onnx loads, its tensors match bundle.json
	CheckTokenizer = "tokenizer" // a text model's tokenizer loads and matches
	CheckGolden    = "golden"    // golden rows reproduce, alone and as a full batch, in time and memory
	CheckSweep     = "sweep"     // extreme but valid inputs score finite and in range
	CheckLatency   = "latency"   // the time per row at batch 1 and a full batch
)

// CheckResult is the outcome of one check of a bundle.
type CheckResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`           // CheckOK, CheckFailed or CheckSkipped
	Reason string `json:"reason,omitempty"` // a Reject* code when failed
	Detail string `json:"detail,omitempty"` // what was checked, or what failed
}

// Report is what Check found about one bundle: the answer of
// `orderwatch models check` and of POST /api/v1/models/validate.
type Report struct {
	Dir     string `json:"dir"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Valid reports whether the bundle would serve.
	Valid bool `json:"valid"`
	// Reason is the Reject* code of the first failed check, Error its error.
	Reason string        `json:"reason,omitempty"`
	Error  string        `json:"error,omitempty"`
	Checks []CheckResult `json:"checks"`
	// GoldenRows is the number of golden rows; GoldenMaxError the largest
	// absolute difference between a golden output and the model's, over the
	// rows alone and repeated to a full batch.
	GoldenRows     int     `json:"golden_rows"`
	GoldenMaxError float64 `json:"golden_max_error"`
	// SweepRows is the number of rows of the sweep, scored in one batch and one
	// by one.
	SweepRows int `json:"sweep_rows"`
	// LatencyBatch1 and LatencyBatchFull are the microseconds per row of a run of
	// one row and of a batch of FullBatch rows.
	LatencyBatch1    float64 `json:"latency_us_per_row_batch_1"`
	LatencyBatchFull float64 `json:"latency_us_per_row_batch_full"`
	FullBatch        int     `json:"full_batch"`

	text bool // a text model: it has a tokenizer check
}

// checkOrder lists the checks in the order a Report shows them.
var checkOrder = [...]string{CheckBundle, CheckSpec, CheckModel, CheckTokenizer, CheckGolden, CheckSweep, CheckLatency}

// record adds the outcome of check name to r and returns err; r may be nil (a
// plain Open). The first failure sets the report's reason.
func (r *Report) record(name string, err error, detail string) error {
	if r == nil {
		return err
	}
	c := CheckResult{Name: name, Status: CheckOK, Detail: detail}
	if err != nil {
		c.Status, c.Reason, c.Detail = CheckFailed, RejectReason(err), err.Error()
		if r.Reason == "" {
			r.Reason, r.Error = c.Reason, err.Error()
		}
	}
	r.Checks = append(r.Checks, c)
	return err
}

// Check opens the bundle in dir exactly as the registry does before a version
// serves (OpenWith: checksums, spec, model file, tokenizer, golden rows, latency,
// memory, the sweep), measures its latency per row at batch 1 and at a full
// batch (o.ValidationRows), closes it and reports every check. It needs no
// running instance, only InitRuntime.
func Check(dir string, o OpenOptions) *Report {
	rep := &Report{Dir: dir, Checks: []CheckResult{}}
	m, err := openWith(dir, o, rep)
	if err == nil {
		err = rep.record(CheckLatency, m.measureLatency(o, rep), "")
		if err == nil {
			rep.Checks[len(rep.Checks)-1].Detail = fmt.Sprintf("%.1f µs/row at batch 1, %.2f µs/row at batch %d", rep.LatencyBatch1, rep.LatencyBatchFull, rep.FullBatch)
		}
		m.Close()
	}
	if err != nil && rep.Reason == "" { // failed before any check ran
		rep.Reason, rep.Error = RejectReason(err), err.Error()
	}
	rep.Valid = err == nil
	for _, name := range checkOrder {
		if name == CheckTokenizer && !rep.text {
			continue
		}
		if !slices.ContainsFunc(rep.Checks, func(c CheckResult) bool { return c.Name == name }) {
			rep.Checks = append(rep.Checks, CheckResult{Name: name, Status: CheckSkipped})
		}
	}
	slices.SortStableFunc(rep.Checks, func(a, b CheckResult) int {
		return slices.Index(checkOrder[:], a.Name) - slices.Index(checkOrder[:], b.Name)
	})
	return rep
}

// measureLatency times runs of one golden row and of a full batch of golden
// rows, and records the time per row in rep.
func (m *Model) measureLatency(o OpenOptions, rep *Report) error {
	const singles, fulls = 64, 3
	n := o.ValidationRows
	if n <= 0 {
		n = ValidationRows
	}
	in, tokens := m.goldenBatch(n)
	out := make([]float32, n*m.width)
	start := time.Now()
	for range singles {
		if err := m.run(1, in[:m.features], tokens[:m.tokens], out[:m.width]); err != nil {
			return fmt.Errorf("%w: batch of 1: %w", ErrLatency, err)
		}
	}
	one := time.Since(start)
	start = time.Now()
	for range fulls {
		if err := m.run(n, in, tokens, out); err != nil {
			return fmt.Errorf("%w: batch of %d: %w", ErrLatency, n, err)
		}
	}
	full := time.Since(start)
	rep.FullBatch = n
	rep.LatencyBatch1 = float64(one.Nanoseconds()) / 1e3 / singles
	rep.LatencyBatchFull = float64(full.Nanoseconds()) / 1e3 / float64(fulls*n)
	return nil
}

// sweepTexts are an order's texts of many words, longer together than any
// token row: they fill a text model's tokens input.
func sweepTexts() []string {
	text := strings.Repeat("customer credit hold released pricing dispute allocation short carrier delayed pallet address changed invoice failed warehouse outage ", 40)
	return []string{text, text}
}

// sweepRow is one feature row of the sweep and what it is.
type sweepRow struct {
	what string
	in   []float32
}

// sweepRows returns the extreme but valid feature rows of the sweep: every
// feature at the low and the high end of its bound, at 0 and at -1 (an order a
// minute past its cutoff, for minutes_to_cutoff) where those lie within it, the
// other features at the first golden row's values; then every feature at its
// low end, and every one at its high end. Without o.FeatureBounds the bounds are the
// golden rows' smallest and largest value of each feature.
func (m *Model) sweepRows(o OpenOptions) []sweepRow {
	names := m.bundle.Inputs[0].Features
	bounds := o.FeatureBounds
	if len(bounds) != m.features {
		bounds = make([]Bound, m.features)
		for i := range bounds {
			bounds[i] = Bound{float32(math.Inf(1)), float32(math.Inf(-1))}
			for _, g := range m.bundle.Golden {
				bounds[i].Lo, bounds[i].Hi = min(bounds[i].Lo, g.Input[i]), max(bounds[i].Hi, g.Input[i])
			}
		}
	}
	base := m.bundle.Golden[0].Input
	lo, hi := make([]float32, m.features), make([]float32, m.features)
	for i, b := range bounds {
		lo[i], hi[i] = b.Lo, b.Hi
	}
	// One feature at a time first, so that a failure names the feature.
	var rows []sweepRow
	for i, b := range bounds {
		vals := []float32{b.Lo, b.Hi}
		for _, v := range []float32{0, -1} {
			if v > b.Lo && v < b.Hi {
				vals = append(vals, v)
			}
		}
		for _, v := range vals {
			row := slices.Clone(base)
			row[i] = v
			rows = append(rows, sweepRow{fmt.Sprintf("%s = %g", names[i], v), row})
		}
	}
	return append(rows, sweepRow{"every feature at its low end", lo}, sweepRow{"every feature at its high end", hi})
}

// sweep scores the sweep's rows, with empty and with full token rows for a text
// model, in one batch and then one by one, within bound: every output must be
// finite (ErrSweepNonFinite) and a probability, a class model's rows summing to
// 1 (ErrSweepOutOfRange). It returns the number of rows scored.
func (m *Model) sweep(o OpenOptions, bound time.Duration) (int, error) {
	rows := m.sweepRows(o)
	var tokenRows [][]int64
	var tokenWhat []string
	if m.tokens > 0 {
		tokenRows = [][]int64{m.tokenizer.Encode(nil, nil), m.tokenizer.Encode(sweepTexts(), nil)}
		tokenWhat = []string{", no text", ", texts filling every token"}
	} else {
		tokenRows, tokenWhat = [][]int64{nil}, []string{""}
	}
	n := len(rows) * len(tokenRows)
	in := make([]float32, 0, n*m.features)
	tokens := make([]int64, 0, n*m.tokens)
	what := make([]string, 0, n)
	for t, tr := range tokenRows {
		for _, r := range rows {
			in = append(in, r.in...)
			tokens = append(tokens, tr...)
			what = append(what, r.what+tokenWhat[t])
		}
	}
	out := make([]float32, n*m.width)
	deadline := time.Now().Add(bound)
	runErr := func(batch int, err error) error {
		switch {
		case errors.Is(err, ErrLatency):
			return fmt.Errorf("%w: the sweep's %d rows still running after %v: terminated", ErrLatency, n, bound)
		case isAllocFailure(err):
			return fmt.Errorf("%w: the sweep's rows in a batch of %d need more than the %d MiB ONNX Runtime may use: %w", ErrMemory, batch, RunMemoryLimit>>20, err)
		}
		return fmt.Errorf("%w: the sweep's rows in a batch of %d: %w", ErrModelMismatch, batch, err)
	}
	if err := m.runBounded(n, in, tokens, out, deadline); err != nil {
		return n, runErr(n, err)
	}
	if err := m.checkSweepOutputs(out, what, fmt.Sprintf("in one batch of %d", n)); err != nil {
		return n, err
	}
	for i := range n {
		o := out[i*m.width : (i+1)*m.width]
		if err := m.runBounded(1, in[i*m.features:(i+1)*m.features], tokens[i*m.tokens:(i+1)*m.tokens], o, deadline); err != nil {
			return n, runErr(1, err)
		}
		if err := m.checkSweepOutputs(o, what[i:i+1], "alone"); err != nil {
			return n, err
		}
	}
	return n, nil
}

// checkSweepOutputs checks the output rows out, described by what, scored how.
func (m *Model) checkSweepOutputs(out []float32, what []string, how string) error {
	for i := range what {
		row := out[i*m.width : (i+1)*m.width]
		for j, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: output %d is %v for the row with %s, scored %s", ErrSweepNonFinite, j, v, what[i], how)
			}
			if !ValidScore(v) {
				return fmt.Errorf("%w: output %d is %v, not in [0, 1], for the row with %s, scored %s", ErrSweepOutOfRange, j, v, what[i], how)
			}
		}
		if len(m.bundle.Labels) > 0 && !ValidDistribution(row) {
			return fmt.Errorf("%w: the class probabilities %v do not sum to 1 (tolerance %g) for the row with %s, scored %s", ErrSweepOutOfRange, row, DistributionTolerance, what[i], how)
		}
	}
	return nil
}
