package models

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/features"
)

func TestLoadBundleShipped(t *testing.T) {
	b, err := LoadBundle(seeded(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "cutoff_risk" || b.Version != riskShipped || b.Role != RoleActive {
		t.Errorf("bundle %s %s role %s, want cutoff_risk %s active", b.Name, b.Version, b.Role, riskShipped)
	}
	if b.FeatureSpecVersion != features.SpecVersion {
		t.Errorf("feature_spec_version %q, running spec %q", b.FeatureSpecVersion, features.SpecVersion)
	}
	if got := b.Inputs[0].Features; strings.Join(got, ",") != strings.Join(features.Names[:], ",") {
		t.Errorf("input features %v, want features.Names %v", got, features.Names)
	}
	if b.Thresholds[ThresholdAct] != 0.7 {
		t.Errorf("act threshold %v, want 0.7", b.Thresholds[ThresholdAct])
	}
}

// editBundle rewrites dir's bundle.json after edit has changed its JSON object.
func editBundle(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	name := filepath.Join(dir, BundleFile)
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func input(m map[string]any) map[string]any {
	return m["inputs"].([]any)[0].(map[string]any)
}

func TestLoadBundleInvalid(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		want    error
		mention string
	}{
		{name: "corrupted model.onnx", want: ErrChecksum, mention: "bundle.json says",
			mutate: func(t *testing.T, dir string) {
				f, err := os.OpenFile(filepath.Join(dir, ModelFile), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write([]byte{0})
				f.Close()
			}},
		{name: "missing model.onnx", want: ErrInvalidBundle, mention: ModelFile,
			mutate: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ModelFile)) }},
		{name: "missing bundle.json", want: ErrInvalidBundle, mention: BundleFile,
			mutate: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, BundleFile)) }},
		{name: "not json", want: ErrInvalidBundle, mention: BundleFile,
			mutate: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, BundleFile), []byte("{\"name\":"), 0o644)
			}},
		{name: "unknown field", want: ErrInvalidBundle, mention: "treshold",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["treshold"] = 0.5 })
			}},
		{name: "version differs from directory", want: ErrInvalidBundle, mention: "directory name",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["version"] = "0.3.0" })
			}},
		{name: "name differs from directory", want: ErrInvalidBundle, mention: "parent directory",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["name"] = "exception_class" })
			}},
		{name: "version not semantic", want: ErrInvalidBundle, mention: "semantic version",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["version"] = "latest" })
			}},
		{name: "unknown role", want: ErrInvalidBundle, mention: "canary",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["role"] = "canary" })
			}},
		{name: "no act threshold", want: ErrInvalidBundle, mention: "thresholds.act",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["thresholds"] = map[string]any{} })
			}},
		{name: "threshold out of range", want: ErrInvalidBundle, mention: "[0, 1]",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["thresholds"] = map[string]any{"act": 7} })
			}},
		{name: "features do not fit the shape", want: ErrInvalidBundle, mention: "33 features",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) {
					in := input(m)
					in["features"] = in["features"].([]any)[1:]
				})
			}},
		{name: "fixed batch dimension", want: ErrInvalidBundle, mention: "batch",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { input(m)["shape"] = []int{1, 34} })
			}},
		{name: "no golden rows", want: ErrInvalidBundle, mention: "golden",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { delete(m, "golden") })
			}},
		{name: "golden row too short", want: ErrInvalidBundle, mention: "golden[0]",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) {
					g := m["golden"].([]any)[0].(map[string]any)
					g["input"] = g["input"].([]any)[:3]
				})
			}},
		{name: "sha256 not hex", want: ErrInvalidBundle, mention: "sha256",
			mutate: func(t *testing.T, dir string) {
				editBundle(t, dir, func(m map[string]any) { m["sha256"] = "md5:abc" })
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := seeded(t)
			tt.mutate(t, dir)
			b, err := LoadBundle(dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("LoadBundle() = %v, %v; want %v", b, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not mention %q and the directory", err, tt.mention)
			}
		})
	}
}
