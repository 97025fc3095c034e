package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

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
// JSON with --json. It needs no running instance, token or NATS; only ONNX
// Runtime. The error is non-nil when the bundle would not serve.
func modelsCheckCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("models check", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(flagsFirst(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: orderwatch models check DIR [--json]: DIR is a bundle directory <name>/<version>")
	}
	if err := models.InitRuntime(""); err != nil {
		return fmt.Errorf("models check: %w", err)
	}
	rep := models.Check(fs.Arg(0), openOptions())
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("models check: %w", err)
		}
	} else {
		writeCheckReport(stdout, rep)
	}
	if !rep.Valid {
		return fmt.Errorf("%w: %s (%s)", errCheckFailed, rep.Reason, fs.Arg(0))
	}
	return nil
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
