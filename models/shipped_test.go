package models

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeded seeds a fresh models dir with the shipped bundles and returns the
// directory of the shipped cutoff_risk bundle in it.
func seeded(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	active, err := Active(dir, "cutoff_risk")
	if err != nil {
		t.Fatal(err)
	}
	return active
}

func TestSeedDir(t *testing.T) {
	dst := t.TempDir()
	if err := SeedDir(dst); err != nil {
		t.Fatal(err)
	}
	var files int
	err := fs.WalkDir(shipped, "shipped", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		want, err := fs.ReadFile(shipped, p)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(p, "shipped/"))))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: seeded copy differs from the shipped file", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 {
		t.Fatalf("%d shipped files, want at least model.onnx and bundle.json", files)
	}

	// A second seed leaves existing versions alone, even edited or incomplete ones.
	bundle := filepath.Join(dst, "cutoff_risk", riskShipped, BundleFile)
	model := filepath.Join(dst, "cutoff_risk", riskShipped, ModelFile)
	if err := os.WriteFile(bundle, []byte("edited by a data scientist"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(model); err != nil {
		t.Fatal(err)
	}
	if err := SeedDir(dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(bundle); string(got) != "edited by a data scientist" {
		t.Errorf("SeedDir overwrote an existing bundle.json: %q", got)
	}
	if _, err := os.Stat(model); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SeedDir wrote into an existing version directory: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dst, "*", ".seed-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}

func TestActive(t *testing.T) {
	tests := []struct {
		name  string
		dirs  []string // version directories with a bundle.json
		other []string // directories without one
		files []string
		want  string // "" means ErrNoVersion
	}{
		{name: "numeric order, not string order", dirs: []string{"0.9.0", "0.10.0", "0.2.0"}, want: "0.10.0"},
		{name: "release after its pre-releases", dirs: []string{"1.0.0", "1.0.0-rc.2", "0.9.9"}, want: "1.0.0"},
		{name: "pre-release of a greater version", dirs: []string{"1.0.0-rc.1", "0.9.0"}, want: "1.0.0-rc.1"},
		{name: "not versions are ignored", dirs: []string{"0.1.0", "latest", ".seed-9.0.0-123", "v2.0.0"}, want: "0.1.0"},
		{name: "directory without bundle.json is ignored", dirs: []string{"0.1.0"}, other: []string{"0.2.0"}, want: "0.1.0"},
		{name: "files are ignored", dirs: []string{"0.1.0"}, files: []string{"9.0.0"}, want: "0.1.0"},
		{name: "no version", other: []string{"0.2.0"}, files: []string{"1.0.0"}},
		{name: "no model directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, v := range tt.dirs {
				mkfile(t, filepath.Join(dir, "cutoff_risk", v, BundleFile))
			}
			for _, v := range tt.other {
				if err := os.MkdirAll(filepath.Join(dir, "cutoff_risk", v), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				mkfile(t, filepath.Join(dir, "cutoff_risk", f))
			}
			got, err := Active(dir, "cutoff_risk")
			if tt.want == "" {
				if !errors.Is(err, ErrNoVersion) {
					t.Fatalf("Active() = %q, %v; want ErrNoVersion", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, "cutoff_risk", tt.want); got != want {
				t.Errorf("Active() = %s, want %s", got, want)
			}
		})
	}
}

func mkfile(t *testing.T, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
}
