package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

// Files of a bundle directory.
const (
	BundleFile = "bundle.json"
	ModelFile  = "model.onnx"
)

// Size limits of a bundle's files, checked before they are read: a larger file is
// an invalid bundle.
const (
	MaxModelBytes     = 64 << 20 // model.onnx
	MaxBundleBytes    = 1 << 20  // bundle.json, golden rows included
	MaxTokenizerBytes = 8 << 20  // the tokenizer file
)

// Roles a bundle can have.
const (
	// RoleActive marks a bundle whose scores are acted on.
	RoleActive = "active"
	// RoleShadow marks a bundle that is scored and logged, never acted on.
	RoleShadow = "shadow"
)

// ThresholdAct is the key in Bundle.Thresholds of the score at or above which a
// decision is considered.
const ThresholdAct = "act"

var bundleName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Bundle is a model bundle's bundle.json: what a model expects, produces and was
// validated with. A Bundle is a value read from disk; it is not modified after
// LoadBundle returns and may be read concurrently.
type Bundle struct {
	// Name is the model's name, also the directory above the version directory.
	Name string `json:"name"`
	// Version is a semantic version, also the name of the bundle's directory.
	Version string `json:"version"`
	// FeatureSpecVersion is the feature spec the model was trained on.
	FeatureSpecVersion string `json:"feature_spec_version"`
	// Role is RoleActive or RoleShadow.
	Role string `json:"role"`
	// Inputs and Outputs describe the model's tensors, in the model's order.
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
	// Labels names the output columns of a class model, in order; empty otherwise.
	Labels []string `json:"labels,omitempty"`
	// Thresholds are score cut-offs by name; ThresholdAct is required.
	Thresholds map[string]float64 `json:"thresholds"`
	// Metrics are the training recipe's evaluation figures, for people.
	Metrics map[string]any `json:"metrics,omitempty"`
	// SHA256 is the hex sha256 of model.onnx.
	SHA256 string `json:"sha256"`
	// Golden are input rows with the outputs the model must reproduce.
	Golden []Golden `json:"golden"`
	// TrainedBy names the recipe that produced the bundle.
	TrainedBy string `json:"trained_by,omitempty"`
	// Tokenizer is the file, in the bundle directory, of the tokenizer that turns
	// an order's texts into the ids of the tokens input; TokenizerSHA256 its hex
	// sha256. Required when an input has Tokens set.
	Tokenizer       string `json:"tokenizer,omitempty"`
	TokenizerSHA256 string `json:"tokenizer_sha256,omitempty"`
	// Reference is a typical feature row (for example the training medians): reason
	// codes measure how much the score falls when one feature takes its reference
	// value. Optional; zeros when absent.
	Reference []float32 `json:"reference,omitempty"`

	// Dir is the directory the bundle was loaded from.
	Dir string `json:"-"`
}

// TensorSpec describes one input or output tensor of a model.
type TensorSpec struct {
	Name string `json:"name"`
	// DType is the element type: "float32" or "int64".
	DType string `json:"dtype"`
	// Shape has -1 for the batch dimension (the first).
	Shape []int64 `json:"shape"`
	// Features names the columns of a feature input, in order.
	Features []string `json:"features,omitempty"`
	// Tokens marks an int64 input of token ids of the order's texts, one row of
	// Shape[1] ids per order, made by the bundle's tokenizer.
	Tokens bool `json:"tokens,omitempty"`
}

// Golden is one input row and the output row the model must produce for it. Tokens
// holds the token ids of a text model's tokens input.
type Golden struct {
	Input  []float32 `json:"input"`
	Tokens []int64   `json:"tokens,omitempty"`
	Output []float32 `json:"output"`
}

// width returns the number of values per batch row: the product of the dimensions
// after the first.
func (t TensorSpec) width() int {
	w := 1
	for _, d := range t.Shape[1:] {
		w *= int(d)
	}
	return w
}

// LoadBundle reads and validates the bundle in dir (<models-dir>/<name>/<version>):
// bundle.json must be well formed and consistent, its name and version must match
// the directory, and model.onnx must match its sha256. Errors wrap ErrInvalidBundle
// or ErrChecksum. It does not load the model into ONNX Runtime: Open does.
func LoadBundle(dir string) (*Bundle, error) {
	b, _, err := loadBundle(dir)
	return b, err
}

// loadBundle is LoadBundle that also returns the verified bytes of model.onnx, so
// that the session is created from the very bytes that were checked.
func loadBundle(dir string) (*Bundle, []byte, error) {
	raw, err := readBundleFile(dir, BundleFile, MaxBundleBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %w", dir, ErrInvalidBundle, err)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %s: %w", dir, ErrInvalidBundle, BundleFile, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %s: data after the JSON object", dir, ErrInvalidBundle, BundleFile)
	}
	b.Dir = dir
	if err := b.validate(); err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %w", dir, ErrInvalidBundle, err)
	}

	model, err := readBundleFile(dir, ModelFile, MaxModelBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %w", dir, ErrInvalidBundle, err)
	}
	sum := sha256.Sum256(model)
	if got := hex.EncodeToString(sum[:]); got != b.SHA256 {
		return nil, nil, fmt.Errorf("load bundle %s: %w: %s has sha256 %s, bundle.json says %s", dir, ErrChecksum, ModelFile, got, b.SHA256)
	}
	return &b, model, nil
}

// validate checks the bundle's fields and their consistency with each other and
// with the directory it was read from.
func (b *Bundle) validate() error {
	if !bundleName.MatchString(b.Name) {
		return fmt.Errorf("name %q: want lowercase letters, digits and _", b.Name)
	}
	if _, ok := parseVersion(b.Version); !ok {
		return fmt.Errorf("version %q: want a semantic version such as 1.2.0", b.Version)
	}
	abs, err := filepath.Abs(b.Dir)
	if err != nil {
		return err
	}
	if base := filepath.Base(abs); base != b.Version {
		return fmt.Errorf("version %q differs from the directory name %q", b.Version, base)
	}
	if parent := filepath.Base(filepath.Dir(abs)); parent != b.Name {
		return fmt.Errorf("name %q differs from the parent directory name %q", b.Name, parent)
	}
	if b.FeatureSpecVersion == "" {
		return errors.New("feature_spec_version is empty")
	}
	if b.Role != RoleActive && b.Role != RoleShadow {
		return fmt.Errorf("role %q: want %q or %q", b.Role, RoleActive, RoleShadow)
	}
	if len(b.Inputs) == 0 || len(b.Outputs) == 0 {
		return errors.New("inputs and outputs must not be empty")
	}
	for i, t := range b.Inputs {
		if err := t.validate(); err != nil {
			return fmt.Errorf("inputs[%d]: %w", i, err)
		}
	}
	for i, t := range b.Outputs {
		if err := t.validate(); err != nil {
			return fmt.Errorf("outputs[%d]: %w", i, err)
		}
		if len(t.Features) > 0 {
			return fmt.Errorf("outputs[%d]: features are for inputs", i)
		}
	}
	if len(b.Labels) > 0 && (len(b.Outputs) != 1 || len(b.Labels) != b.Outputs[0].width()) {
		return fmt.Errorf("labels: %d labels for outputs of width %d", len(b.Labels), b.Outputs[0].width())
	}
	if _, ok := b.Thresholds[ThresholdAct]; !ok {
		return fmt.Errorf("thresholds.%s is missing", ThresholdAct)
	}
	for k, v := range b.Thresholds {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("thresholds.%s = %v: want a value in [0, 1]", k, v)
		}
	}
	if len(b.SHA256) != sha256.Size*2 || !isLowerHex(b.SHA256) {
		return fmt.Errorf("sha256 %q: want 64 lowercase hex digits", b.SHA256)
	}
	if len(b.Golden) == 0 {
		return errors.New("golden: at least one row is required")
	}
	if len(b.Inputs) > 2 || len(b.Outputs) != 1 || b.Inputs[0].DType != "float32" || len(b.Inputs[0].Features) == 0 || b.Outputs[0].DType != "float32" {
		return errors.New("inputs: want a float32 feature input first and at most one int64 tokens input after it, and one float32 output")
	}
	var tokens int
	if len(b.Inputs) == 2 {
		t := b.Inputs[1]
		if !t.Tokens || t.DType != "int64" || len(t.Shape) != 2 {
			return fmt.Errorf("inputs[1] %s: a second input must be int64 [-1, T] with \"tokens\": true", t.Name)
		}
		if b.Tokenizer == "" || len(b.TokenizerSHA256) != sha256.Size*2 {
			return fmt.Errorf("inputs[1] %s: a tokens input needs \"tokenizer\" (the file) and \"tokenizer_sha256\"", t.Name)
		}
		if !plainFileName(b.Tokenizer) {
			return fmt.Errorf("tokenizer %q: want the name of a file in the bundle directory", b.Tokenizer)
		}
		tokens = t.width()
	}
	if b.Reference != nil && len(b.Reference) != b.Inputs[0].width() {
		return fmt.Errorf("reference: %d values for %d features", len(b.Reference), b.Inputs[0].width())
	}
	in, out := b.Inputs[0].width(), b.Outputs[0].width()
	for i, g := range b.Golden {
		if len(g.Input) != in || len(g.Output) != out || len(g.Tokens) != tokens {
			return fmt.Errorf("golden[%d]: %d inputs, %d tokens and %d outputs, want %d, %d and %d", i, len(g.Input), len(g.Tokens), len(g.Output), in, tokens, out)
		}
	}
	return nil
}

func (t TensorSpec) validate() error {
	if t.Name == "" {
		return errors.New("name is empty")
	}
	if t.DType != "float32" && t.DType != "int64" {
		return fmt.Errorf("%s: dtype %q: want float32 or int64", t.Name, t.DType)
	}
	if len(t.Shape) < 2 || t.Shape[0] != -1 {
		return fmt.Errorf("%s: shape %v: want -1 (the batch) then at least one dimension", t.Name, t.Shape)
	}
	for _, d := range t.Shape[1:] {
		if d < 1 {
			return fmt.Errorf("%s: shape %v: only the batch dimension may be -1", t.Name, t.Shape)
		}
	}
	if len(t.Features) > 0 && (len(t.Shape) != 2 || int(t.Shape[1]) != len(t.Features)) {
		return fmt.Errorf("%s: %d features for shape %v", t.Name, len(t.Features), t.Shape)
	}
	return nil
}

// plainFileName reports whether name names a file directly in a directory: no
// separator, not "." or "..".
func plainFileName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`) && filepath.Base(name) == name
}

// readBundleFile reads the file name of the bundle directory dir. It must be a
// regular file directly in dir, not a symlink (a bundle's files are read from
// the models dir only), of at most limit bytes; the checks hold for the file
// actually read (O_NOFOLLOW, then fstat on the open file).
func readBundleFile(dir, name string, limit int64) ([]byte, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: bundle files must be regular files in the bundle directory", name)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the limit of %d", name, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew over the limit of %d bytes while read", name, limit)
	}
	return data, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
