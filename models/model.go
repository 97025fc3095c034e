// Package models loads ONNX model bundles, validates them against the running
// feature spec and scores batches of feature vectors with ONNX Runtime. It is the only
// package that uses cgo: the pipeline and cmd import it, other packages stay pure Go.
// Call InitRuntime once per process, then Open a bundle directory; SeedDir and Active
// manage the models directory seeded from the bundles shipped in the binary.
package models

import (
	"fmt"
	"math"
	"slices"
	"sync"

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
	bundle   *Bundle
	features int // values per input row
	width    int // values per output row
	input    []string
	output   []string

	// mu guards session: Score holds it shared, Close exclusively.
	mu      sync.RWMutex
	session *ort.DynamicAdvancedSession
}

// Open loads and validates the bundle in dir and creates its ONNX Runtime session.
// specVersion and featureNames are the running feature spec: a bundle trained on
// another spec version, or whose input names other features or the same in another
// order, is rejected with ErrSpecMismatch. The model file's inputs and outputs must
// match bundle.json (ErrModelMismatch) and the golden rows must reproduce within
// GoldenTolerance (ErrGolden). InitRuntime must have succeeded.
func Open(dir, specVersion string, featureNames []string) (*Model, error) {
	b, data, err := loadBundle(dir)
	if err != nil {
		return nil, err
	}
	if !runtimeReady() {
		return nil, fmt.Errorf("open bundle %s: %w: call InitRuntime first", dir, ErrRuntimeNotInitialized)
	}
	if err := checkSpec(b, specVersion, featureNames); err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	if len(b.Inputs) != 1 || len(b.Outputs) != 1 || b.Inputs[0].DType != "float32" || b.Outputs[0].DType != "float32" {
		return nil, fmt.Errorf("open bundle %s: %w: a Model has one float32 input and one float32 output, bundle.json declares %d inputs and %d outputs",
			dir, ErrModelMismatch, len(b.Inputs), len(b.Outputs))
	}
	if err := checkModelFile(b, data); err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
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

	m := &Model{
		bundle:   b,
		features: b.Inputs[0].width(),
		width:    b.Outputs[0].width(),
		input:    []string{b.Inputs[0].Name},
		output:   []string{b.Outputs[0].Name},
	}
	m.session, err = ort.NewDynamicAdvancedSessionWithONNXData(data, m.input, m.output, opts)
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w: %w", dir, ErrModelMismatch, err)
	}
	if err := m.checkGolden(); err != nil {
		m.Close()
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	return m, nil
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

// checkGolden scores the golden rows in one batch and compares them.
func (m *Model) checkGolden() error {
	g := m.bundle.Golden
	in := make([]float32, 0, len(g)*m.features)
	for _, row := range g {
		in = append(in, row.Input...)
	}
	out := make([]float32, len(g)*m.width)
	if err := m.Score(in, out); err != nil {
		return fmt.Errorf("%w: %w", ErrGolden, err)
	}
	for i, row := range g {
		for j, want := range row.Output {
			got := out[i*m.width+j]
			if d := math.Abs(float64(got) - float64(want)); !(d <= GoldenTolerance) {
				return fmt.Errorf("%w: row %d output %d is %v, want %v (tolerance %g)", ErrGolden, i, j, got, want, GoldenTolerance)
			}
		}
	}
	return nil
}

// Score scores n rows in one session run. rows holds the rows one after the other,
// NumFeatures values each in the order of the bundle's feature names; out receives
// OutputWidth values per row (the risk, for cutoff_risk) and must be exactly n rows
// long. The slices are read and written only during the call. A call with no rows
// does nothing. Score is safe for concurrent use.
func (m *Model) Score(rows, out []float32) error {
	if len(rows)%m.features != 0 {
		return fmt.Errorf("%w: %d input values are not whole rows of %d features", ErrBatchShape, len(rows), m.features)
	}
	n := len(rows) / m.features
	if len(out) != n*m.width {
		return fmt.Errorf("%w: %d rows need %d output values, got %d", ErrBatchShape, n, n*m.width, len(out))
	}
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
	if err := m.session.Run([]ort.Value{in}, []ort.Value{res}); err != nil {
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
