package models

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orderwatch/orderwatch/features"
)

// helperEnv makes the test binary a child process that only calls InitRuntime with
// the variable's value, so that loading a missing or broken library can be tested
// in a fresh process while the parent keeps its loaded runtime.
const helperEnv = "ORDERWATCH_MODELS_INIT_HELPER"

func TestMain(m *testing.M) {
	if lib, ok := os.LookupEnv(helperEnv); ok {
		err := InitRuntime(lib)
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, ErrRuntimeMissing):
			fmt.Printf("missing\n%v\n", err)
		case errors.Is(err, ErrRuntimeInvalid):
			fmt.Printf("invalid\n%v\n", err)
		default:
			fmt.Printf("other\n%v\n", err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// initRuntime loads the ONNX Runtime library the way a developer's checkout finds
// it, and fails the test with InitRuntime's advice when it cannot.
func initRuntime(t testing.TB) {
	t.Helper()
	if err := InitRuntime(""); err != nil {
		t.Fatalf("the models tests need the real ONNX Runtime: %v", err)
	}
}

func TestInitRuntimeErrors(t *testing.T) {
	tmp := t.TempDir()
	notELF := filepath.Join(tmp, "libonnxruntime.so.1")
	if err := os.WriteFile(notELF, []byte("not a shared object\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tmp, "nowhere", "libonnxruntime.so.1")

	tests := []struct {
		name    string
		lib     string // InitRuntime's argument
		env     string // $ONNXRUNTIME_LIB; "" unsets it
		dir     string // working directory of the child
		kind    string
		mention []string
	}{
		{name: "explicit path missing", lib: missing, kind: "missing",
			mention: []string{missing, "make build", LibraryEnv}},
		{name: "env path missing", env: missing, kind: "missing",
			mention: []string{missing, "make build"}},
		{name: "nothing in the default places", dir: tmp, kind: "missing",
			mention: []string{"tried", libraryRelPath, "make build", LibraryEnv}},
		{name: "not a shared object", lib: notELF, kind: "invalid",
			mention: []string{notELF, "make build"}},
		{name: "shared object that is not onnx runtime", lib: libm(t), kind: "invalid",
			mention: []string{"not ONNX Runtime", "make build"}},
		{name: "onnx runtime older than 1.24", lib: oldRuntime(t), kind: "invalid",
			mention: []string{"older than ONNX Runtime 1.24", "make build"}},
		{name: "explicit path wins over env", lib: missing, env: notELF, kind: "missing",
			mention: []string{missing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Dir = tt.dir
			cmd.Env = append(withoutEnv(os.Environ(), LibraryEnv, helperEnv), helperEnv+"="+tt.lib)
			if tt.env != "" {
				cmd.Env = append(cmd.Env, LibraryEnv+"="+tt.env)
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child process: %v\n%s", err, out)
			}
			kind, msg, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			if kind != tt.kind {
				t.Fatalf("InitRuntime(%q) error kind %q, want %q; output:\n%s", tt.lib, kind, tt.kind, out)
			}
			if !strings.HasPrefix(msg, "models: ") {
				t.Errorf("error %q does not start with \"models: \"", msg)
			}
			for _, s := range tt.mention {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not mention %q", msg, s)
				}
			}
		})
	}
}

// libm returns the path of the C math library: a real shared object that is not
// ONNX Runtime.
func libm(t *testing.T) string {
	t.Helper()
	for _, pattern := range []string{"/lib/*/libm.so.6", "/usr/lib/*/libm.so.6", "/lib64/libm.so.6", "/usr/lib64/libm.so.6"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[0]
		}
	}
	t.Fatal("no libm.so.6 found to stand in for a shared object that is not ONNX Runtime")
	return ""
}

// oldRuntime builds a shared object that looks like an ONNX Runtime without API
// version 24, as an older release does.
func oldRuntime(t *testing.T) string {
	t.Helper()
	cc := "cc"
	if out, err := exec.Command("go", "env", "CC").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		cc = strings.TrimSpace(string(out))
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "old.c")
	const code = `#include <stddef.h>
typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } OrtApiBase;
static const void *get_api(unsigned version) { return version <= 16 ? (const void *)1 : NULL; }
static const char *get_version(void) { return "1.16.3"; }
static const OrtApiBase base = { get_api, get_version };
const OrtApiBase *OrtGetApiBase(void) { return &base; }
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "libonnxruntime.so.1")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("building a stand-in for an old ONNX Runtime with %s (cgo's C compiler): %v\n%s", cc, err, out)
	}
	return lib
}

func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, n := range names {
			keep = keep && name != n
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

func TestInitRuntimeIdempotent(t *testing.T) {
	initRuntime(t)
	lib, err := findLibrary("")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				errs[i] = InitRuntime("")
			} else {
				errs[i] = InitRuntime(lib)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if v := RuntimeVersion(); !strings.HasPrefix(v, "1.") {
		t.Errorf("RuntimeVersion() = %q, want 1.x", v)
	}

	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := InitRuntime(other); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("InitRuntime(another library) = %v, want an already loaded error", err)
	}
}

func TestCloseRuntime(t *testing.T) {
	dir := seeded(t)
	for i := range 2 {
		initRuntime(t)
		m, err := Open(dir, features.SpecVersion, features.Names[:])
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := CloseRuntime(); err != nil {
				t.Fatalf("round %d: CloseRuntime() = %v", i, err)
			}
		}
		if v := RuntimeVersion(); v != "" {
			t.Errorf("RuntimeVersion() after CloseRuntime = %q, want \"\"", v)
		}
		if _, err := Open(dir, features.SpecVersion, features.Names[:]); !errors.Is(err, ErrRuntimeNotInitialized) {
			t.Errorf("Open without a runtime = %v, want ErrRuntimeNotInitialized", err)
		}
	}
	initRuntime(t)
}
