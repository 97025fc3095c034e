package models

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The trainer's tests run models/train/train.py with Debian's Python, as `make
// models` does, against a binary built from this checkout.
const python = "/usr/bin/python3"

// trainer returns the repository root and the path of a freshly built
// bin/orderwatch, or skips (fails in CI) when the trainer's Python packages are
// missing.
func trainer(t *testing.T) (root, bin string) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import sklearn, onnx, numpy, scipy").CombinedOutput(); err != nil {
		how := python + " lacks sklearn, onnx, numpy or scipy: `make test` installs Debian's python3-sklearn " +
			"python3-onnx python3-numpy as root (make python-ml): " + strings.TrimSpace(string(out))
		if os.Getenv("CI") != "" {
			t.Fatal("trainer tests: " + how)
		}
		t.Skip("trainer tests skipped: " + how)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "orderwatch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/orderwatch")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/orderwatch: %v\n%s", err, out)
	}
	return root, bin
}

// run runs a command from the repository root (where the binary finds ONNX
// Runtime as a checkout does, or by $ONNXRUNTIME_LIB) and returns its exit code
// and combined output. The command is killed a minute before the test's
// deadline, so that a slow run fails the test rather than outlive it.
func run(t *testing.T, root string, name string, args ...string) (int, string) {
	t.Helper()
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-time.Minute))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
		return 0, ""
	}
}

// TestTrainOnOwnHistory walks the README's "Train on your own history": a
// replay exported without --labels (labels derived from the events) goes through
// `train.py --rows` to bundles that `models check` passes and `replay --models`
// scores with; files the trainer cannot make a card of are refused with exit 2.
func TestTrainOnOwnHistory(t *testing.T) {
	root, bin := trainer(t)
	tmp := t.TempDir()
	stream, rows := filepath.Join(tmp, "s.ndjson"), filepath.Join(tmp, "rows.csv")
	if code, out := run(t, root, bin, "simulate", "--orders", "1500", "--seed", "41", "--scenario",
		"warehouse-outage", "--start", "2026-05-20T00:00:00Z", "--out", stream); code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, out)
	}
	if code, out := run(t, root, bin, "replay", "--in", stream, "--export", rows); code != 0 ||
		!strings.Contains(out, "labels from the events") {
		t.Fatalf("replay --export without --labels: exit %d\n%s", code, out)
	}

	dir := filepath.Join(tmp, "models")
	code, out := run(t, root, python, "models/train/train.py", "--rows", rows, "--out", dir, "--version", "1.1.0")
	if code != 0 {
		t.Fatalf("train.py --rows: exit %d\n%s", code, out)
	}
	for _, want := range []string{"split at 2026-", "orders first seen before it train", "| cutoff_risk 1.1.0 | model | rules fallback |",
		"| ROC-AUC |", "| PR-AUC (average precision) |", "| Brier score (lower is better) |", "| exception_class 1.1.0 | model | keyword baseline |"} {
		if !strings.Contains(out, want) {
			t.Errorf("train.py --rows printed no %q:\n%s", want, out)
		}
	}
	var b struct {
		Metrics map[string]any `json:"metrics"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cutoff_risk", "1.1.0", "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"split_time", "roc_auc", "pr_auc", "brier", "rules_fallback_pr_auc", "misses_flagged_2h_early"} {
		if _, ok := b.Metrics[k]; !ok {
			t.Errorf("cutoff_risk 1.1.0 bundle.json metrics lack %q: %v", k, b.Metrics)
		}
	}

	for _, name := range []string{"cutoff_risk", "exception_class"} {
		if code, out := run(t, root, bin, "models", "check", filepath.Join(dir, name, "1.1.0")); code != 0 ||
			!strings.Contains(out, "valid: the bundle would serve") {
			t.Errorf("models check %s 1.1.0: exit %d\n%s", name, code, out)
		}
	}
	code, out = run(t, root, bin, "replay", "--in", stream, "--models", dir, "--export", filepath.Join(tmp, "scored.csv"))
	if code != 0 || !strings.Contains(out, "cutoff_risk 1.1.0 scores (from "+dir+")") ||
		!strings.Contains(out, "exception_class 1.1.0 scores (from "+dir+")") {
		t.Errorf("replay --models with the trained bundles: exit %d\n%s", code, out)
	}

	// Refusals: too few labelled orders, and no order that missed.
	recs := readCSV(t, rows)
	few, inTime := filepath.Join(tmp, "few.csv"), filepath.Join(tmp, "in-time.csv")
	var head [][]string
	seen := map[string]bool{}
	for _, r := range recs {
		if !seen[r[0]] && len(seen) == 100 {
			break
		}
		seen[r[0]] = true
		head = append(head, r)
	}
	writeCSV(t, few, head)
	for _, r := range recs[1:] {
		if r[len(r)-3] != "" {
			r[len(r)-3], r[len(r)-2] = "0", "0"
		}
	}
	writeCSV(t, inTime, recs)
	for _, c := range []struct{ file, want string }{
		{few, "orders with a label, at least 500 are needed"},
		{inTime, "orders are all in time"},
	} {
		code, out := run(t, root, python, "models/train/train.py", "--rows", c.file, "--out", filepath.Join(tmp, "refused"))
		if code != 2 || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("train.py --rows %s: exit %d, want 2 and one line saying %q:\n%s", filepath.Base(c.file), code, c.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "refused")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused training wrote %s (err %v)", filepath.Join(tmp, "refused"), err)
	}
}

// TestShippedModelsAreReproducible runs the whole recipe of `make models` into
// temporary directories and compares every file with models/shipped byte for
// byte: the shipped bundles are what training produced, nothing edited by hand.
// It takes minutes, so `go test -short` skips it; `make test` runs it.
func TestShippedModelsAreReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("the full training recipe takes minutes: skipped under -short (make test runs it)")
	}
	// About 8 minutes of a busy 2-core machine: go test's default 10-minute
	// timeout is too tight, make test gives 25.
	if d, ok := t.Deadline(); ok && time.Until(d) < 15*time.Minute {
		const how = "the full training recipe needs go test -timeout 25m (as make test runs it), or -short to skip it"
		if os.Getenv("CI") != "" {
			t.Fatal(how)
		}
		t.Skip(how)
	}
	root, bin := trainer(t)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "shipped")
	code, printed := run(t, root, python, "models/train/train.py", "--bin", bin, "--work", filepath.Join(tmp, "work"), "--out", out)
	if code != 0 {
		t.Fatalf("models/train/train.py: exit %d\n%s", code, printed)
	}
	shipped := filepath.Join(root, "models", "shipped")
	files := map[string]bool{}
	for _, tree := range []string{shipped, out} {
		err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(tree, p)
			files[rel] = true
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for rel := range files {
		want, errW := os.ReadFile(filepath.Join(shipped, rel))
		got, errG := os.ReadFile(filepath.Join(out, rel))
		switch {
		case errW != nil:
			t.Errorf("models/shipped/%s is missing, the recipe writes it: run make models and commit", rel)
		case errG != nil:
			t.Errorf("models/shipped/%s is not written by the recipe: remove it, run make models and commit", rel)
		case !bytes.Equal(got, want):
			t.Errorf("models/shipped/%s differs from what the recipe writes: run make models and commit", rel)
		}
	}
	if t.Failed() {
		t.Logf("the recipe printed:\n%s", printed)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func writeCSV(t *testing.T, path string, recs [][]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestShippedCutoffRiskIsWhatTrainingProduced: the shipped cutoff_risk was trained
// on warehouse outages and held out a run of every scenario, and its graph is the
// trees and the sigmoid alone: no hand-made outage step ("usable minutes" fed to
// the trees instead of minutes_to_cutoff) and no figures of a model without it.
func TestShippedCutoffRiskIsWhatTrainingProduced(t *testing.T) {
	dir := filepath.Join("shipped", "cutoff_risk", riskShipped)
	var b struct {
		Metrics map[string]any `json:"metrics"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	trained, _ := b.Metrics["trained_on"].(string)
	held, _ := b.Metrics["evaluated_on"].(string)
	if !strings.Contains(trained, "warehouse-outage") {
		t.Errorf("cutoff_risk %s was not trained on warehouse outages: trained_on %q", riskShipped, trained)
	}
	for _, sc := range []string{"normal", "peak", "carrier-disruption", "warehouse-outage"} {
		if !strings.Contains(held, sc+" seed") {
			t.Errorf("cutoff_risk %s holds out no %s run: evaluated_on %q", riskShipped, sc, held)
		}
	}
	for k := range b.Metrics {
		if strings.Contains(k, "outage_assumption") {
			t.Errorf("cutoff_risk %s metrics still report %s", riskShipped, k)
		}
	}
	model, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"tree_input", "outage_minutes", "stalled"} {
		if bytes.Contains(model, []byte(step)) {
			t.Errorf("cutoff_risk %s model.onnx still holds the hand-made outage step (%q)", riskShipped, step)
		}
	}
}
