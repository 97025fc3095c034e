package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

const simulatorOCELMapping = "../../examples/mapping/simulator-ocel2.yaml"

// notInSchema are the data fields the simulator writes that the schema-1 table
// does not list for the type (the fold ignores them, so a mapping may not set
// them): the OCEL log keeps them (relationships to warehouse and carrier
// objects, event attributes), the import cannot give them back.
var notInSchema = map[string][]string{
	features.TypeCreditReleased:     {"reason"},
	features.TypePricingApproved:    {"value"},
	features.TypeInventoryAllocated: {"warehouse", "lines", "units"},
	features.TypeAllocationChanged:  {"reason"},
	features.TypeAllocationShort:    {"warehouse", "reason"},
	features.TypePickReleased:       {"warehouse"},
	features.TypePickConfirmed:      {"warehouse", "units"},
	features.TypePackConfirmed:      {"warehouse"},
	features.TypeShipmentConfirmed:  {"warehouse", "carrier", "service_level"},
	features.TypeCarrierStatus:      {"carrier"},
	features.TypeInvoiceCreated:     {"value"},
	features.TypeInvoiceFailed:      {"system", "code"},
}

// simulateOCEL runs simulate --out and --ocel2 into dir and returns both paths.
func simulateOCEL(t *testing.T, dir string, args ...string) (ndjson, ocel, summary string) {
	t.Helper()
	ndjson, ocel = filepath.Join(dir, "s.ndjson"), filepath.Join(dir, "s.json")
	var stderr bytes.Buffer
	cfg, err := parseSimulateFlags(append([]string{"--out", ndjson, "--ocel2", ocel}, args...), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(context.Background(), cfg, nil, &stderr); err != nil {
		t.Fatalf("simulate: %v\n%s", err, stderr.String())
	}
	return ndjson, ocel, stderr.String()
}

// TestSimulateOCEL2ImportsBackToTheSameStream: the simulator's history written
// as an OCEL 2.0 log and imported with examples/mapping/simulator-ocel2.yaml
// gives the simulator's events again, field by field (ids included; the fields
// schema 1 does not list for a type left out), with no reject and no dead
// letter, and replay --export gives the same rows for both.
func TestSimulateOCEL2ImportsBackToTheSameStream(t *testing.T) {
	work := t.TempDir()
	ndjson, ocel, simSummary := simulateOCEL(t, work, "--orders", "300", "--seed", "9", "--scenario", "warehouse-outage",
		"--duplicates", "0", "--out-of-order", "0", "--late", "0")
	t.Log(simSummary)
	rejects := filepath.Join(work, "rejects.ndjson")
	imported := filepath.Join(work, "imported.ndjson")
	out, summary, err := importFile(t, importConfig{Format: "ocel2", Mapping: simulatorOCELMapping, In: ocel, Out: imported, Rejects: rejects})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	raw, err := os.ReadFile(ndjson)
	if err != nil {
		t.Fatal(err)
	}
	orig := importedEvents(t, raw) // decoded by the real decoder, in time order
	if want := fmt.Sprintf("import: %d records: %d mapped to %d events, 0 skipped, 0 rejected", len(orig), len(orig), len(orig)); !strings.Contains(summary, want) {
		t.Errorf("summary %q: want %q", summary, want)
	}
	if b, _ := os.ReadFile(rejects); len(b) != 0 {
		t.Errorf("rejects:\n%s", b)
	}
	got := importedEvents(t, out)
	if len(got) != len(orig) {
		t.Fatalf("%d events imported, the simulator wrote %d", len(got), len(orig))
	}
	types := map[string]int{}
	for i := range orig {
		o, g := orig[i], got[i]
		types[o.Type]++
		if err := sameEvent(o, g); err != nil {
			t.Errorf("event %d: %v\n simulated %+v\n  imported %+v", i, err, o, g)
			if t.Failed() && i > 20 {
				t.FailNow()
			}
		}
	}
	// The run has the dynamics the README's walk needs.
	for _, ty := range []string{features.TypeCreditHold, features.TypeAllocationShort, features.TypeCarrierStatus, features.TypeIntegrationError, features.TypeWarehouseLoad, features.TypeCarrierPerformance, features.TypeOrderCancelled} {
		if types[ty] == 0 {
			t.Errorf("no %s in the run: %v", ty, types)
		}
	}

	// The same order states: replay --export rows of both streams are equal.
	export := func(in string) []byte {
		t.Helper()
		csv := in + ".csv"
		var stderr bytes.Buffer
		if err := replay(context.Background(), replayConfig{In: in, Export: csv, BatchSize: 256}, &stderr); err != nil {
			t.Fatalf("replay %s: %v\n%s", in, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), " 0 duplicates, 0 dead-lettered") {
			t.Errorf("replay %s: %s", in, stderr.String())
		}
		b, err := os.ReadFile(csv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := export(ndjson), export(imported)
	if rows := bytes.Count(a, []byte("\n")); rows < 300 || !bytes.Equal(a, b) {
		t.Errorf("replay --export: %d rows from the simulator's stream, %d from the import: want the same rows", rows, bytes.Count(b, []byte("\n")))
	}
}

// sameEvent compares a simulated event with its import: the envelope, and the
// data fields schema 1 lists for the type (times as instants: the import writes
// UTC, the simulator the warehouse's offset).
func sameEvent(o, g features.Event) error {
	if o.ID != g.ID || o.Type != g.Type || o.OrderID != g.OrderID || !o.OccurredAt.Equal(g.OccurredAt) || o.Source != g.Source || o.Actor != g.Actor {
		return fmt.Errorf("envelopes differ")
	}
	od, gd := dataFields(o.Data), dataFields(g.Data)
	for _, k := range notInSchema[o.Type] {
		delete(od, k)
	}
	if !reflect.DeepEqual(od, gd) {
		return fmt.Errorf("data %v, imported %v", od, gd)
	}
	return nil
}

// dataFields is an event's data as JSON name -> value, times as Unix ms.
func dataFields(d features.EventData) map[string]any {
	for _, t := range []**time.Time{&d.ShipCutoff, &d.PromisedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	b, _ := json.Marshal(d)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	return m
}

// TestSimulateOCEL2LeavesDuplicatesOut: with the delivery faults on, the log
// holds each event once (a duplicate delivery is not history), late and
// out-of-order ones included, and imports with no reject and no dead letter.
func TestSimulateOCEL2LeavesDuplicatesOut(t *testing.T) {
	work := t.TempDir()
	ndjson, ocel, simSummary := simulateOCEL(t, work, "--orders", "200", "--seed", "4", "--duplicates", "0.02", "--out-of-order", "0.01", "--late", "0.01")
	raw, err := os.ReadFile(ndjson)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	for _, l := range lines {
		var ev features.Event
		if err := features.Decode(l, &ev); err != nil {
			t.Fatal(err)
		}
		ids[ev.ID] = true
	}
	if len(ids) == len(lines) {
		t.Fatalf("no duplicate in the run: %s", simSummary)
	}
	if want := fmt.Sprintf("simulate: ocel2: %d events,", len(ids)); !strings.Contains(simSummary, want) {
		t.Errorf("summary %q: want %q (each event once)", simSummary, want)
	}
	imported := filepath.Join(work, "imported.ndjson")
	out, summary, err := importFile(t, importConfig{Format: "ocel2", Mapping: simulatorOCELMapping, In: ocel, Out: imported})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	if !strings.Contains(summary, fmt.Sprintf("%d mapped to %d events, 0 skipped, 0 rejected", len(ids), len(ids))) {
		t.Errorf("summary %q: want every one of %d events mapped", summary, len(ids))
	}
	got := importedEvents(t, out)
	gotIDs := make([]string, 0, len(got))
	for _, ev := range got {
		gotIDs = append(gotIDs, ev.ID)
	}
	slices.Sort(gotIDs)
	if len(slices.Compact(gotIDs)) != len(ids) {
		t.Errorf("%d distinct ids imported, want %d", len(slices.Compact(gotIDs)), len(ids))
	}
	replaysWhole(t, imported, len(ids))
}
