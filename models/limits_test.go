package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/features"
)

// dropFixture copies the misbehaving bundle testdata/bad/<fixture> (written by
// make_bad_fixtures.py) into the models dir as <name>/<version> with role.
func dropFixture(t *testing.T, dir, fixture, version, role string) string {
	t.Helper()
	names, err := os.ReadDir(filepath.Join("testdata", "bad", fixture))
	if err != nil || len(names) != 1 {
		t.Fatalf("fixture %s: %v", fixture, err)
	}
	name := names[0].Name()
	src := filepath.Join("testdata", "bad", fixture, name, "1.1.0")
	dst := filepath.Join(dir, name, version)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{BundleFile, ModelFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	editBundle(t, dst, func(m map[string]any) { m["version"], m["role"] = version, role })
	return dst
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")) {
				kb = kb*10 + int64(c-'0')
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// TestExpandingModelRejectedWithinMemory (issue 9, finding 7): a model of a few
// hundred bytes that broadcasts its input to 2.5 GB is rejected without the
// process's memory growing by more than ONNX Runtime's cap.
func TestExpandingModelRejectedWithinMemory(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	d := dropFixture(t, dir, "expand", "1.1.0", RoleActive)
	if fi, err := os.Stat(filepath.Join(d, ModelFile)); err != nil || fi.Size() > 400 {
		t.Fatalf("the expanding fixture should be a few hundred bytes: %v %v", fi, err)
	}
	before := peakRSS(t)
	r.Scan()
	grew := peakRSS(t) - before
	t.Logf("peak RSS grew by %d MiB", grew>>20)
	if got := live(r, "cutoff_risk"); got != riskShipped {
		t.Errorf("serving %s, want %s kept", got, riskShipped)
	}
	if got := testutil.ToFloat64(r.rejections.WithLabelValues("cutoff_risk", RejectMemory)); got != 1 {
		t.Errorf("rejections{cutoff_risk,memory} = %v, want 1", got)
	}
	if grew > RunMemoryLimit+64<<20 {
		t.Errorf("peak RSS grew by %d MiB validating the expanding model, cap %d MiB", grew>>20, RunMemoryLimit>>20)
	}
}

// TestSlowModelTerminated (finding 7): golden rows that would run for an hour
// are terminated at the bound; without a real time limit this test does not end.
func TestSlowModelTerminated(t *testing.T) {
	initRuntime(t)
	d := dropFixture(t, t.TempDir(), "slow", "1.1.0", RoleActive)
	_, err := OpenWith(d, OpenOptions{SpecVersion: features.SpecVersion, FeatureNames: features.Names[:], MaxGoldenLatency: 100 * time.Millisecond})
	if !errors.Is(err, ErrLatency) || !strings.Contains(err.Error(), "terminated") {
		t.Fatalf("open = %v, want ErrLatency, terminated", err)
	}
}

// TestRegistryAnswersWhileValidating (finding 7): while a version is being
// validated, Status and Acquire answer and show it; it is validated without the
// registry's lock.
func TestRegistryAnswersWhileValidating(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	r.opts.Open.MaxGoldenLatency = 3 * time.Second
	dropFixture(t, dir, "slow", "1.1.0", RoleActive)
	done := make(chan struct{})
	go func() { defer close(done); r.Scan() }()
	seen := make(chan bool, 1)
	go func() {
		for {
			select {
			case <-done:
				seen <- false
				return
			default:
			}
			for _, st := range r.Status().([]ModelStatus) {
				for _, v := range st.Versions {
					if st.Name == "cutoff_risk" && v.Version == "1.1.0" && v.State == "validating" {
						seen <- live(r, "cutoff_risk") == riskShipped
						return
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if !<-seen {
		t.Error("Status never showed 1.1.0 validating while the scan ran (or the shipped version did not serve meanwhile)")
	}
	<-done
	if got := testutil.ToFloat64(r.rejections.WithLabelValues("cutoff_risk", RejectLatency)); got != 1 {
		t.Errorf("rejections{cutoff_risk,latency} = %v, want 1", got)
	}
}

// TestValidationRunsAFullBatch (finding 7): a model whose golden rows score
// within the limits but whose full batch does not (it expands its input 2,000
// times: 1.4 MB for the golden rows, 278 MB for 1,024 rows) is rejected.
func TestValidationRunsAFullBatch(t *testing.T) {
	initRuntime(t)
	d := dropFixture(t, t.TempDir(), "expand_batch", "1.1.0", RoleActive)
	_, err := OpenWith(d, OpenOptions{SpecVersion: features.SpecVersion, FeatureNames: features.Names[:], MaxGoldenLatency: time.Minute})
	if !errors.Is(err, ErrMemory) || !strings.Contains(err.Error(), "batch of 1024") {
		t.Fatalf("open = %v, want ErrMemory on the batch of 1024", err)
	}
}

// TestActivateRefusesBadVersions (finding 7): a version that is not a semantic
// version is refused before any path is built, and a failed activation leaves
// the PIN file as it was.
func TestActivateRefusesBadVersions(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	// A valid bundle outside the models dir, reachable by a relative path.
	evil := filepath.Join(filepath.Dir(dir), "evil", "cutoff_risk", "1.0.0")
	copyDir(t, filepath.Join(dir, "cutoff_risk", riskShipped), evil)
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.3.0", nil)
	if err := r.Activate("cutoff_risk", riskShipped); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(dir, "cutoff_risk", PinFile)
	want, err := os.ReadFile(pin)
	if err != nil {
		t.Fatal(err)
	}
	bad := copyVersion(t, dir, "cutoff_risk", riskShipped, "1.4.0", nil)
	editBundle(t, bad, func(m map[string]any) { m["golden"].([]any)[0].(map[string]any)["output"] = []any{0.123} })
	for _, v := range []string{"../../evil/cutoff_risk/1.0.0", "1.0", "../1.3.0", "1.3.0/../1.3.0", "9.9.9", "1.4.0"} {
		if err := r.Activate("cutoff_risk", v); err == nil {
			t.Errorf("activate %q succeeded", v)
		}
		if got, _ := os.ReadFile(pin); string(got) != string(want) {
			t.Errorf("after activate %q the PIN file holds %q, want %q", v, got, want)
		}
		if got := live(r, "cutoff_risk"); got != riskShipped {
			t.Errorf("after activate %q serving %q, want %s", v, got, riskShipped)
		}
	}
	// A version directory that is a symlink out of the models dir is not followed.
	evil18 := filepath.Join(filepath.Dir(dir), "evil", "cutoff_risk", "1.8.0")
	copyDir(t, evil, evil18)
	editBundle(t, evil18, func(m map[string]any) { m["version"] = "1.8.0" })
	if err := os.Symlink(evil18, filepath.Join(dir, "cutoff_risk", "1.8.0")); err != nil {
		t.Fatal(err)
	}
	if err := r.Activate("cutoff_risk", "1.8.0"); !errors.Is(err, ErrInvalidBundle) {
		t.Errorf("activate a symlinked version: %v, want ErrInvalidBundle", err)
	}
	if got, _ := os.ReadFile(pin); string(got) != string(want) {
		t.Errorf("after activate a symlinked version the PIN file holds %q", got)
	}
	if err := r.Activate("cutoff_risk", "../../evil/cutoff_risk/1.0.0"); !errors.Is(err, ErrInvalidVersion) {
		t.Errorf("activate a path: %v, want ErrInvalidVersion", err)
	}
	// A PIN file edited by hand to a path is ignored: the greatest version serves.
	if err := os.WriteFile(pin, []byte("../../evil/cutoff_risk/1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Scan()
	if got := live(r, "cutoff_risk"); got != "1.3.0" {
		t.Errorf("with a path in PINNED serving %q, want 1.3.0", got)
	}
}

// TestBundleFilesMustBeRegularAndSmall (finding 7): symlinked bundle files are
// not read, whether they point inside the models dir or out of it, and files
// over the size limits are refused before they are read.
func TestBundleFilesMustBeRegularAndSmall(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	outside := filepath.Join(filepath.Dir(dir), "outside")
	copyDir(t, filepath.Join(dir, "cutoff_risk", riskShipped), outside)
	cases := []struct {
		name, version string
		mangle        func(d string)
		mention       string
	}{
		{"model.onnx a symlink out of the models dir", "1.4.0", func(d string) {
			relink(t, filepath.Join(outside, ModelFile), filepath.Join(d, ModelFile))
		}, "symlink"},
		{"bundle.json a symlink", "1.5.0", func(d string) {
			os.WriteFile(filepath.Join(outside, BundleFile+".v"), must(os.ReadFile(filepath.Join(d, BundleFile))), 0o644)
			relink(t, filepath.Join(outside, BundleFile+".v"), filepath.Join(d, BundleFile))
		}, "symlink"},
		{"model.onnx over the size limit", "1.6.0", func(d string) {
			if err := os.Truncate(filepath.Join(d, ModelFile), MaxModelBytes+1); err != nil {
				t.Fatal(err)
			}
		}, "over the limit"},
		{"bundle.json over the size limit", "1.7.0", func(d string) {
			f, err := os.OpenFile(filepath.Join(d, BundleFile), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte(strings.Repeat(" ", MaxBundleBytes)))
			f.Close()
		}, "over the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := copyVersion(t, dir, "cutoff_risk", riskShipped, c.version, nil)
			c.mangle(d)
			r.Scan()
			if got := live(r, "cutoff_risk"); got != riskShipped {
				t.Errorf("serving %s, want %s kept", got, riskShipped)
			}
			_, err := LoadBundle(d)
			if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("LoadBundle = %v, want ErrInvalidBundle mentioning %q", err, c.mention)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func relink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), must(os.ReadFile(filepath.Join(src, e.Name()))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTokenizerMustBeInTheBundle: the tokenizer file is named by bundle.json;
// a path out of the bundle directory is an invalid bundle, and a symlinked
// tokenizer is not read.
func TestTokenizerMustBeInTheBundle(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	for _, c := range []struct {
		version string
		mangle  func(d string)
	}{
		{"1.4.0", func(d string) {
			editBundle(t, d, func(m map[string]any) { m["tokenizer"] = "../" + classShipped + "/tokenizer.json" })
		}},
		{"1.5.0", func(d string) {
			relink(t, filepath.Join(dir, "exception_class", classShipped, "tokenizer.json"), filepath.Join(d, "tokenizer.json"))
		}},
	} {
		d := copyVersion(t, dir, "exception_class", classShipped, c.version, nil)
		c.mangle(d)
		r.Scan()
		if got := live(r, "exception_class"); got != classShipped {
			t.Errorf("%s: serving %s, want %s kept", c.version, got, classShipped)
		}
	}
}
