package models

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/features"
)

// featureBounds are the running spec's bounds as OpenOptions takes them.
func featureBounds() []Bound {
	b := make([]Bound, len(features.Bounds))
	for i, fb := range features.Bounds {
		b[i] = Bound(fb)
	}
	return b
}

// checkOptions are the OpenOptions of the running program.
func checkOptions() OpenOptions {
	return OpenOptions{SpecVersion: features.SpecVersion, FeatureNames: features.Names[:], LoadTokenizer: tokenizerLoader, FeatureBounds: featureBounds()}
}

func checkStatus(rep *Report, name string) string {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return "<missing>"
}

// TestCheckRefusesSweepFailures (issue 21, finding 1): a bundle whose golden
// rows reproduce but whose output is NaN for an order past its cutoff, or 7 (not
// a probability), is refused by Check with the sweep's reason code; the golden
// check itself passes, so only the sweep finds it.
func TestCheckRefusesSweepFailures(t *testing.T) {
	initRuntime(t)
	for _, c := range []struct{ fixture, reason string }{
		{"sweep_nan", RejectSweepNonFinite},
		{"sweep_high", RejectSweepOutOfRange},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			rep := Check(filepath.Join("testdata", "bad", c.fixture, "cutoff_risk", "1.1.0"), checkOptions())
			if rep.Valid || rep.Reason != c.reason {
				t.Fatalf("Check: valid %v reason %q (%s), want invalid %q", rep.Valid, rep.Reason, rep.Error, c.reason)
			}
			if got := checkStatus(rep, CheckGolden); got != CheckOK {
				t.Errorf("golden check %s, want ok: the fixture's golden rows reproduce", got)
			}
			if got := checkStatus(rep, CheckSweep); got != CheckFailed {
				t.Errorf("sweep check %s, want failed", got)
			}
			if got := checkStatus(rep, CheckLatency); got != CheckSkipped {
				t.Errorf("latency check %s, want skipped", got)
			}
			if rep.SweepRows == 0 {
				t.Error("no sweep rows reported")
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Errorf("the report does not marshal: %v", err)
			}
		})
	}
}

// TestCheckAcceptsShippedBundles: every bundle shipped in the binary passes
// every check, and the report carries the figures.
func TestCheckAcceptsShippedBundles(t *testing.T) {
	initRuntime(t)
	dir := t.TempDir()
	if err := SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	bundles, err := filepath.Glob(filepath.Join(dir, "*", "*", BundleFile))
	if err != nil || len(bundles) < 2 {
		t.Fatalf("shipped bundles %v: %v", bundles, err)
	}
	for _, b := range bundles {
		rep := Check(filepath.Dir(b), checkOptions())
		if !rep.Valid {
			t.Errorf("%s: refused: %s: %s", b, rep.Reason, rep.Error)
			continue
		}
		for _, c := range rep.Checks {
			if c.Status != CheckOK {
				t.Errorf("%s: check %s is %s", b, c.Name, c.Status)
			}
		}
		if rep.SweepRows == 0 || rep.GoldenRows == 0 || rep.FullBatch != ValidationRows || !(rep.LatencyBatch1 > 0) || !(rep.LatencyBatchFull > 0) ||
			math.IsNaN(rep.GoldenMaxError) || rep.GoldenMaxError > GoldenTolerance {
			t.Errorf("%s: figures %+v", b, rep)
		}
	}
}

// TestRegistryRefusesSweepFailureOnSwap (issue 21, finding 1): a version that
// is NaN past the cutoff is not put in service; the rejection is counted with
// the sweep's reason and the shipped version keeps serving.
func TestRegistryRefusesSweepFailureOnSwap(t *testing.T) {
	r, dir, _ := newTestRegistry(t)
	dropFixture(t, dir, "sweep_nan", "1.1.0", RoleActive)
	r.Scan()
	if got := live(r, "cutoff_risk"); got != riskShipped {
		t.Fatalf("serving %s after the NaN version was dropped, want %s", got, riskShipped)
	}
	if got := testutil.ToFloat64(r.rejections.WithLabelValues("cutoff_risk", RejectSweepNonFinite)); got != 1 {
		t.Errorf("rejections{cutoff_risk,%s} = %v, want 1", RejectSweepNonFinite, got)
	}
	rep, valid := r.CheckBundle(filepath.Join(dir, "cutoff_risk", "1.1.0"))
	if valid || rep.(*Report).Reason != RejectSweepNonFinite {
		t.Errorf("CheckBundle: valid %v, report %+v", valid, rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "cutoff_risk", PinFile)); err == nil {
		t.Error("a PIN file appeared")
	}
}

// TestSweepTextsFillTheTokens: the sweep's full token row has no padding with
// the shipped tokenizer, and its empty one is all padding.
func TestSweepTextsFillTheTokens(t *testing.T) {
	tok, err := features.LoadTokenizer(filepath.Join("shipped", "exception_class", classShipped, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	full, empty := tok.Encode(sweepTexts(), nil), tok.Encode(nil, nil)
	for i := range full {
		if full[i] == features.PadID || empty[i] != features.PadID {
			t.Fatalf("token %d: full row %d, empty row %d", i, full[i], empty[i])
		}
	}
}

// TestCheckRefusesSlowOnlyAtAFullBatch (issue 21): a bundle that scores its
// golden rows alone in no time but runs for an hour on a batch of 1,024 rows
// (models/testdata/make_bad_fixtures.py slow_batch) is refused by Check for
// its latency, the run terminated at the bound, naming the full batch: a live
// pipeline scores batches of up to 1,024 rows.
func TestCheckRefusesSlowOnlyAtAFullBatch(t *testing.T) {
	initRuntime(t)
	o := checkOptions()
	o.MaxGoldenLatency = 500 * time.Millisecond
	rep := Check(filepath.Join("testdata", "bad", "slow_batch", "cutoff_risk", "1.1.0"), o)
	if rep.Valid || rep.Reason != RejectLatency {
		t.Fatalf("Check: valid %v reason %q (%s), want invalid %q", rep.Valid, rep.Reason, rep.Error, RejectLatency)
	}
	if !strings.Contains(rep.Error, "1024") || !strings.Contains(rep.Error, "terminated") {
		t.Errorf("error %q does not name the full batch and the terminated run", rep.Error)
	}
	if got := checkStatus(rep, CheckGolden); got != CheckFailed {
		t.Errorf("golden check %s, want failed (at the full batch)", got)
	}
}
