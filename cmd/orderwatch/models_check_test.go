package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/models"
)

// TestModelsCheck (issue 21, findings 1 and 2): `orderwatch models check DIR`
// works offline (no instance, token or NATS): it accepts every shipped bundle
// with exit status 0, and refuses a bundle whose golden rows reproduce but
// whose output is NaN for orders past their cutoff, with the reason code in
// the text and in --json.
func TestModelsCheck(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "")
	shipped, err := filepath.Glob(filepath.Join("..", "..", "models", "shipped", "*", "*"))
	if err != nil || len(shipped) < 2 {
		t.Fatalf("shipped bundles %v: %v", shipped, err)
	}
	for _, dir := range shipped {
		var out bytes.Buffer
		if err := modelsCmd([]string{"check", dir}, &out); err != nil {
			t.Errorf("models check %s: %v\n%s", dir, err, out.String())
		}
		if !strings.Contains(out.String(), "valid: the bundle would serve") || !strings.Contains(out.String(), "µs/row at batch 1024") {
			t.Errorf("models check %s printed:\n%s", dir, out.String())
		}
	}

	bad := filepath.Join("..", "..", "models", "testdata", "bad", "sweep_nan", "cutoff_risk", "1.1.0")
	var out bytes.Buffer
	err = modelsCmd([]string{"check", bad}, &out)
	if !errors.Is(err, errCheckFailed) {
		t.Errorf("models check of the NaN bundle: err %v, want errCheckFailed", err)
	}
	if !strings.Contains(out.String(), "failed   sweep      sweep_non_finite") || !strings.Contains(out.String(), "invalid: sweep_non_finite") {
		t.Errorf("models check of the NaN bundle printed:\n%s", out.String())
	}
	out.Reset()
	err = modelsCmd([]string{"check", "--json", bad}, &out)
	var rep models.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil || err == nil || rep.Valid || rep.Reason != models.RejectSweepNonFinite {
		t.Errorf("models check --json: err %v, decode %v, report %+v", err, jerr, rep)
	}
}

// TestRegistrySweepsWithTheSpecBounds: the registry orderwatch runs sweeps
// with the feature spec's bounds, so a version that is NaN past the cutoff
// (its golden rows are all before it) does not serve.
func TestRegistrySweepsWithTheSpecBounds(t *testing.T) {
	dir := t.TempDir()
	dropBadModel(t, dir, "sweep_nan", models.RoleActive)
	reg := prometheus.NewRegistry()
	r, err := newRegistry(dir, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	set := r.Acquire()
	defer set.Release()
	if m := set.Model(modelRisk); m == nil || m.Version() == "1.1.0" {
		t.Errorf("serving cutoff_risk %v, want the shipped version", m != nil && m.Version() == "1.1.0")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	for _, mf := range mfs {
		if mf.GetName() != "orderwatch_model_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["model"] == modelRisk && labels["reason"] == models.RejectSweepNonFinite {
				got = m.GetCounter().GetValue()
			}
		}
	}
	if got != 1 {
		t.Errorf("orderwatch_model_rejections_total{model=cutoff_risk,reason=sweep_non_finite} = %v, want 1", got)
	}
}

// TestValidateAnswersTheReport (issue 21, finding 2) on a running instance:
// POST /api/v1/models/validate answers the report of models check, "valid" and
// the reason code included, and `orderwatch models validate` shows it.
func TestValidateAnswersTheReport(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "validate-token")
	data := t.TempDir()
	base := startRunWith(t, "--data", data, "--nats-listen", freeAddr(t))
	bad := t.TempDir()
	dropBadModel(t, bad, "sweep_nan", models.RoleActive)
	dir := filepath.Join(bad, modelRisk, "1.1.0")

	var out bytes.Buffer
	err := modelsCmd([]string{"validate", dir, "--api", base}, &out)
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), `"reason": "sweep_non_finite"`) || !strings.Contains(err.Error(), `"valid": false`) {
		t.Errorf("models validate of the NaN bundle: %v", err)
	}
	out.Reset()
	good := filepath.Join(data, "models", modelRisk, "1.0.0")
	if err := modelsCmd([]string{"validate", good, "--api", base}, &out); err != nil {
		t.Fatalf("models validate of the shipped bundle: %v", err)
	}
	var rep models.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || !rep.Valid || rep.SweepRows == 0 || rep.FullBatch != models.ValidationRows || len(rep.Checks) == 0 {
		t.Errorf("validate answered %s (%v), want the report of a valid bundle", out.String(), err)
	}
}

// TestModelsCheckAModelsDir: `models check` of a models dir (what the trainer
// writes: <name>/<version>/ inside) checks every bundle in it, says which would
// serve, and fails naming the one that would not. It was read as one bundle
// and refused with "open DIR/bundle.json: no such file or directory".
func TestModelsCheckAModelsDir(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "")
	dir := t.TempDir()
	for _, name := range []string{"cutoff_risk", "exception_class"} {
		copyDir(t, filepath.Join("..", "..", "models", "shipped", name, "1.0.0"), filepath.Join(dir, name, "1.0.0"))
	}
	var out bytes.Buffer
	if err := modelsCmd([]string{"check", dir}, &out); err != nil {
		t.Fatalf("models check of a models dir: %v\n%s", err, out.String())
	}
	for _, want := range []string{"cutoff_risk 1.0.0 in ", "exception_class 1.0.0 in ", "2 bundles: 2 would serve"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("models check %s printed:\n%s\nwant %q", dir, out.String(), want)
		}
	}
	copyDir(t, filepath.Join("..", "..", "models", "testdata", "bad", "sweep_nan", "cutoff_risk", "1.1.0"), filepath.Join(dir, "cutoff_risk", "1.1.0"))
	out.Reset()
	err := modelsCmd([]string{"check", dir}, &out)
	if !errors.Is(err, errCheckFailed) || !strings.Contains(err.Error(), filepath.Join("cutoff_risk", "1.1.0")) {
		t.Errorf("models check with a NaN bundle: err %v, want errCheckFailed naming cutoff_risk/1.1.0", err)
	}
	if !strings.Contains(out.String(), "3 bundles: 2 would serve, 1 would not (cutoff_risk 1.1.0: sweep_non_finite)") {
		t.Errorf("models check printed:\n%s", out.String())
	}
	out.Reset()
	_ = modelsCmd([]string{"check", "--json", dir}, &out)
	var reps []models.Report
	if err := json.Unmarshal(out.Bytes(), &reps); err != nil || len(reps) != 3 {
		t.Errorf("models check --json of a models dir: %v, %d reports, want 3:\n%s", err, len(reps), out.String())
	}
}

// copyDir copies the directory from to to (which must not exist).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}
