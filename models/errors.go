package models

import "errors"

var (
	// ErrRuntimeMissing is returned by InitRuntime when no ONNX Runtime shared library
	// exists at the given path, at $ONNXRUNTIME_LIB, or at the places it looks by
	// default. The error names every path it tried.
	ErrRuntimeMissing = errors.New("models: onnx runtime library not found")

	// ErrRuntimeInvalid is returned by InitRuntime when a library file exists but
	// cannot be loaded as ONNX Runtime: not a shared object, not ONNX Runtime, or an
	// ONNX Runtime older than the API version onnxruntime_go needs (1.24).
	ErrRuntimeInvalid = errors.New("models: onnx runtime library cannot be loaded")

	// ErrRuntimeNotInitialized is returned by Open when InitRuntime has not succeeded
	// in this process.
	ErrRuntimeNotInitialized = errors.New("models: onnx runtime not initialised")

	// ErrInvalidBundle is returned by LoadBundle and Open when bundle.json or
	// model.onnx is missing, malformed, or has a field with an invalid value.
	ErrInvalidBundle = errors.New("models: invalid bundle")

	// ErrChecksum is returned by LoadBundle and Open when the sha256 of model.onnx
	// differs from the one in bundle.json.
	ErrChecksum = errors.New("models: model.onnx checksum mismatch")

	// ErrSpecMismatch is returned by Open when the bundle was trained on another
	// feature spec than the running one: another spec version, or other feature
	// names or order.
	ErrSpecMismatch = errors.New("models: feature spec mismatch")

	// ErrModelMismatch is returned by Open when model.onnx cannot be loaded by ONNX
	// Runtime, or its inputs and outputs (names, types, shapes) differ from
	// bundle.json or from what a Model can score.
	ErrModelMismatch = errors.New("models: model does not match its bundle")

	// ErrGolden is returned by Open when the bundle's golden rows do not score
	// within the tolerance of their expected outputs.
	ErrGolden = errors.New("models: golden rows do not reproduce")

	// ErrBatchShape is returned by Score when the input or output slice does not
	// hold whole rows of the model's width.
	ErrBatchShape = errors.New("models: batch shape does not match the model")

	// ErrClosed is returned by Score after Close.
	ErrClosed = errors.New("models: model closed")

	// ErrTokenizer is returned by Open when a text model's tokenizer is missing,
	// does not match its sha256 or does not load.
	ErrTokenizer = errors.New("models: tokenizer invalid")

	// ErrLatency is returned by Open when the golden rows score too slowly.
	ErrLatency = errors.New("models: golden rows score too slowly")

	// ErrMemory is returned by Open when scoring the golden rows or the validation
	// batch needs more memory than RunMemoryLimit allows.
	ErrMemory = errors.New("models: model needs too much memory")

	// ErrInvalidVersion is returned by Activate when the version is not a semantic
	// version such as 1.2.0; no path is built from it.
	ErrInvalidVersion = errors.New("models: invalid version")

	// ErrBadOutputs is recorded (GET /api/v1/models, the bad_outputs rejection
	// reason) for a serving version taken out of service because too many of the
	// rows it scored came out unusable: not finite, or not a probability.
	ErrBadOutputs = errors.New("models: too many unusable outputs")

	// ErrSweepNonFinite is returned by Open (and reported by Check) when the
	// sweep of extreme but valid inputs gives an output that is NaN or infinite.
	ErrSweepNonFinite = errors.New("models: output not finite for an extreme but valid input")

	// ErrSweepOutOfRange is returned by Open (and reported by Check) when the
	// sweep gives a finite output that is not a probability, or a class row that
	// does not sum to 1.
	ErrSweepOutOfRange = errors.New("models: output out of range for an extreme but valid input")

	// ErrNoVersion is returned by Active when a models dir holds no version of the
	// named model.
	ErrNoVersion = errors.New("models: no model version found")
)
