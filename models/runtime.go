package models

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_LIB"

// libraryRelPath is where `make build` puts the library, relative to the repository
// root and to the directory above the installed binary.
const libraryRelPath = "lib/onnxruntime/libonnxruntime.so.1"

const runtimeHint = "run `make build` or set " + LibraryEnv + " to the path of libonnxruntime.so.1 (ONNX Runtime 1.24)"

// ortEnv is the process's ONNX Runtime environment and the package's one piece of
// mutable state: onnxruntime_go keeps the environment in its own package state, one
// per process, so this is process-wide too.
var ortEnv struct {
	mu sync.Mutex
	// lib is the library the environment was created from; "" while none is.
	lib string
}

// InitRuntime loads the ONNX Runtime shared library and creates the process's ONNX
// Runtime environment; Open needs it. It is idempotent and safe for concurrent use:
// once a library is loaded, later calls return nil, except a call naming another
// library, which fails.
//
// The library is libPath when it is not empty, else $ONNXRUNTIME_LIB when set, else
// the first that exists of <dir of the executable>/../lib/onnxruntime/libonnxruntime.so.1
// and lib/onnxruntime/libonnxruntime.so.1 in the nearest directory at or above the
// working directory that holds a go.mod. A library that is not found returns an error
// wrapping ErrRuntimeMissing, one that cannot be loaded an error wrapping
// ErrRuntimeInvalid; both name the paths and say what to do.
func InitRuntime(libPath string) error {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()

	if ortEnv.lib != "" && libPath == "" {
		return nil
	}
	lib, err := findLibrary(libPath)
	if err != nil {
		return err
	}
	if ortEnv.lib != "" {
		if lib != ortEnv.lib {
			return fmt.Errorf("models: onnx runtime already loaded from %s, cannot load %s", ortEnv.lib, lib)
		}
		return nil
	}

	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("%w: %s: %s; %s", ErrRuntimeInvalid, lib, explainLoadError(err), runtimeHint)
	}
	if err := registerArena(); err != nil {
		ort.DestroyEnvironment()
		return fmt.Errorf("%w: %s: memory arena: %w", ErrRuntimeInvalid, lib, err)
	}
	ortEnv.lib = lib
	return nil
}

// RunMemoryLimit caps the memory ONNX Runtime allocates for all sessions
// together (their working tensors: the input and output tensors are the
// caller's): a run that would need more fails, the process stays within it.
const RunMemoryLimit = 256 << 20

// registerArena gives the environment one CPU arena capped at RunMemoryLimit,
// which every session uses ("session.use_env_allocators").
func registerArena() error {
	// Extend by what is requested (1), not by the next power of two: the cap
	// holds for what is actually needed.
	cfg, err := ort.NewArenaCfg(RunMemoryLimit, 1, -1, -1)
	if err != nil {
		return err
	}
	defer cfg.Destroy()
	info, err := ort.GetMemoryInfo()
	if err != nil {
		return err
	}
	return ort.CreateAndRegisterAllocator(info, cfg)
}

// CloseRuntime destroys the ONNX Runtime environment and unloads the library. Every
// Model must be closed first. It is idempotent; InitRuntime may be called again after.
func CloseRuntime() error {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.lib == "" {
		return nil
	}
	ortEnv.lib = ""
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("models: close onnx runtime: %w", err)
	}
	return nil
}

// RuntimeVersion returns the version of the loaded ONNX Runtime library, or "" when
// InitRuntime has not succeeded.
func RuntimeVersion() string {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.lib == "" {
		return ""
	}
	return ort.GetVersion()
}

// runtimeReady reports whether InitRuntime has succeeded.
func runtimeReady() bool {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	return ortEnv.lib != ""
}

// findLibrary returns the absolute path of the library InitRuntime should load.
func findLibrary(explicit string) (string, error) {
	var candidates []string
	switch env := os.Getenv(LibraryEnv); {
	case explicit != "":
		candidates = []string{explicit}
	case env != "":
		candidates = []string{env}
	default:
		candidates = defaultLibraryPaths()
	}

	tried := make([]string, 0, len(candidates))
	for _, c := range candidates {
		abs, err := filepath.Abs(c)
		if err != nil {
			abs = c
		}
		tried = append(tried, abs)
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return "", fmt.Errorf("%w: %v; %s", ErrRuntimeInvalid, err, runtimeHint)
		case !fi.Mode().IsRegular():
			return "", fmt.Errorf("%w: %s is not a regular file; %s", ErrRuntimeInvalid, abs, runtimeHint)
		}
		return abs, nil
	}
	return "", fmt.Errorf("%w (tried %s); %s", ErrRuntimeMissing, strings.Join(tried, ", "), runtimeHint)
}

// defaultLibraryPaths lists where an installed binary and a source checkout keep
// the library.
func defaultLibraryPaths() []string {
	var paths []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		paths = append(paths, filepath.Join(filepath.Dir(exe), "..", libraryRelPath))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				paths = append(paths, filepath.Join(dir, libraryRelPath))
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return paths
}

// explainLoadError turns onnxruntime_go's loader errors into what a person can act on.
func explainLoadError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Error loading ONNX shared library"):
		// onnxruntime_go ends the message with dlerror's "<path>: <reason>".
		reason := msg[strings.LastIndex(msg, ": ")+2:]
		return "not a shared object this process can load (" + reason + ")"
	case strings.Contains(msg, "Error setting ORT API base"):
		return "the library does not provide ONNX Runtime API version 24; it is older than ONNX Runtime 1.24"
	case strings.Contains(msg, "OrtGetApiBase"):
		return "the library is a shared object but not ONNX Runtime (no OrtGetApiBase)"
	}
	return msg
}
