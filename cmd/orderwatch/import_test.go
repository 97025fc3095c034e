package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/mapping"
)

const (
	exampleMapping = "../../examples/mapping/csv-event-log.yaml"
	exampleCSV     = "../../examples/mapping/orders.csv"
)

// importFile runs the import and returns its output and its stderr.
func importFile(t *testing.T, c importConfig) ([]byte, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	if c.Format == "" {
		c.Format = "csv"
	}
	if c.Out == "" {
		c.Out = filepath.Join(t.TempDir(), "events.ndjson")
	}
	err := runImport(context.Background(), c, &bytes.Buffer{}, &stderr)
	out, _ := os.ReadFile(c.Out)
	return out, stderr.String(), err
}

func TestImportCSVExampleReplaysWithNoDeadLetter(t *testing.T) {
	work := t.TempDir()
	rejects := filepath.Join(work, "rejects.ndjson")
	out, summary, err := importFile(t, importConfig{Mapping: exampleMapping, In: exampleCSV, Out: filepath.Join(work, "events.ndjson"), Rejects: rejects})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	t.Log(summary)
	if !strings.Contains(summary, "0 rejected") {
		t.Errorf("summary %q: want no rejection", summary)
	}
	if b, _ := os.ReadFile(rejects); len(b) != 0 {
		t.Errorf("rejects file holds:\n%s", b)
	}
	// Every line is an event the real decoder accepts, in time order, and the
	// mapping reaches every type of the log.
	types := map[string]bool{}
	evs := importedEvents(t, out)
	for _, ev := range evs {
		types[ev.Type] = true
	}
	for _, ty := range []string{"order.created", "order.changed", "credit.hold", "credit.released", "pricing.exception",
		"pricing.approved", "inventory.allocated", "allocation.changed", "allocation.short", "pick.released", "pick.confirmed",
		"pack.confirmed", "shipment.confirmed", "carrier.status", "invoice.created", "invoice.failed",
		"integration.error", "note.added", "order.cancelled"} {
		if !types[ty] {
			t.Errorf("no %s event in the import", ty)
		}
	}
	replaysWhole(t, filepath.Join(work, "events.ndjson"), len(evs))
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// badCSV is an event log with good rows and every kind of bad one, by line.
const badCSV = `case_id,activity,timestamp,site,customer,tier,channel,lines,units,value,carrier,service,cutoff,reason,text
SO-1,Create Sales Order,2026-11-02T07:00:00Z,S01,C-1,gold,edi,2,10,100.00,UPS,STD,,,
SO-1,Confirm Pick,2026-11-02T09:00:00Z,,,,,,,,,,,,
SO-2,Create Sales Order,2026-11-02T07:05:00Z,,C-2,gold,edi,2,10,100.00,UPS,STD,,,
SO-3,Confirm Pick,yesterday at 9,,,,,,,,,,,,
SO-4,Teleport Pallet,2026-11-02T09:00:00Z,,,,,,,,,,,,
SO-5,Create Sales Order,2026-11-02T07:10:00Z,S01,C-5,gold,edi,two,10,100.00,UPS,STD,,,
SO-6,Create Sales Order,2026-11-02T07:10:00Z,S01,C-6,gold,edi,2,10,100.00,UPS,STD,2026-02-30T00:00:00Z,,
SO-7,Confirm Pick
SO-8,Create Sales Order,2026-11-02T07:10:00Z,S09,C-8,gold,edi,2,10,100.00,UPS,STD,,,
,Confirm Pack,2026-11-02T09:00:00Z,,,,,,,,,,,,
SO-1,Print Pick List,2026-11-02T08:00:00Z,,,,,,,,,,,,
`

func TestImportRejectsMalformedRecordsWithTheirReason(t *testing.T) {
	work := t.TempDir()
	in := filepath.Join(work, "log.csv")
	if err := os.WriteFile(in, []byte(badCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	rejects := filepath.Join(work, "rejects.ndjson")
	out, summary, err := importFile(t, importConfig{Mapping: exampleMapping, In: in, Rejects: rejects})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if n := bytes.Count(out, []byte("\n")); n != 2 {
		t.Errorf("%d events written, want 2 (SO-1's two good rows):\n%s", n, out)
	}
	want := map[int]string{
		4:  mapping.ReasonMissingField, // no site: the warehouse lookup has no key
		5:  mapping.ReasonBadTimestamp, // "yesterday at 9"
		6:  mapping.ReasonUnmapped,     // an activity the mapping does not know
		7:  mapping.ReasonWrongType,    // int("two")
		8:  mapping.ReasonBadTimestamp, // February 30th in an expression
		9:  mapping.ReasonBadRecord,    // a row of two cells
		10: mapping.ReasonMissingField, // a site missing from the table
		11: mapping.ReasonMissingField, // no case id: the decoder needs order_id
	}
	f, err := os.Open(rejects)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[int]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Line   int               `json:"line"`
			Reason string            `json:"reason"`
			Detail string            `json:"detail"`
			Record map[string]string `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("rejects line %s: %v", sc.Bytes(), err)
		}
		if r.Detail == "" || (r.Reason != mapping.ReasonBadRecord && r.Record["activity"] == "") {
			t.Errorf("rejects line without detail or record: %s", sc.Bytes())
		}
		got[r.Line] = r.Reason
	}
	for line, reason := range want {
		if got[line] != reason {
			t.Errorf("line %d rejected as %q, want %q", line, got[line], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rejected lines %v, want %v", got, want)
	}
	for _, s := range []string{"11 records: 2 mapped to 2 events, 1 skipped, 8 rejected", "Teleport Pallet", "missing_field 3"} {
		if !strings.Contains(summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, summary)
		}
	}
}

func TestImportStrictStopsAtTheFirstRejection(t *testing.T) {
	work := t.TempDir()
	in := filepath.Join(work, "log.csv")
	if err := os.WriteFile(in, []byte(badCSV), 0o644); err != nil {
		t.Fatal(err)
	}
	outPath := filepath.Join(work, "events.ndjson")
	_, _, err := importFile(t, importConfig{Mapping: exampleMapping, In: in, Out: outPath, Strict: true})
	if err == nil || !strings.Contains(err.Error(), "line 4: ") || !strings.Contains(err.Error(), mapping.ReasonMissingField) {
		t.Fatalf("import --strict = %v, want a stop at line 4 with missing_field", err)
	}
	if _, err := os.Stat(outPath); !os.IsNotExist(err) {
		t.Errorf("--strict stopped but left %s (%v)", outPath, err)
	}
}

func TestImportGivesTheSameBytesTwice(t *testing.T) {
	a, _, err := importFile(t, importConfig{Mapping: exampleMapping, In: exampleCSV})
	if err != nil {
		t.Fatal(err)
	}
	// Again, sorting through many runs on disk: the same bytes.
	b, _, err := importFile(t, importConfig{Mapping: exampleMapping, In: exampleCSV, sort: mapping.TimeOrderOptions{TempDir: t.TempDir(), ChunkEvents: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two imports of the same log differ (%d and %d bytes)", len(a), len(b))
	}
}

// importedEvents decodes import's output with the real decoder, each line an
// event, and checks that they come in time order.
func importedEvents(t *testing.T, out []byte) []features.Event {
	t.Helper()
	var evs []features.Event
	var prev time.Time
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var ev features.Event
		if err := features.Decode(l, &ev); err != nil {
			t.Fatalf("features.Decode(%s): %v", l, err)
		}
		if ev.OccurredAt.Before(prev) {
			t.Fatalf("%s is before the line above (%s)", l, prev)
		}
		prev = ev.OccurredAt
		evs = append(evs, ev)
	}
	return evs
}

// replaysWhole checks that replay --in path applies all n events of an
// import: no dead letter, no duplicate.
func replaysWhole(t *testing.T, path string, n int) {
	t.Helper()
	var stderr bytes.Buffer
	if err := replay(context.Background(), replayConfig{In: path, BatchSize: 64}, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`replay: (\d+) lines, (\d+) applied, (\d+) duplicates, (\d+) dead-lettered`).FindStringSubmatch(stderr.String())
	if m == nil || m[1] != m[2] || m[3] != "0" || m[4] != "0" || m[1] != itoa(n) {
		t.Errorf("replay of %d events: %s", n, stderr.String())
	}
}
