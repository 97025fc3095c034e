package mapping

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

func TestMiddlewareExampleMapsEveryMessage(t *testing.T) {
	m, err := Load("../examples/mapping/middleware-json.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("../examples/mapping/middleware-messages.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []Event
	skipped := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rec, err := JSONRecord(append([]byte(nil), sc.Bytes()...))
		if err != nil {
			t.Fatalf("JSONRecord: %v", err)
		}
		evs, err := m.Map(rec)
		if err != nil {
			t.Fatalf("Map(%s): %v", sc.Bytes(), err)
		}
		if len(evs) == 0 {
			skipped++
		}
		got = append(got, evs...)
	}
	var types []string
	for _, e := range got {
		types = append(types, e.Event.Type)
		var back features.Event
		if err := features.Decode(e.JSON, &back); err != nil {
			t.Errorf("features.Decode(%s): %v", e.JSON, err)
		}
	}
	want := "order.created credit.hold credit.released warehouse.load pick.confirmed pack.confirmed shipment.confirmed carrier.status"
	if strings.Join(types, " ") != want {
		t.Errorf("types %v, want %s", types, want)
	}
	if skipped != 1 {
		t.Errorf("%d messages skipped, want 1 (the heartbeat)", skipped)
	}
	c := got[0].Event
	placed := time.Date(2026, 11, 2, 7, 15, 41, 0, time.UTC)
	if c.ID != "ESB-7c1f0a01" || c.OrderID != "4500012345" || c.Data.Warehouse != "WH-EAST" ||
		c.Data.ShipCutoff == nil || !c.Data.ShipCutoff.Equal(placed.Add(72*time.Hour)) ||
		c.Data.CustomerTier != "gold" || c.Data.Channel != "edi" || c.Data.Lines != 3 || c.Data.Units != 60 ||
		c.Data.Value != 12840.5 || c.Actor != "EDI_BATCH" || c.Data.PromisedAt == nil {
		t.Errorf("order.created mapped to %+v (data %+v)", c, c.Data)
	}
	if w := got[3].Event; w.OrderID != "" || w.Data.Queue != 420 || w.Data.Capacity != 300 || w.Data.Outage || w.Data.Timezone != "America/New_York" {
		t.Errorf("warehouse.load mapped to %+v", w)
	}
	if p := got[5].Event; p.ID != "ESB-7c1f0a07-pack" || !p.OccurredAt.Before(got[6].Event.OccurredAt) {
		t.Errorf("pack.confirmed %+v, want id ESB-7c1f0a07-pack a second before the shipment", p)
	}
	if s := got[7].Event; s.Data.Text != "UPS: DELAYED weather delay at Louisville hub" {
		t.Errorf("carrier.status text %q", s.Data.Text)
	}
}

// csvYAML maps rows of a CSV event log; the runtime-failure tests use it.
const csvYAML = `version: 1
tables:
  sites: {S01: WH-EAST}
records:
- name: created
  when: 'r.activity == "Create"'
  type: order.created
  order_id: 'r.case_id'
  occurred_at: 'r.timestamp'
  data:
    warehouse: 'tables.sites[r.site]'
    ship_cutoff: 'has(r.cutoff) ? timestamp(r.cutoff) : timestamp(r.timestamp) + duration("72h")'
    lines: 'int(r.lines)'
    value: 'double(int(r.value) / int(r.per))'
- name: picked
  when: 'r.activity == "Pick"'
  type: pick.confirmed
  order_id: 'r.case_id'
  occurred_at: 'r.timestamp'
- name: note
  when: 'r.activity == "Note"'
  type: note.added
  order_id: 'r.case_id'
  occurred_at: 'r.timestamp'
  data:
    text: '[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(a, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(b, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(c, [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20].map(d, a*b*c*d)))).size() > 0 ? r.text : ""'
- name: lines-as-text
  when: 'r.activity == "Short"'
  type: allocation.short
  order_id: 'r.case_id'
  occurred_at: 'r.timestamp'
  data:
    short_units: 'r.units'
`

func row(kv ...string) Record {
	f := map[string]any{}
	var raw []byte
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
		raw = append(raw, kv[i]+"="+kv[i+1]+"\x00"...)
	}
	return Record{Fields: f, Raw: raw}
}

func TestMapRejectsWithAReason(t *testing.T) {
	m, err := Compile([]byte(csvYAML))
	if err != nil {
		t.Fatal(err)
	}
	good := []string{"activity", "Create", "case_id", "SO-1", "timestamp", "2026-11-02T07:00:00Z", "site", "S01", "lines", "3", "value", "10", "per", "2"}
	if evs, err := m.Map(row(good...)); err != nil || len(evs) != 1 || evs[0].Event.Data.Value != 5 {
		t.Fatalf("Map(good) = %+v, %v", evs, err)
	}
	with := func(k, v string) []string {
		out := append([]string(nil), good...)
		for i := 0; i < len(out); i += 2 {
			if out[i] == k {
				if v == "" {
					return append(out[:i], out[i+2:]...)
				}
				out[i+1] = v
				return out
			}
		}
		return append(out, k, v)
	}
	cases := []struct {
		name   string
		rec    Record
		reason string
		field  string
	}{
		{"unknown activity", row(with("activity", "Teleport")...), ReasonUnmapped, ""},
		{"missing field", row(with("site", "")...), ReasonMissingField, "data.warehouse"},
		{"key missing from a table", row(with("site", "S99")...), ReasonMissingField, "data.warehouse"},
		{"missing occurred_at", row(with("timestamp", "")...), ReasonMissingField, "occurred_at"},
		{"bad timestamp string", row("activity", "Pick", "case_id", "SO-1", "timestamp", "yesterday 14:00"), ReasonBadTimestamp, "occurred_at"},
		{"bad timestamp in an expression", row(with("cutoff", "2026-13-45T99:00:00Z")...), ReasonBadTimestamp, "data.ship_cutoff"},
		{"expression fails", row(with("per", "0")...), ReasonEvalError, "data.value"},
		{"not a number", row(with("lines", "three")...), ReasonWrongType, "data.lines"},
		{"wrong type at run time", row("activity", "Short", "case_id", "SO-1", "timestamp", "2026-11-02T07:00:00Z", "units", "7"), ReasonWrongType, "data.short_units"},
		{"cost limit", row("activity", "Note", "case_id", "SO-1", "timestamp", "2026-11-02T07:00:00Z", "text", "x"), ReasonEvalError, "data.text"},
		{"refused by the decoder: no order", row(with("case_id", "")...), ReasonMissingField, "order_id"},
		{"refused by the decoder: out of range", row(with("lines", "200000")...), ReasonInvalidEvent, ""},
		{"refused by the decoder: absurd time", row(with("timestamp", "1970-01-01T00:00:00Z")...), ReasonInvalidEvent, ""},
		{"oversize", Record{Fields: map[string]any{}, Raw: make([]byte, MaxRecordBytes+1)}, ReasonOversize, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, err := m.Map(c.rec)
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("Map = %+v, %v; want a *RecordError", evs, err)
			}
			if re.Reason != c.reason || re.Field != c.field || re.Detail == "" {
				t.Errorf("reason %s field %q detail %q; want reason %s field %q", re.Reason, re.Field, re.Detail, c.reason, c.field)
			}
		})
	}
}

func TestDerivedIDsAreStable(t *testing.T) {
	m, err := Compile([]byte(csvYAML))
	if err != nil {
		t.Fatal(err)
	}
	pick := []string{"activity", "Pick", "case_id", "SO-1", "timestamp", "2026-11-02T07:00:00Z"}
	a, err := m.Map(row(pick...))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Map(row(pick...))
	c, _ := m.Map(row(append(pick[:4:4], "timestamp", "2026-11-02T07:00:01Z")...))
	if a[0].Event.ID != b[0].Event.ID || !strings.HasPrefix(a[0].Event.ID, "m-") {
		t.Errorf("the same record gave ids %s and %s", a[0].Event.ID, b[0].Event.ID)
	}
	if a[0].Event.ID == c[0].Event.ID {
		t.Errorf("two records gave the same id %s", a[0].Event.ID)
	}
	if derivedID("picked", []byte("x")) == derivedID("other", []byte("x")) {
		t.Error("two entries gave the same id for one record")
	}
}

func TestJSONRecordRefusesWhatIsNotAnObject(t *testing.T) {
	for _, b := range []string{`[1]`, `null`, `{"a":1} {}`, `{"a":`} {
		_, err := JSONRecord([]byte(b))
		var re *RecordError
		if !errors.As(err, &re) || re.Reason != ReasonBadRecord {
			t.Errorf("JSONRecord(%s) = %v, want %s", b, err, ReasonBadRecord)
		}
	}
}
