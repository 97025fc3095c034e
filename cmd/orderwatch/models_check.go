package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
)

// openOptions are the running program's side of the bundle contract: the
// feature spec, its bounds (the sweep) and the tokenizer loader.
func openOptions() models.OpenOptions {
	bounds := make([]models.Bound, len(features.Bounds))
	for i, b := range features.Bounds {
		bounds[i] = models.Bound(b)
	}
	return models.OpenOptions{
		SpecVersion: features.SpecVersion, FeatureNames: features.Names[:], FeatureBounds: bounds,
		LoadTokenizer: func(path string) (models.Tokenizer, error) { return features.LoadTokenizer(path) },
	}
}

// errCheckFailed is returned by `models check` for a bundle that would not
// serve, after the report is printed.
var errCheckFailed = errors.New("models check: the bundle would not serve")

// modelsCheckCmd checks a bundle directory offline, exactly as the registry
// does before a version serves (models.Check), and prints the report: text, or
// JSON with --json. DIR may also be a models dir (<name>/<version>/ inside, as
// the trainer writes it): then every bundle in it is checked, and the JSON is a
// list. It needs no running instance, token or NATS; only ONNX Runtime. The
// error is non-nil when a bundle would not serve.
func modelsCheckCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("models check", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(flagsFirst(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: orderwatch models check DIR [--json]: DIR is a bundle directory <name>/<version>, or a models dir holding them")
	}
	dir := fs.Arg(0)
	bundles, err := bundleDirs(dir)
	if err != nil {
		return fmt.Errorf("models check: %w", err)
	}
	if err := models.InitRuntime(""); err != nil {
		return fmt.Errorf("models check: %w", err)
	}
	var reps []*models.Report
	for _, b := range bundles {
		reps = append(reps, models.Check(b, openOptions()))
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		var v any = reps
		if bundles[0] == dir {
			v = reps[0]
		}
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("models check: %w", err)
		}
	} else {
		for i, rep := range reps {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			writeCheckReport(stdout, rep)
		}
	}
	var bad []string
	var first *models.Report
	for _, rep := range reps {
		if !rep.Valid {
			bad = append(bad, fmt.Sprintf("%s %s: %s", rep.Name, rep.Version, rep.Reason))
			if first == nil {
				first = rep
			}
		}
	}
	if bundles[0] != dir && !*asJSON {
		line := fmt.Sprintf("\n%d bundles: %d would serve", len(reps), len(reps)-len(bad))
		if len(bad) > 0 {
			line += fmt.Sprintf(", %d would not (%s)", len(bad), strings.Join(bad, "; "))
		}
		fmt.Fprintln(stdout, line)
	}
	if first != nil {
		return fmt.Errorf("%w: %s (%s)", errCheckFailed, first.Reason, first.Dir)
	}
	return nil
}

// bundleDirs returns dir when it is a bundle (it holds bundle.json, or nothing
// that looks like a models dir: Check then says what is missing), else the
// bundle directories <name>/<version> of the models dir dir, in name and
// version order.
func bundleDirs(dir string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err == nil {
		return []string{dir}, nil
	}
	found, err := filepath.Glob(filepath.Join(dir, "*", "*", "bundle.json"))
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return []string{dir}, nil
	}
	if len(found) > 1000 {
		return nil, fmt.Errorf("%s holds %d bundles: check at most 1000 at once, or name one bundle directory", dir, len(found))
	}
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = filepath.Dir(f)
	}
	sort.Strings(out)
	return out, nil
}

// writeCheckReport prints rep for people: one line per check, then the verdict.
func writeCheckReport(w io.Writer, rep *models.Report) {
	if rep.Name != "" {
		fmt.Fprintf(w, "%s %s in %s\n", rep.Name, rep.Version, rep.Dir)
	} else {
		fmt.Fprintf(w, "bundle in %s\n", rep.Dir)
	}
	for _, c := range rep.Checks {
		line := fmt.Sprintf("  %-7s  %-9s  %s", c.Status, c.Name, c.Detail)
		if c.Reason != "" {
			line = fmt.Sprintf("  %-7s  %-9s  %s: %s", c.Status, c.Name, c.Reason, c.Detail)
		}
		fmt.Fprintln(w, line)
	}
	if rep.Valid {
		fmt.Fprintf(w, "valid: the bundle would serve (golden error at most %.3g, %.1f µs/row at batch 1, %.2f µs/row at batch %d)\n",
			rep.GoldenMaxError, rep.LatencyBatch1, rep.LatencyBatchFull, rep.FullBatch)
		return
	}
	fmt.Fprintf(w, "invalid: %s: the bundle would not serve\n", rep.Reason)
}
