package process

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/binrec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenRecordV3File holds the bytes of goldenRecord as recordV3 writes them
// (with its sections), goldenRecordFile those of goldenRecord less its
// sections as recordV2 writes them, and goldenRecordV1File those of
// goldenRecord less its sections and its eval's shadows as recordV1 writes
// them. Data dirs hold records in these forms: a change to these bytes
// is a change of the stored format, which needs a new form byte, not a new
// golden file.
const (
	goldenRecordV3File = "testdata/record-v3.golden"
	goldenRecordFile   = "testdata/record-v2.golden"
	goldenRecordV1File = "testdata/record-v1.golden"
)

// goldenRecord is an order record with every field set: several stamps and
// texts, a policy memory of several rules, a risk, model, eval and gauge.
func goldenRecord() orderRecord {
	at := func(h, m int) time.Time { return time.Date(2026, 5, 18, h, m, 7, 123456789, time.UTC) }
	risk := 0.8125
	rec := orderRecord{
		State: features.OrderState{
			OrderID: "SO-1001", Known: true, Warehouse: "DAL", CustomerID: "C-77", CustomerTier: "gold",
			Channel: "edi", Carrier: "UPS", ServiceLevel: "next_day", Expedited: true, Region: "south",
			Lines: 4, Units: 120, Value: 1234.56,
			CreatedAt: at(8, 0), ShipCutoff: at(16, 0), PromisedAt: time.Date(2026, 5, 19, 12, 0, 0, 0, time.UTC),
			Milestone: features.MilestoneReleased, MilestoneAt: at(10, 30), ShippedAt: at(17, 1), Cancelled: true,
			CreditHolds: 2, AllocationChanges: 3, Changes: 5, AddressChanged: true, IntegrationErrors: 1, CarrierIssues: 6,
			HoldAt: features.Stamp{At: at(8, 5), ID: "e-hold"}, ReleaseAt: features.Stamp{At: at(8, 50), ID: "e-release"},
			PricingAt: features.Stamp{At: at(8, 6), ID: "e-pricing"}, ApprovedAt: features.Stamp{At: at(9, 0), ID: "e-approved"},
			ShortAt: features.Stamp{At: at(9, 10), ID: "e-short"}, AllocAt: features.Stamp{At: at(9, 20), ID: "e-alloc"},
			InvFailAt: features.Stamp{At: at(18, 0), ID: "e-invfail"}, InvoiceAt: features.Stamp{At: at(18, 30), ID: "e-invoice"},
			WarehouseSet: features.Stamp{At: at(9, 21), ID: "e-wh"}, CutoffSet: features.Stamp{At: at(9, 22), ID: "e-cutoff"},
			LinesSet: features.Stamp{At: at(9, 23), ID: "e-lines"}, UnitsSet: features.Stamp{At: at(9, 24), ID: "e-units"},
			ValueSet: features.Stamp{At: at(9, 25), ID: "e-value"},
			Events:   17, LastEventAt: at(18, 30),
			Texts: []features.Text{
				{At: at(9, 30), ID: "e-note", Text: "call before delivery"},
				{At: at(11, 0), ID: "e-carrier", Text: "carrier: weather delay ❄"},
				{At: at(12, 0), ID: "e-edi", Text: "EDI 856: segment N1 missing"},
			},
			MissCounted: true,
		},
		Policy: actions.Memory{
			"hold-escalate":    {Episode: 3, Active: true},
			"reroute-capacity": {Episode: 1},
			"flag-finance":     {Episode: 12, Active: true},
			"a-first":          {Episode: -1},
		},
		Risk:     &risk,
		ScoredAt: at(12, 1),
		Model:    &actions.ModelRef{Name: "cutoff_risk", Version: "2026-05-01", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Degraded: true,
		NextDue:  at(13, 0),
		Eval: &evalScore{Model: "cutoff_risk", Version: "2026-04-01", Risk: 0.75, Threshold: 0.6, Class: "carrier", ClassVer: "2026-03-01",
			Shadows: []evalShadow{{Version: "2026-05-02", Risk: 0.5, Threshold: 0.7}, {Version: "2026-04-20", Risk: 0.875, Threshold: 0.65}}},
		Gauge: gaugeState{Warehouse: "DAL", Open: true, AtRisk: true},
		Timeline: Timeline{Dropped: 32, Entries: []TimelineEntry{
			{Seq: 41, At: at(8, 0), ID: "e-created", Type: features.TypeOrderCreated, Source: "erp", Actor: "sap-01", What: "DAL", WhatFrom: WhatWarehouse},
			{Seq: 1 << 40, At: at(8, 5), ID: "e-hold", Type: features.TypeCreditHold, Source: "finance", Actor: "ar-team", What: "limit", WhatFrom: WhatReason},
			{Seq: 9000, At: at(9, 30), ID: "e-note", Type: features.TypeNoteAdded, Source: "cs", Actor: "agent ❄", What: "call before delivery", WhatFrom: WhatText},
			{Seq: 9001, At: at(9, 31), ID: "e-changed", Type: features.TypeOrderChanged, Source: "edi", Actor: "gw", What: "address", WhatFrom: WhatChange},
		}},
		LastPoint: &actions.ScoreMark{At: at(11, 58), Risk: 0.78125, Class: "carrier", Model: "cutoff_risk@2026-05-01", Degraded: true},
	}
	rec.Flags = flagsOf(&rec.State) // derived, not stored
	return rec
}

// allSet fails for each exported field reachable from v that is zero, so a field
// added later has to be added to the golden record too.
func allSet(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if path == "Flags" {
		return // derived from the state, not stored: no order has every flag set
	}
	if v.IsZero() {
		t.Errorf("golden record: %s is zero", path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				allSet(t, v.Field(i), join(path, f.Name))
			}
		}
	case reflect.Pointer:
		allSet(t, v.Elem(), path)
	case reflect.Slice:
		for i := range v.Len() {
			allSet(t, v.Index(i), path+"[]")
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// TestRecordGolden holds the binary form of an order record to the bytes earlier
// releases wrote: they decode to exactly the record, and the record encodes to
// exactly them. Run with -update only when the form byte changes, or to add a
// section to recordV3 (it rewrites the V3 file only).
func TestRecordGolden(t *testing.T) {
	want := goldenRecord()
	allSet(t, reflect.ValueOf(want), "")
	testRecordGolden(t, want, goldenRecordV3File, recordV3)
	// Without sections, a record keeps the recordV2 form.
	want.Timeline = Timeline{}
	want.LastPoint = nil
	testRecordGolden(t, want, goldenRecordFile, recordV2)
	// Without shadows in its eval, a record keeps the recordV1 form.
	want.Eval.Shadows = nil
	testRecordGolden(t, want, goldenRecordV1File, recordV1)
}

func testRecordGolden(t *testing.T, want orderRecord, goldenRecordFile string, form byte) {
	t.Helper()
	got := mustEncode(t, &want)
	if got[0] != form {
		t.Errorf("%s: form %d, want %d", goldenRecordFile, got[0], form)
	}
	if *update && form == recordV3 {
		if err := os.MkdirAll(filepath.Dir(goldenRecordFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenRecordFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(goldenRecordFile)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRecordGolden -update to write it)", err)
	}
	var back orderRecord
	if err := decodeRecord(golden, &back); err != nil {
		t.Fatalf("decode %s: %v", goldenRecordFile, err)
	}
	if !reflect.DeepEqual(back, want) {
		a, _ := json.Marshal(&want)
		b, _ := json.Marshal(&back)
		t.Errorf("%s decodes to another record:\nwant %s\n got %s", goldenRecordFile, a, b)
	}
	if !bytes.Equal(got, golden) {
		t.Errorf("the record encodes to other bytes than %s: the stored format changed\nwant %x\n got %x", goldenRecordFile, golden, got)
	}
	for range 20 { // map order is random: the memory must be written in one order
		if again := mustEncode(t, &want); !bytes.Equal(again, got) {
			t.Fatalf("the same record encodes to different bytes:\n%x\n%x", got, again)
		}
	}
}

// TestRecordGoldenJSON: the JSON form of earlier versions of the golden record
// reads back as the same record.
func TestRecordGoldenJSON(t *testing.T) {
	want := goldenRecord()
	want.Timeline = Timeline{} // not in the JSON form: the API shows it apart
	raw, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	var back orderRecord
	if err := decodeRecord(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("JSON record read back as %+v, want %+v", back, want)
	}
}

func BenchmarkRecordEncode(b *testing.B) {
	rec := goldenRecord()
	buf := mustEncode(b, &rec)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = encodeRecord(buf[:0], &rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordDecode(b *testing.B) {
	rec := goldenRecord()
	raw := mustEncode(b, &rec)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var out orderRecord
		if err := decodeRecord(raw, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecordV2ShadowsBounded: a recordV2 whose shadow count is out of bounds
// (none, more than maxEvalShadows) does not decode.
func TestRecordV2ShadowsBounded(t *testing.T) {
	rec := goldenRecord()
	rec.Eval.Shadows, rec.LastPoint = nil, nil
	v1 := mustEncode(t, &rec)
	for _, n := range []int{0, maxEvalShadows + 1, 1 << 30} {
		raw := binrec.AppendInt(append([]byte{recordV2}, v1[1:]...), n)
		var back orderRecord
		if err := decodeRecord(raw, &back); err == nil {
			t.Errorf("a record of %d eval shadows decoded", n)
		}
	}
}
