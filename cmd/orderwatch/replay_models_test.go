package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/models"
)

// tree lists every file under dir with its size and mode, to see that nothing
// was written there.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %s", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			fmt.Fprintf(&b, " %d %s", fi.Size(), fi.ModTime())
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReplayModelsDirIsReadOnlyAndHonest: replay --models DIR scores with DIR's
// versions and says which, takes a model DIR lacks from the shipped bundles
// without writing into DIR, and fails, naming the version and the reason,
// when DIR holds a version the registry refuses, instead of scoring quietly
// with an older one.
func TestReplayModelsDirIsReadOnlyAndHonest(t *testing.T) {
	work := t.TempDir()
	simulateFiles(t, work, "--orders", "30", "--warmup", "0s")
	events := filepath.Join(work, "events.ndjson")
	run := func(dir string) (string, error) {
		var stderr bytes.Buffer
		err := replay(context.Background(), replayConfig{In: events, Models: dir, Export: filepath.Join(work, "rows.csv"), BatchSize: 256}, &stderr)
		return stderr.String(), err
	}

	// Only cutoff_risk in DIR: it scores from DIR, exception_class is the
	// shipped one, and DIR is left as it was.
	dir := t.TempDir()
	seed := t.TempDir()
	if err := models.SeedDir(seed); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "cutoff_risk"), os.DirFS(filepath.Join(seed, "cutoff_risk"))); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	out, err := run(dir)
	if err != nil {
		t.Fatalf("replay with a valid models dir: %v\n%s", err, out)
	}
	if !strings.Contains(out, "cutoff_risk 1.0.0 scores (from "+dir+")") || !strings.Contains(out, "exception_class 1.0.0 scores (from shipped)") {
		t.Errorf("replay output does not say which versions scored:\n%s", out)
	}
	if after := tree(t, dir); after != before {
		t.Errorf("replay wrote into --models DIR:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A newer version that is refused: the replay fails and says why.
	bad := filepath.Join(dir, "cutoff_risk", "1.1.0")
	if err := os.CopyFS(bad, os.DirFS(filepath.Join(seed, "cutoff_risk", "1.0.0"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "model.onnx"), []byte("not an onnx graph"), 0o644); err != nil {
		t.Fatal(err)
	}
	before = tree(t, dir)
	out, err = run(dir)
	if err == nil || !strings.Contains(err.Error(), "cutoff_risk 1.1.0") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("replay with a refused version = %v, want an error naming cutoff_risk 1.1.0\n%s", err, out)
	}
	if strings.Contains(out, "lines") {
		t.Errorf("replay went on with a refused version:\n%s", out)
	}
	if after := tree(t, dir); after != before {
		t.Errorf("replay wrote into --models DIR:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
