package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/process"
)

// exportedLabels reads a replay export: its header, and per order the label
// columns its rows carry (the same on every row of an order), "" for an order
// whose rows have none.
func exportedLabels(t *testing.T, path string) (head []string, rows int, labels map[string]string) {
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
	labels = map[string]string{}
	for _, r := range recs[1:] {
		l := strings.Join(r[len(r)-3:], ",")
		if l == ",," {
			l = ""
		}
		if prev, ok := labels[r[0]]; ok && prev != l {
			t.Fatalf("%s: rows of order %s have labels %q and %q", path, r[0], prev, l)
		}
		labels[r[0]] = l
	}
	return recs[0], len(recs) - 1, labels
}

// labelAgreement compares the labels derived from the events (replay --export
// without --labels) with the simulator's ground truth, order by order, over
// the orders whose outcome the stream shows. It fails on any order whose
// missed_cutoff differs, and returns the orders without an outcome and the
// class agreement.
func labelAgreement(t *testing.T, derived map[string]string, truth map[string]process.Label) (open []string, same, total int, confusion map[string]int) {
	t.Helper()
	confusion = map[string]int{}
	for id, d := range derived {
		if d == "" {
			open = append(open, id)
			continue
		}
		want, ok := truth[id]
		if !ok {
			t.Errorf("order %s has a derived label %q but none in the simulator's labels", id, d)
			continue
		}
		f := strings.Split(d, ",")
		if missed := f[0] == "1"; missed != want.MissedCutoff {
			t.Errorf("order %s: derived missed_cutoff %s, the simulator's %v (%+v)", id, f[0], want.MissedCutoff, want)
		}
		total++
		if f[2] == want.ExceptionClass {
			same++
		} else {
			confusion[want.ExceptionClass+"→"+f[2]]++
		}
	}
	slices.Sort(open)
	return open, same, total, confusion
}

// TestReplayDerivesLabelsFromEvents: without --labels, replay --export labels
// each row with the outcome its order's events show at the stream's end, in
// the columns --labels gives them. On a simulated stream, missed_cutoff agrees
// with the simulator's ground truth for every order; the exception class
// agrees where the class shows in the events (the figure is logged). A stream
// cut short leaves the orders still open at its end without a label, and the
// summary says how many. With --labels, the file's labels are used and the
// summary says so.
func TestReplayDerivesLabelsFromEvents(t *testing.T) {
	work := t.TempDir()
	simulateFiles(t, work, "--orders", "500", "--seed", "17", "--scenario", "carrier-disruption")
	events, labelsFile := filepath.Join(work, "events.ndjson"), filepath.Join(work, "labels.csv")
	run := func(c replayConfig) string {
		t.Helper()
		var stderr bytes.Buffer
		c.BatchSize = 256
		if err := replay(context.Background(), c, &stderr); err != nil {
			t.Fatalf("replay %+v: %v\n%s", c, err, stderr.String())
		}
		return stderr.String()
	}
	lf, err := os.Open(labelsFile)
	if err != nil {
		t.Fatal(err)
	}
	truth, err := process.ReadLabels(lf)
	lf.Close()
	if err != nil {
		t.Fatal(err)
	}

	given := filepath.Join(work, "given.csv")
	out := run(replayConfig{In: events, Labels: labelsFile, Export: given})
	if !strings.Contains(out, "replay: labels from "+labelsFile+"\n") {
		t.Errorf("the summary does not say the labels came from %s:\n%s", labelsFile, out)
	}
	derived := filepath.Join(work, "derived.csv")
	out = run(replayConfig{In: events, Export: derived})
	if !strings.Contains(out, "replay: labels from the events") || !strings.Contains(out, " 0 orders have no outcome yet") {
		t.Errorf("the summary does not say the labels came from the events, every order with an outcome:\n%s", out)
	}
	gHead, gRows, _ := exportedLabels(t, given)
	dHead, dRows, dLabels := exportedLabels(t, derived)
	if !slices.Equal(gHead, dHead) || gRows != dRows {
		t.Fatalf("derived labels: %d rows of columns %v; with --labels %d rows of %v", dRows, dHead, gRows, gHead)
	}
	open, same, total, confusion := labelAgreement(t, dLabels, truth)
	if len(open) > 0 || total < 400 {
		t.Errorf("%d orders labelled, %d without an outcome (%v), in a stream where every order finished", total, len(open), open)
	}
	t.Logf("full stream: missed_cutoff agrees on %d of %d orders; exception_class on %d (%.1f%%); simulator→derived: %v",
		total, total, same, 100*float64(same)/float64(total), confusion)

	// Cut short: the first 30% of the lines, where about a third of the orders
	// have an outcome. Orders open at the cut with their cutoff ahead have no
	// outcome; the others still agree on missed_cutoff.
	raw, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	part := filepath.Join(work, "part.ndjson")
	if err := os.WriteFile(part, bytes.Join(lines[:len(lines)*3/10], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(work, "cut.csv")
	out = run(replayConfig{In: part, Export: cut})
	_, _, cLabels := exportedLabels(t, cut)
	open, same, total, _ = labelAgreement(t, cLabels, truth)
	if len(open) < 50 || total < 50 {
		t.Fatalf("%d orders open and %d with an outcome at 30%% of the stream, want both at least 50", len(open), total)
	}
	if want := fmt.Sprintf(" %d orders have no outcome yet", len(open)); !strings.Contains(out, want) {
		t.Errorf("the summary does not say%q:\n%s", want, out)
	}
	t.Logf("30%% of the stream: %d orders without an outcome; missed_cutoff agrees on %d of %d; exception_class on %d", len(open), total, total, same)
}
