package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	exampleOCELMapping = "../../examples/mapping/ocel2.yaml"
	exampleOCELLog     = "../../examples/mapping/ocel2-log.json"
)

func TestImportOCEL2ExampleReplaysWithNoDeadLetter(t *testing.T) {
	work := t.TempDir()
	rejects := filepath.Join(work, "rejects.ndjson")
	out, summary, err := importFile(t, importConfig{Format: "ocel2", Mapping: exampleOCELMapping, In: exampleOCELLog,
		Out: filepath.Join(work, "events.ndjson"), Rejects: rejects})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	t.Log(summary)
	if !strings.Contains(summary, "0 rejected") || !strings.Contains(summary, "1 skipped") {
		t.Errorf("summary %q: want no rejection and the dock event skipped", summary)
	}
	if b, _ := os.ReadFile(rejects); len(b) != 0 {
		t.Errorf("rejects file holds:\n%s", b)
	}
	types := map[string]bool{}
	perOrder := map[string]int{}
	evs := importedEvents(t, out)
	for _, ev := range evs {
		types[ev.Type] = true
		if ev.Type == "shipment.confirmed" {
			perOrder[ev.OrderID]++
		}
	}
	for _, ty := range []string{"order.created", "credit.released", "pick.confirmed", "pack.confirmed", "shipment.confirmed", "invoice.created"} {
		if !types[ty] {
			t.Errorf("no %s event in the import", ty)
		}
	}
	// A package reaches its order through its items: SO-5102 ships in two packages.
	if perOrder["SO-5102"] != 2 || perOrder["SO-5100"] != 1 {
		t.Errorf("shipments by order %v: want SO-5102 twice (two packages), SO-5100 once", perOrder)
	}
	replaysWhole(t, filepath.Join(work, "events.ndjson"), len(evs))
}

func TestImportOCEL2GivesTheSameBytesTwice(t *testing.T) {
	a, _, err := importFile(t, importConfig{Format: "ocel2", Mapping: exampleOCELMapping, In: exampleOCELLog})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := importFile(t, importConfig{Format: "ocel2", Mapping: exampleOCELMapping, In: exampleOCELLog})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Errorf("two imports of the example differ (%d and %d bytes)", len(a), len(b))
	}
}

func TestImportOCEL2RejectsBadEventsAndGoesOn(t *testing.T) {
	work := t.TempDir()
	in := filepath.Join(work, "log.json")
	os.WriteFile(in, []byte(`{"objects":[{"id":"o1","type":"order","attributes":[{"name":"warehouse","time":"2026-11-02T07:00:00Z","value":"WH-EAST"}],"relationships":[]}],
"events":[{"id":"e1","type":"confirm credit","time":"2026-11-02T08:00:00Z","relationships":[{"objectId":"o1","qualifier":"order"}]},
{"id":"e2","type":"confirm credit","time":7,"relationships":[]},
{"id":"e3","type":"confirm credit","time":"yesterday","relationships":[{"objectId":"o1","qualifier":"order"}]},
{"id":"e4","type":"refund","time":"2026-11-02T09:00:00Z","relationships":[{"objectId":"o1","qualifier":"order"}]},
{"id":"e5","type":"confirm credit","time":"2026-11-02T09:00:00Z","attributes":[{"name":"blob","value":"`+strings.Repeat("x", 70000)+`"}],"relationships":[{"objectId":"o1","qualifier":"order"}]}]}`), 0o644)
	rejects := filepath.Join(work, "rejects.ndjson")
	out, summary, err := importFile(t, importConfig{Format: "ocel2", Mapping: exampleOCELMapping, In: in, Rejects: rejects})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	if n := bytes.Count(out, []byte("\n")); n != 1 {
		t.Errorf("%d events, want 1 (e1):\n%s", n, out)
	}
	b, _ := os.ReadFile(rejects)
	for _, want := range []string{`"line":2,"reason":"bad_record"`, `"line":3,"reason":"bad_timestamp"`, `"line":4,"reason":"unmapped"`, `"line":5,"reason":"oversize"`, `"order_id":"o1"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("rejects lack %s:\n%s", want, b)
		}
	}
}

// writeOCELLog writes a generated OCEL 2.0 log of about events events: orders of 3
// items in one package, 8 events each (place, credit, 3 picks, pack, ship, invoice).
func writeOCELLog(w io.Writer, events int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	orders := events / 8
	base := time.Date(2026, 11, 2, 7, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) string { return base.Add(d).Format(time.RFC3339) }
	bw.WriteString(`{"objectTypes":[{"name":"order","attributes":[]},{"name":"item","attributes":[]},{"name":"package","attributes":[]}],"eventTypes":[],"objects":[`)
	for n := range orders {
		t0 := time.Duration(n) * 2 * time.Second
		if n > 0 {
			bw.WriteByte(',')
		}
		fmt.Fprintf(bw, `{"id":"SO-%d","type":"order","attributes":[{"name":"warehouse","time":%q,"value":"WH-EAST"},{"name":"customer","time":%q,"value":"C-%d"},{"name":"ship_cutoff","time":%q,"value":%q},{"name":"lines","time":%q,"value":3},{"name":"units","time":%q,"value":18},{"name":"value","time":%q,"value":541.5}],"relationships":[]}`,
			n, ts(t0), ts(t0), n%500, ts(t0), ts(t0+26*time.Hour), ts(t0), ts(t0), ts(t0))
		for k := range 3 {
			fmt.Fprintf(bw, `,{"id":"SO-%d-I%d","type":"item","attributes":[],"relationships":[{"objectId":"SO-%d","qualifier":"part of"}]}`, n, k, n)
		}
		fmt.Fprintf(bw, `,{"id":"PKG-%d","type":"package","attributes":[],"relationships":[{"objectId":"SO-%d-I0","qualifier":"contains"},{"objectId":"SO-%d-I1","qualifier":"contains"},{"objectId":"SO-%d-I2","qualifier":"contains"}]}`, n, n, n, n)
	}
	bw.WriteString(`],"events":[`)
	e := 0
	ev := func(typ string, at time.Duration, rels string) {
		if e > 0 {
			bw.WriteByte(',')
		}
		e++
		fmt.Fprintf(bw, `{"id":"e%d","type":%q,"time":%q,"attributes":[],"relationships":[%s]}`, e, typ, ts(at), rels)
	}
	// Events grouped by order, as an export by case gives them: import sorts.
	for n := range orders {
		t0 := time.Duration(n) * 2 * time.Second
		ord := `{"objectId":"SO-` + strconv.Itoa(n) + `","qualifier":"order"}`
		ev("place order", t0, ord)
		ev("confirm credit", t0+9*time.Minute, ord)
		for k := range 3 {
			ev("pick item", t0+time.Hour+time.Duration(k)*time.Minute, fmt.Sprintf(`{"objectId":"SO-%d-I%d","qualifier":"picked"}`, n, k))
		}
		pkg := fmt.Sprintf(`{"objectId":"PKG-%d","qualifier":"package"}`, n)
		ev("pack", t0+2*time.Hour, pkg)
		ev("ship package", t0+3*time.Hour, pkg)
		ev("invoice", t0+4*time.Hour, ord)
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// TestImportOCEL2Generated imports a generated log; ORDERWATCH_OCEL_EVENTS sets its
// size, ORDERWATCH_OCEL_KEEP a path to write it to for a measurement with
// /usr/bin/time -v orderwatch import (README "Import an event log").
func TestImportOCEL2Generated(t *testing.T) {
	events := 8000
	if s := os.Getenv("ORDERWATCH_OCEL_EVENTS"); s != "" {
		events, _ = strconv.Atoi(s)
	}
	in := os.Getenv("ORDERWATCH_OCEL_KEEP")
	if in == "" {
		in = filepath.Join(t.TempDir(), "log.json")
	}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeOCELLog(f, events); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if os.Getenv("ORDERWATCH_OCEL_KEEP") != "" {
		return
	}
	out, summary, err := importFile(t, importConfig{Format: "ocel2", Mapping: exampleOCELMapping, In: in})
	if err != nil {
		t.Fatalf("import: %v\n%s", err, summary)
	}
	if want := fmt.Sprintf("import: %d records: %d mapped to %d events, 0 skipped, 0 rejected", events, events, events); !strings.Contains(summary, want) {
		t.Errorf("summary %q: want %q", summary, want)
	}
	if n := bytes.Count(out, []byte("\n")); n != events {
		t.Errorf("%d events written, want %d", n, events)
	}
}
