// Package models loads ONNX model bundles, validates them against the running
// feature spec and scores batches of feature vectors with ONNX Runtime. It is the only
// package that uses cgo: the pipeline and cmd import it, other packages stay pure Go.
// Call InitRuntime once per process, then Open a bundle directory; SeedDir and Active
// manage the models directory seeded from the bundles shipped in the binary.
package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// GoldenTolerance is the largest absolute difference allowed between a golden row's
// expected output and the model's.
const GoldenTolerance = 1e-4

// Model is an opened bundle with its ONNX Runtime session: a model with one float32
// feature input [-1, F] and one float32 output [-1, K].
//
// Score is safe for concurrent use: each call wraps its own tensors around the
// caller's slices and ONNX Runtime sessions run concurrently. Score blocks for the
// session run; Close waits for the calls in flight.
type Model struct {
	bundle    *Bundle
	features  int // values per input row
	tokens    int // token ids per row of the tokens input; 0 without one
	width     int // values per output row
	input     []string
	output    []string
	tokenizer Tokenizer

	// mu guards session: Score holds it shared, Close exclusively.
	mu      sync.RWMutex
	session *ort.DynamicAdvancedSession
}

// Tokenizer turns an order's texts (oldest first) into token ids: Encode appends
// exactly the model's number of ids to dst. *features.Tokenizer implements it.
type Tokenizer interface {
	Encode(texts []string, dst []int64) []int64
	SHA256() string
}

// OpenOptions are the running program's side of the bundle contract.
type OpenOptions struct {
	// SpecVersion and FeatureNames are the running feature spec.
	SpecVersion  string
	FeatureNames []string
	// LoadTokenizer loads a text model's tokenizer file; without it a text model
	// cannot be opened.
	LoadTokenizer func(path string) (Tokenizer, error)
	// MaxGoldenLatency bounds the time to score the golden rows and then the
	// validation batch (ErrLatency): a run still going at the bound is terminated.
	// Zero means one second.
	MaxGoldenLatency time.Duration
	// ValidationRows is the size of the batch, the golden rows repeated, that a
	// model must also score within MaxGoldenLatency, reproducing them: the largest
	// batch it will be given. Zero means ValidationRows.
	ValidationRows int
	// FeatureBounds are the running spec's feature ranges, in the order of
	// FeatureNames (features.Bounds): the sweep scores every feature at both
	// ends. Without them it takes the golden rows' smallest and largest values.
	FeatureBounds []Bound
}

// ValidationRows is the default OpenOptions.ValidationRows: the pipeline's
// default batch size.
const ValidationRows = 1024

// Open is OpenWith for a model without a tokenizer and the default latency bound.
func Open(dir, specVersion string, featureNames []string) (*Model, error) {
	return OpenWith(dir, OpenOptions{SpecVersion: specVersion, FeatureNames: featureNames})
}

// OpenWith loads and validates the bundle in dir and creates its ONNX Runtime
// session. A bundle trained on another spec version, or whose input names other
// features or the same in another order, is rejected with ErrSpecMismatch. The
// model file's inputs and outputs must match bundle.json (ErrModelMismatch), a
// text model's tokenizer must load and match its sha256 (ErrTokenizer), and the
// golden rows must reproduce within GoldenTolerance (ErrGolden) within
// MaxGoldenLatency (ErrLatency). Then the sweep scores extreme but valid inputs
// (the features at their FeatureBounds, a minute past the cutoff, empty and full
// token rows) in one batch and one by one, within MaxGoldenLatency again: every
// output must be finite (ErrSweepNonFinite) and a probability, a class model's
// rows summing to 1 (ErrSweepOutOfRange). InitRuntime must have succeeded.
func OpenWith(dir string, o OpenOptions) (*Model, error) {
	return openWith(dir, o, nil)
}

// openWith is OpenWith that records each check in rep when it is not nil.
func openWith(dir string, o OpenOptions, rep *Report) (*Model, error) {
	b, data, err := loadBundle(dir)
	if rep.record(CheckBundle, err, "bundle.json valid, model.onnx matches its sha256") != nil {
		return nil, err
	}
	if rep != nil {
		rep.Name, rep.Version, rep.GoldenRows, rep.text = b.Name, b.Version, len(b.Golden), len(b.Inputs) == 2
	}
	if !runtimeReady() {
		return nil, fmt.Errorf("open bundle %s: %w: call InitRuntime first", dir, ErrRuntimeNotInitialized)
	}
	if err := checkSpec(b, o.SpecVersion, o.FeatureNames); rep.record(CheckSpec, err, fmt.Sprintf("feature spec %s, %d features in its order", o.SpecVersion, len(o.FeatureNames))) != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	if err := checkModelFile(b, data); err != nil {
		rep.record(CheckModel, err, "")
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	var tok Tokenizer
	if len(b.Inputs) == 2 {
		if tok, err = openTokenizer(b, o.LoadTokenizer); rep.record(CheckTokenizer, err, b.Tokenizer+" loads and matches its sha256") != nil {
			return nil, fmt.Errorf("open bundle %s: %w", dir, err)
		}
	}
	if o.MaxGoldenLatency <= 0 {
		o.MaxGoldenLatency = time.Second
	}

	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: session options: %w", dir, err)
	}
	defer opts.Destroy()
	// Batches are small and the machine is shared with the pipeline: one thread
	// per run, no thread pool spinning. Concurrent Score calls run in parallel.
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("open bundle %s: session options: %w", dir, err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("open bundle %s: session options: %w", dir, err)
	}
	// Every session allocates from the process's one arena, capped at
	// RunMemoryLimit (InitRuntime): a model that expands its input fails its run
	// instead of taking the machine's memory.
	if err := opts.AddSessionConfigEntry("session.use_env_allocators", "1"); err != nil {
		return nil, fmt.Errorf("open bundle %s: session options: %w", dir, err)
	}

	m := &Model{
		bundle:    b,
		features:  b.Inputs[0].width(),
		width:     b.Outputs[0].width(),
		input:     []string{b.Inputs[0].Name},
		output:    []string{b.Outputs[0].Name},
		tokenizer: tok,
	}
	if tok != nil {
		m.tokens = b.Inputs[1].width()
		m.input = append(m.input, b.Inputs[1].Name)
	}
	m.session, err = ort.NewDynamicAdvancedSessionWithONNXData(data, m.input, m.output, opts)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrModelMismatch, err)
		rep.record(CheckModel, err, "")
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	rep.record(CheckModel, nil, fmt.Sprintf("%s inputs and outputs match bundle.json", ModelFile))
	if o.ValidationRows <= 0 {
		o.ValidationRows = ValidationRows
	}
	worst, err := m.checkGolden(o.MaxGoldenLatency, o.ValidationRows)
	if rep != nil {
		rep.GoldenMaxError = worst
	}
	if rep.record(CheckGolden, err, fmt.Sprintf("%d rows within %g (largest error %.3g), alone and repeated to a batch of %d, within %v", len(b.Golden), GoldenTolerance, worst, max(o.ValidationRows, len(b.Golden)), o.MaxGoldenLatency)) != nil {
		m.Close()
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	n, err := m.sweep(o, o.MaxGoldenLatency)
	if rep != nil {
		rep.SweepRows = n
	}
	if rep.record(CheckSweep, err, fmt.Sprintf("%d rows of extreme but valid inputs, in one batch and one by one: every output finite and in [0, 1]", n)) != nil {
		m.Close()
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	return m, nil
}

// openTokenizer loads a text model's tokenizer and checks it against bundle.json.
func openTokenizer(b *Bundle, load func(string) (Tokenizer, error)) (Tokenizer, error) {
	if load == nil {
		return nil, fmt.Errorf("%w: the bundle is a text model and no tokenizer loader is configured", ErrTokenizer)
	}
	path := filepath.Join(b.Dir, b.Tokenizer)
	raw, err := readBundleFile(b.Dir, b.Tokenizer, MaxTokenizerBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenizer, err)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != b.TokenizerSHA256 {
		return nil, fmt.Errorf("%w: %s has sha256 %s, bundle.json says %s", ErrTokenizer, b.Tokenizer, got, b.TokenizerSHA256)
	}
	tok, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenizer, err)
	}
	// The loader reads the file again: what it loaded must be what was checked.
	if got := tok.SHA256(); got != b.TokenizerSHA256 {
		return nil, fmt.Errorf("%w: %s changed while loaded (sha256 %s, bundle.json says %s)", ErrTokenizer, b.Tokenizer, got, b.TokenizerSHA256)
	}
	if n := len(tok.Encode([]string{"probe"}, nil)); n != b.Inputs[1].width() {
		return nil, fmt.Errorf("%w: the tokenizer makes %d ids per order, input %s takes %d", ErrTokenizer, n, b.Inputs[1].Name, b.Inputs[1].width())
	}
	return tok, nil
}

// checkSpec compares the bundle's feature spec with the running one.
func checkSpec(b *Bundle, specVersion string, names []string) error {
	if b.FeatureSpecVersion != specVersion {
		return fmt.Errorf("%w: bundle was trained on feature spec %q, running spec is %q", ErrSpecMismatch, b.FeatureSpecVersion, specVersion)
	}
	for _, in := range b.Inputs {
		if in.Features == nil {
			continue
		}
		if len(in.Features) != len(names) {
			return fmt.Errorf("%w: input %q has %d features, running spec %s has %d", ErrSpecMismatch, in.Name, len(in.Features), specVersion, len(names))
		}
		for i := range names {
			if in.Features[i] != names[i] {
				return fmt.Errorf("%w: feature %d of input %q is %q in the bundle, %q in running spec %s", ErrSpecMismatch, i, in.Name, in.Features[i], names[i], specVersion)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: no input of the bundle names its features", ErrSpecMismatch)
}

// checkModelFile compares the inputs and outputs that ONNX Runtime reads from the
// model file with bundle.json.
func checkModelFile(b *Bundle, data []byte) error {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return fmt.Errorf("%w: onnx runtime cannot load %s: %w", ErrModelMismatch, ModelFile, err)
	}
	if err := compareTensors("input", b.Inputs, ins); err != nil {
		return err
	}
	return compareTensors("output", b.Outputs, outs)
}

func compareTensors(kind string, want []TensorSpec, got []ort.InputOutputInfo) error {
	if len(got) != len(want) {
		return fmt.Errorf("%w: %s has %d %ss, bundle.json declares %d", ErrModelMismatch, ModelFile, len(got), kind, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name {
			return fmt.Errorf("%w: %s %d is %q in %s, %q in bundle.json", ErrModelMismatch, kind, i, g.Name, ModelFile, w.Name)
		}
		if g.OrtValueType != ort.ONNXTypeTensor || g.DataType != dtypeOf(w.DType) {
			return fmt.Errorf("%w: %s %s is %s in %s, a %s tensor in bundle.json", ErrModelMismatch, kind, w.Name, g.String(), ModelFile, w.DType)
		}
		// ONNX Runtime reports a symbolic dimension as -1.
		if !slices.Equal([]int64(g.Dimensions), w.Shape) {
			return fmt.Errorf("%w: %s %s has shape %v in %s, %v in bundle.json", ErrModelMismatch, kind, w.Name, []int64(g.Dimensions), ModelFile, w.Shape)
		}
	}
	return nil
}

func dtypeOf(s string) ort.TensorElementDataType {
	switch s {
	case "float32":
		return ort.TensorElementDataTypeFloat
	case "int64":
		return ort.TensorElementDataTypeInt64
	}
	return ort.TensorElementDataTypeUndefined
}

// checkGolden scores the golden rows in one batch, then the golden rows repeated
// to a batch of rows rows, and compares both with the expected outputs. The small
// batch comes first so that a model that fails does so at the smallest cost. Both
// runs together must finish within bound: a run still going then is terminated
// (ErrLatency). A run that needs more memory than RunMemoryLimit fails with
// ErrMemory. It returns the largest difference it saw.
func (m *Model) checkGolden(bound time.Duration, rows int) (worst float64, err error) {
	g := m.bundle.Golden
	deadline := time.Now().Add(bound)
	for _, n := range []int{len(g), max(rows, len(g))} {
		in, tokens := m.goldenBatch(n)
		out := make([]float32, n*m.width)
		if err := m.runBounded(n, in, tokens, out, deadline); err != nil {
			switch {
			case errors.Is(err, ErrLatency):
				return worst, fmt.Errorf("%w: %d golden rows in a batch of %d still running after %v: terminated", ErrLatency, len(g), n, bound)
			case isAllocFailure(err):
				return worst, fmt.Errorf("%w: %d golden rows in a batch of %d need more than the %d MiB ONNX Runtime may use: %w", ErrMemory, len(g), n, RunMemoryLimit>>20, err)
			}
			return worst, fmt.Errorf("%w: batch of %d: %w", ErrGolden, n, err)
		}
		for i := range n {
			row := g[i%len(g)]
			for j, want := range row.Output {
				got := out[i*m.width+j]
				d := math.Abs(float64(got) - float64(want))
				if !(d <= GoldenTolerance) {
					if !math.IsNaN(d) {
						worst = d
					}
					return worst, fmt.Errorf("%w: row %d output %d is %v in a batch of %d, want %v (tolerance %g)", ErrGolden, i, j, got, n, want, GoldenTolerance)
				}
				worst = max(worst, d)
			}
		}
	}
	return worst, nil
}

// goldenBatch returns the inputs of a batch of n rows, the golden rows repeated.
func (m *Model) goldenBatch(n int) (in []float32, tokens []int64) {
	g := m.bundle.Golden
	in = make([]float32, 0, n*m.features)
	tokens = make([]int64, 0, n*m.tokens)
	for i := range n {
		in = append(in, g[i%len(g)].Input...)
		tokens = append(tokens, g[i%len(g)].Tokens...)
	}
	return in, tokens
}

// isAllocFailure reports whether a run failed because ONNX Runtime's allocator
// refused memory (the RunMemoryLimit arena, or the system).
func isAllocFailure(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Failed to allocate memory") || strings.Contains(msg, "Available memory of") || strings.Contains(msg, "bad_alloc")
}

// Score scores n rows in one session run. rows holds the rows one after the other,
// NumFeatures values each in the order of the bundle's feature names; out receives
// OutputWidth values per row (the risk, for cutoff_risk) and must be exactly n rows
// long. The slices are read and written only during the call. A call with no rows
// does nothing. Score is safe for concurrent use.
func (m *Model) Score(rows, out []float32) error {
	if m.tokens > 0 {
		return fmt.Errorf("%w: %s is a text model: use ScoreTexts", ErrBatchShape, m.bundle.Name)
	}
	return m.ScoreTexts(rows, nil, out)
}

// ScoreTexts is Score for any model: for a text model, texts[i] are the texts of
// row i (oldest first), tokenized with the bundle's tokenizer; other models ignore
// texts.
func (m *Model) ScoreTexts(rows []float32, texts [][]string, out []float32) error {
	if len(rows)%m.features != 0 {
		return fmt.Errorf("%w: %d input values are not whole rows of %d features", ErrBatchShape, len(rows), m.features)
	}
	n := len(rows) / m.features
	if len(out) != n*m.width {
		return fmt.Errorf("%w: %d rows need %d output values, got %d", ErrBatchShape, n, n*m.width, len(out))
	}
	var tokens []int64
	if m.tokens > 0 {
		if len(texts) != n {
			return fmt.Errorf("%w: %d rows need %d text lists, got %d", ErrBatchShape, n, n, len(texts))
		}
		tokens = make([]int64, 0, n*m.tokens)
		for _, t := range texts {
			tokens = m.tokenizer.Encode(t, tokens)
		}
	}
	return m.run(n, rows, tokens, out)
}

// run scores n rows whose inputs are checked.
func (m *Model) run(n int, rows []float32, tokens []int64, out []float32) error {
	return m.runBounded(n, rows, tokens, out, time.Time{})
}

// runBounded is run, terminated at deadline unless it is zero: a run still going
// then returns an error wrapping ErrLatency. ONNX Runtime checks for termination
// between the graph's nodes.
func (m *Model) runBounded(n int, rows []float32, tokens []int64, out []float32, deadline time.Time) error {
	if n == 0 {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.session == nil {
		return ErrClosed
	}
	in, err := ort.NewTensor(ort.Shape{int64(n), int64(m.features)}, rows)
	if err != nil {
		return fmt.Errorf("models: score %s: input tensor: %w", m.bundle.Name, err)
	}
	defer in.Destroy()
	res, err := ort.NewTensor(ort.Shape{int64(n), int64(m.width)}, out)
	if err != nil {
		return fmt.Errorf("models: score %s: output tensor: %w", m.bundle.Name, err)
	}
	defer res.Destroy()
	inputs := []ort.Value{in}
	if m.tokens > 0 {
		if len(tokens) != n*m.tokens {
			return fmt.Errorf("%w: %d rows need %d token ids, got %d", ErrBatchShape, n, n*m.tokens, len(tokens))
		}
		tt, err := ort.NewTensor(ort.Shape{int64(n), int64(m.tokens)}, tokens)
		if err != nil {
			return fmt.Errorf("models: score %s: tokens tensor: %w", m.bundle.Name, err)
		}
		defer tt.Destroy()
		inputs = append(inputs, tt)
	}
	if deadline.IsZero() {
		if err := m.session.Run(inputs, []ort.Value{res}); err != nil {
			return fmt.Errorf("models: score %s: %w", m.bundle.Name, err)
		}
		return nil
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("models: score %s: run options: %w", m.bundle.Name, err)
	}
	defer ro.Destroy()
	var terminated atomic.Bool
	stop := make(chan struct{})
	timer := time.AfterFunc(time.Until(deadline), func() {
		defer close(stop)
		terminated.Store(true)
		ro.Terminate()
	})
	err = m.session.RunWithOptions(inputs, []ort.Value{res}, ro)
	if !timer.Stop() {
		<-stop // the terminate call is done before ro is destroyed
	}
	if terminated.Load() {
		return fmt.Errorf("models: score %s: %w", m.bundle.Name, ErrLatency)
	}
	if err != nil {
		return fmt.Errorf("models: score %s: %w", m.bundle.Name, err)
	}
	return nil
}

// Close releases the session after the Score calls in flight have returned. It is
// idempotent; Score returns ErrClosed afterwards.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	if err != nil {
		return fmt.Errorf("models: close %s %s: %w", m.bundle.Name, m.bundle.Version, err)
	}
	return nil
}

// Name returns the bundle's model name.
func (m *Model) Name() string { return m.bundle.Name }

// Version returns the bundle's version.
func (m *Model) Version() string { return m.bundle.Version }

// SHA256 returns the hex sha256 of the model file.
func (m *Model) SHA256() string { return m.bundle.SHA256 }

// Role returns RoleActive or RoleShadow.
func (m *Model) Role() string { return m.bundle.Role }

// Threshold returns the bundle's act threshold: the score at or above which a
// decision is considered.
func (m *Model) Threshold() float64 { return m.bundle.Thresholds[ThresholdAct] }

// NumFeatures returns the number of values per input row.
func (m *Model) NumFeatures() int { return m.features }

// OutputWidth returns the number of values per output row.
func (m *Model) OutputWidth() int { return m.width }

// Bundle returns the bundle the model was opened from. The caller must not modify it.
func (m *Model) Bundle() *Bundle { return m.bundle }

// Explain measures how much each feature drives the model's first output for one
// row: deltas[i] is the score of row minus the score with feature i set to the
// bundle's reference value (zero without one). One session run scores the row and
// all its variations. texts are the row's texts for a text model.
func (m *Model) Explain(row []float32, texts []string, deltas []float32) error {
	return m.ExplainRows(row, [][]string{texts}, deltas)
}

// ExplainRows is Explain for several rows in one session run: rows holds them one
// after the other, texts[i] the texts of row i (nil for a model without texts),
// and deltas receives one delta per feature for each row, in the same layout.
func (m *Model) ExplainRows(rows []float32, texts [][]string, deltas []float32) error {
	if len(rows)%m.features != 0 || len(deltas) != len(rows) {
		return fmt.Errorf("%w: explain wants whole rows of %d features and as many deltas, got %d values and %d deltas", ErrBatchShape, m.features, len(rows), len(deltas))
	}
	n := len(rows) / m.features
	if m.tokens > 0 && len(texts) != n {
		return fmt.Errorf("%w: %d rows need %d text lists, got %d", ErrBatchShape, n, n, len(texts))
	}
	ref := func(i int) float32 {
		if m.bundle.Reference != nil {
			return m.bundle.Reference[i]
		}
		return 0
	}
	// Each row is scored as it is and once per feature away from its reference
	// value, with that feature at the reference: the features at their reference
	// cannot move the score and keep a delta of zero without a variant.
	type variant struct{ row, feature int } // feature -1: the row as it is
	variants := make([]variant, 0, n*8)
	in := make([]float32, 0, n*8*m.features)
	for r := range n {
		row := rows[r*m.features : (r+1)*m.features]
		variants = append(variants, variant{r, -1})
		in = append(in, row...)
		for i, v := range row {
			if v != ref(i) {
				variants = append(variants, variant{r, i})
				in = append(in, row...)
				in[len(in)-m.features+i] = ref(i)
			}
		}
	}
	var tx [][]string
	if m.tokens > 0 {
		tx = make([][]string, len(variants))
		for k, v := range variants {
			tx[k] = texts[v.row]
		}
	}
	out := make([]float32, len(variants)*m.width)
	if err := m.ScoreTexts(in, tx, out); err != nil {
		return err
	}
	clear(deltas)
	var base float32
	for k, v := range variants {
		if v.feature < 0 {
			base = out[k*m.width]
			continue
		}
		deltas[v.row*m.features+v.feature] = base - out[k*m.width]
	}
	return nil
}
