package models

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/features"
)

// copyVersion copies models dir version from → to of name, renaming the version
// in bundle.json, and applies edit to the JSON.
func copyVersion(t *testing.T, dir, name, from, to string, edit func(map[string]any)) string {
	t.Helper()
	src, dst := filepath.Join(dir, name, from), filepath.Join(dir, name, to)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	editBundle(t, dst, func(m map[string]any) {
		m["version"] = to
		if edit != nil {
			edit(m)
		}
	})
	return dst
}

func tokenizerLoader(path string) (Tokenizer, error) { return features.LoadTokenizer(path) }

// The versions in models/shipped (written by models/train/train.py). Versions the
// tests drop in are greater, so that they go live.
const (
	riskShipped  = "1.0.0"
	classShipped = "1.0.0"
)

func newTestRegistry(t *testing.T) (*Registry, string, *prometheus.Registry) {
	t.Helper()
	initRuntime(t)
	dir := t.TempDir()
	if err := SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	// The text-model fixture, as an older exception_class beside the shipped one.
	fixture := filepath.Join("testdata", "text", "exception_class", "0.0.1")
	dst := filepath.Join(dir, "exception_class", "0.0.1")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{BundleFile, ModelFile, "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(fixture, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	r, err := NewRegistry(RegistryOptions{
		Dir: dir, Names: []string{"cutoff_risk", "exception_class"}, Registerer: reg,
		Open: checkOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir, reg
}

func live(r *Registry, name string) string {
	set := r.Acquire()
	defer set.Release()
	if m := set.Model(name); m != nil {
		return m.Version()
	}
	return ""
}

func TestRegistryServesAndSwaps(t *testing.T) {
	r, dir, reg := newTestRegistry(t)
	if live(r, "cutoff_risk") != riskShipped || live(r, "exception_class") != classShipped {
		t.Fatalf("serving %q and %q, want the seeded %s and %s (the greatest versions)", live(r, "cutoff_risk"), live(r, "exception_class"), riskShipped, classShipped)
	}

	// A batch that acquired the shipped version keeps it while 1.3.0 goes live.
	held := r.Acquire()
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.3.0", nil)
	r.Scan()
	if got := live(r, "cutoff_risk"); got != "1.3.0" {
		t.Fatalf("after dropping 1.3.0, serving %s", got)
	}
	row := make([]float32, features.NumFeatures)
	out := make([]float32, 1)
	if err := held.Model("cutoff_risk").Score(row, out); err != nil {
		t.Fatalf("the batch that started on %s cannot finish on it: %v", riskShipped, err)
	}
	held.Release()

	// Text model scoring goes through its own tokenizer.
	set := r.Acquire()
	probs := make([]float32, 9)
	if err := set.Model("exception_class").ScoreTexts(row, [][]string{{"EDI 855 map fail seg PO1"}}, probs); err != nil {
		t.Fatal(err)
	}
	var sum float32
	for _, p := range probs {
		sum += p
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("class probabilities sum to %v", sum)
	}
	set.Release()

	if got := testutil.ToFloat64(r.swaps.WithLabelValues("cutoff_risk", RoleActive)); got != 2 {
		t.Errorf("swaps = %v, want 2", got)
	}
	_ = reg
}

func TestRegistryRejectsBadBundles(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	cases := []struct {
		name, model, version, reason string
		mangle                       func(dir string)
	}{
		{"corrupt model file", "cutoff_risk", "1.4.0", RejectChecksum, func(d string) {
			os.WriteFile(filepath.Join(d, ModelFile), []byte("not onnx"), 0o644)
		}},
		{"wrong feature spec", "cutoff_risk", "1.5.0", RejectSpec, func(d string) {
			editBundle(t, d, func(m map[string]any) { m["feature_spec_version"] = "1" })
		}},
		{"wrong output shape", "cutoff_risk", "1.6.0", RejectModel, func(d string) {
			editBundle(t, d, func(m map[string]any) {
				out := m["outputs"].([]any)[0].(map[string]any)
				out["shape"] = []any{-1, 2}
				for _, g := range m["golden"].([]any) {
					g.(map[string]any)["output"] = []any{0.5, 0.5}
				}
			})
		}},
		{"golden rows off", "cutoff_risk", "1.7.0", RejectGolden, func(d string) {
			editBundle(t, d, func(m map[string]any) {
				m["golden"].([]any)[0].(map[string]any)["output"] = []any{0.123}
			})
		}},
		{"missing tokenizer", "exception_class", "1.1.0", RejectTokenizer, func(d string) {
			os.Remove(filepath.Join(d, "tokenizer.json"))
		}},
		{"bad bundle.json", "exception_class", "1.2.0", RejectInvalid, func(d string) {
			os.WriteFile(filepath.Join(d, BundleFile), []byte(`{"name":`), 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := live(r, c.model)
			from := map[string]string{"cutoff_risk": riskShipped, "exception_class": classShipped}[c.model]
			d := copyVersion(t, dir, c.model, from, c.version, nil)
			c.mangle(d)
			r.Scan()
			if got := live(r, c.model); got != before {
				t.Errorf("serving %s after a bad %s, want %s kept", got, c.version, before)
			}
			if got := testutil.ToFloat64(r.rejections.WithLabelValues(c.model, c.reason)); got < 1 {
				t.Errorf("rejections{%s,%s} = %v", c.model, c.reason, got)
			}
			var found bool
			for _, st := range r.Status().([]ModelStatus) {
				for _, v := range st.Versions {
					if st.Name == c.model && v.Version == c.version && v.State == "rejected" && v.Reason == c.reason && v.Error != "" {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("status does not show %s %s rejected for %s: %+v", c.model, c.version, c.reason, r.Status())
			}
			// Not retried while the files stay the same.
			n := testutil.ToFloat64(r.rejections.WithLabelValues(c.model, c.reason))
			r.Scan()
			if testutil.ToFloat64(r.rejections.WithLabelValues(c.model, c.reason)) != n {
				t.Error("an unchanged rejected version was tried again")
			}
		})
	}
}

func TestRegistryShadowAndActivate(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.9.0", func(m map[string]any) { m["role"] = RoleShadow })
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.3.0", nil)
	r.Scan()
	set := r.Acquire()
	if sh := set.Shadows("cutoff_risk"); set.Model("cutoff_risk").Version() != "1.3.0" || len(sh) != 1 || sh[0].Version() != "1.9.0" {
		t.Errorf("live %v, shadows %v; want 1.3.0 live and 1.9.0 in shadow", set.Model("cutoff_risk").Version(), sh)
	}
	set.Release()

	if err := r.Activate("cutoff_risk", riskShipped); err != nil {
		t.Fatal(err)
	}
	if got := live(r, "cutoff_risk"); got != riskShipped {
		t.Errorf("after activate %s (rollback), serving %s", riskShipped, got)
	}
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.4.0", nil)
	r.Scan()
	if got := live(r, "cutoff_risk"); got != riskShipped {
		t.Errorf("a pinned model moved to %s when 1.4.0 was dropped", got)
	}
	if err := r.Activate("cutoff_risk", "9.9.9"); err == nil {
		t.Error("activating a missing version succeeded")
	}
	if err := r.Activate("cutoff_risk", ""); err != nil {
		t.Fatal(err)
	}
	if got := live(r, "cutoff_risk"); got != "1.4.0" {
		t.Errorf("after unpinning, serving %s, want the greatest 1.4.0", got)
	}
}

// TestRegistrySwapUnderLoad: batches score continuously while versions swap;
// none fails and each batch scores on one version from start to end.
func TestRegistrySwapUnderLoad(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	var stop atomic.Bool
	var batches, failures atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows := make([]float32, 16*features.NumFeatures)
			out := make([]float32, 16)
			for !stop.Load() {
				set := r.Acquire()
				m := set.Model("cutoff_risk")
				v := m.Version()
				for range 3 {
					if err := m.Score(rows, out); err != nil {
						failures.Add(1)
					}
				}
				if m.Version() != v {
					failures.Add(1)
				}
				set.Release()
				batches.Add(1)
			}
		}()
	}
	for i := range 10 {
		copyVersion(t, dir, "cutoff_risk", riskShipped, "1.1."+string(rune('0'+i)), nil)
		r.Scan()
		time.Sleep(5 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 || batches.Load() == 0 {
		t.Errorf("%d failures in %d batches during 10 swaps", failures.Load(), batches.Load())
	}
	if got := live(r, "cutoff_risk"); got != "1.1.9" {
		t.Errorf("serving %s after the swaps, want 1.1.9", got)
	}
}

// statusVersions returns the versions Status lists for name, by state.
func statusVersions(r *Registry, name string) map[string]string {
	out := map[string]string{}
	for _, m := range r.Status().([]ModelStatus) {
		if m.Name != name {
			continue
		}
		for _, v := range m.Versions {
			out[v.Version] = v.State
		}
	}
	return out
}

// TestRegistryForgetsRemovedVersions (issue 21): a version directory deleted
// from the models dir leaves the list at the next scan, instead of staying
// listed as standby forever.
func TestRegistryForgetsRemovedVersions(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.3.0", nil)
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.2.0", func(m map[string]any) { m["sha256"] = "0000" })
	r.Scan()
	if got := statusVersions(r, "cutoff_risk"); got["1.3.0"] != "serving" || got["1.2.0"] != "rejected" {
		t.Fatalf("versions %v, want 1.3.0 serving and 1.2.0 rejected", got)
	}
	for _, v := range []string{"1.3.0", "1.2.0"} {
		if err := os.RemoveAll(filepath.Join(dir, "cutoff_risk", v)); err != nil {
			t.Fatal(err)
		}
	}
	r.Scan()
	got := statusVersions(r, "cutoff_risk")
	if _, ok := got["1.3.0"]; ok {
		t.Errorf("deleted 1.3.0 still listed as %s: %v", got["1.3.0"], got)
	}
	if _, ok := got["1.2.0"]; ok {
		t.Errorf("deleted 1.2.0 still listed as %s: %v", got["1.2.0"], got)
	}
	if got[riskShipped] != "serving" || live(r, "cutoff_risk") != riskShipped {
		t.Errorf("versions %v, want %s serving again", got, riskShipped)
	}
}

// shadowVersions returns the versions of the shadows of name serving now.
func shadowVersions(r *Registry, name string) []string {
	set := r.Acquire()
	defer set.Release()
	var out []string
	for _, m := range set.Shadows(name) {
		out = append(out, m.Version())
	}
	return out
}

// TestRegistryServesSeveralShadows (issue 21): every valid shadow version
// serves, up to MaxShadows, the greatest first, each named by its version; a
// new one does not displace the others, one past the limit is listed as
// standby with a note, and takes the place of one that is deleted.
func TestRegistryServesSeveralShadows(t *testing.T) {
	r, dir, reg := newTestRegistry(t)
	shadow := func(m map[string]any) { m["role"] = RoleShadow }
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.1.0", shadow)
	r.Scan()
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.2.0", shadow)
	r.Scan()
	if got := shadowVersions(r, "cutoff_risk"); !slices.Equal(got, []string{"1.2.0", "1.1.0"}) {
		t.Fatalf("shadows %v, want 1.2.0 and 1.1.0 side by side", got)
	}
	if got := live(r, "cutoff_risk"); got != riskShipped {
		t.Errorf("live %s, want %s: a shadow never goes live", got, riskShipped)
	}
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.3.0", shadow)
	copyVersion(t, dir, "cutoff_risk", riskShipped, "1.4.0", shadow)
	r.Scan()
	if got := shadowVersions(r, "cutoff_risk"); !slices.Equal(got, []string{"1.4.0", "1.3.0", "1.2.0"}) {
		t.Fatalf("shadows %v, want the greatest %d: 1.4.0 1.3.0 1.2.0", got, MaxShadows)
	}
	var st ModelStatus
	for _, m := range r.Status().([]ModelStatus) {
		if m.Name == "cutoff_risk" {
			st = m
		}
	}
	if st.Shadow == nil || st.Shadow.Version != "1.4.0" || len(st.Shadows) != 3 {
		t.Errorf("status shadow %+v, shadows %+v; want 1.4.0 first of 3", st.Shadow, st.Shadows)
	}
	for _, v := range st.Versions {
		want := map[string]string{riskShipped: "serving", "1.1.0": "standby", "1.2.0": "shadow", "1.3.0": "shadow", "1.4.0": "shadow"}[v.Version]
		if v.State != want {
			t.Errorf("version %s is %s, want %s", v.Version, v.State, want)
		}
		if v.Version == "1.1.0" && !strings.Contains(v.Note, "shadow") {
			t.Errorf("1.1.0 standby without a note saying why: %+v", v)
		}
	}
	if got := testutil.CollectAndCount(reg, "orderwatch_model_info"); got != 2+3 {
		t.Errorf("orderwatch_model_info has %d series, want 5 (2 live, 3 shadows)", got)
	}
	if err := os.RemoveAll(filepath.Join(dir, "cutoff_risk", "1.3.0")); err != nil {
		t.Fatal(err)
	}
	r.Scan()
	if got := shadowVersions(r, "cutoff_risk"); !slices.Equal(got, []string{"1.4.0", "1.2.0", "1.1.0"}) {
		t.Errorf("after deleting 1.3.0, shadows %v, want 1.4.0 1.2.0 1.1.0", got)
	}
}
