package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

const ocelYAML = `
version: 1
ocel:
  order_type: order
  via:
    item: [order]
    package: [item, order]
records:
- name: any
  when: 'has(r.order)'
  type: pick.confirmed
  order_id: 'r.order.id'
  occurred_at: 'r.time'
- name: none
  when: '!has(r.order)'
  skip: true
`

// The order lists its items (order -> item), the package its items: the paths are
// followed against the direction the log wrote them.
const ocelLog = `{"objectTypes":[],"objects":[
 {"id":"o1","type":"order","attributes":[
   {"name":"warehouse","time":"2026-11-02T07:00:00Z","value":"WH-EAST"},
   {"name":"warehouse","time":"2026-11-02T09:00:00Z","value":"WH-WEST"},
   {"name":"lines","time":"2026-11-02T07:00:00Z","value":3}],
  "relationships":[{"objectId":"i1","qualifier":"contains"},{"objectId":"i2","qualifier":"contains"}]},
 {"id":"o2","type":"order","attributes":[],"relationships":[{"objectId":"i3","qualifier":"contains"}]},
 {"id":"i1","type":"item","attributes":[],"relationships":[]},
 {"id":"i2","type":"item","attributes":[],"relationships":[]},
 {"id":"i3","type":"item","attributes":[],"relationships":[]},
 {"id":"p1","type":"package","attributes":[],"relationships":[{"objectId":"i1","qualifier":"in"},{"objectId":"i2","qualifier":"in"},{"objectId":"i3","qualifier":"in"}]}],
"events":[
 {"id":"e1","type":"ship","time":"2026-11-02T08:00:00Z","attributes":[{"name":"carrier","value":"DHL"}],"relationships":[{"objectId":"p1","qualifier":"shipped"},{"objectId":"o1","qualifier":"for"}]},
 {"id":"e2","type":"note","time":"2026-11-02T10:00:00Z","attributes":[],"relationships":[{"objectId":"o1","qualifier":"about"}]},
 {"id":"e3","type":"dock","time":"2026-11-02T10:00:00Z","attributes":[],"relationships":[]}],
"eventTypes":[]}`

func readOCEL(t *testing.T, log string) []Record {
	t.Helper()
	m, err := Compile([]byte(ocelYAML))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewOCELLog(strings.NewReader(log), m)
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for {
		rec, _, err := l.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

func TestOCELLogReachesOrdersThroughVia(t *testing.T) {
	recs := readOCEL(t, ocelLog)
	var got []string
	for _, r := range recs {
		s := r.Fields["id"].(string)
		if o, ok := r.Fields["order"].(map[string]any); ok {
			s += fmt.Sprintf(" %s via %s %v", o["id"], o["via"], o["attributes"])
		}
		got = append(got, s)
	}
	want := []string{
		// e1 reaches o1 directly and through p1's items (once), o2 through i3;
		// the warehouse as of 08:00 is the 07:00 value.
		"e1 o1 via package map[lines:3 warehouse:WH-EAST]",
		"e1 o2 via package map[]",
		"e2 o1 via order map[lines:3 warehouse:WH-WEST]",
		"e3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if recs[0].Fields["attributes"].(map[string]any)["carrier"] != "DHL" {
		t.Errorf("event attributes %v: want carrier DHL", recs[0].Fields["attributes"])
	}
	// Distinct (event, order) pairs give distinct derived ids; the same pair the same.
	m, _ := Compile([]byte(ocelYAML))
	a, err := m.Map(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Map(recs[1])
	again, _ := m.Map(readOCEL(t, ocelLog)[0])
	if a[0].Event.ID == b[0].Event.ID || a[0].Event.ID != again[0].Event.ID {
		t.Errorf("ids %s, %s, again %s: want distinct per order, stable per pair", a[0].Event.ID, b[0].Event.ID, again[0].Event.ID)
	}
}

func TestOCELLogRefusesEventsBeforeObjects(t *testing.T) {
	m, _ := Compile([]byte(ocelYAML))
	_, err := NewOCELLog(strings.NewReader(`{"events":[],"objects":[]}`), m)
	if err == nil || !strings.Contains(err.Error(), `"events" comes before "objects"`) || !strings.Contains(err.Error(), "jq") {
		t.Errorf("err %v: want events-before-objects refused with how to reorder", err)
	}
}

func TestOCELLogGoesOnPastABadEvent(t *testing.T) {
	m, _ := Compile([]byte(ocelYAML))
	l, err := NewOCELLog(strings.NewReader(`{"objects":[],"events":[{"id":"e1","type":"x","time":5},{"id":"e2","type":"x"},{"id":"e3","type":"x","time":"2026-11-02T10:00:00Z"}]}`), m)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"event 1", "event 2"} {
		_, n, err := l.Next()
		if !errors.Is(err, ErrBadOCEL) || n != i+1 || !strings.Contains(err.Error(), want) {
			t.Errorf("Next %d: %v (%d): want ErrBadOCEL naming %s", i, err, n, want)
		}
	}
	if rec, n, err := l.Next(); err != nil || n != 3 || rec.Fields["id"] != "e3" {
		t.Errorf("Next: %v %d %v: want e3", err, n, rec.Fields)
	}
}

func TestCompileOCELErrors(t *testing.T) {
	for _, tc := range []struct{ ocel, want string }{
		{"ocel: {via: {item: [order]}}", "no order_type"},
		{"ocel: {order_type: order, via: {item: [package]}}", "end the path with the order type"},
		{"ocel: {order_type: order, via: {order: [order]}}", "needs no path"},
		{"ocel: {order_type: order, via: {item: []}}", "0 steps"},
	} {
		_, err := Compile([]byte("version: 1\n" + tc.ocel + "\nrecords:\n- {name: a, when: 'true', skip: true}\n"))
		if !errors.Is(err, ErrBadMapping) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.ocel, err, tc.want)
		}
	}
	if _, err := Load("../examples/mapping/ocel2.yaml"); err != nil {
		t.Errorf("Load(ocel2.yaml): %v", err)
	}
}

// TestOCELLogObjectsStayCompact: what the log keeps per object is bounded, on
// the shape of the README's 1,000,000-event measurement (an order with six timed
// attributes, three items naming it, a package naming the items): the figure
// that keeps that import under 200 MB RSS with no memory limit.
func TestOCELLogObjectsStayCompact(t *testing.T) {
	const orders = 20000
	var b strings.Builder
	b.WriteString(`{"objects":[`)
	for n := range orders {
		if n > 0 {
			b.WriteByte(',')
		}
		at := `"time":"2026-11-02T07:00:00Z"`
		fmt.Fprintf(&b, `{"id":"SO-%d","type":"order","attributes":[{"name":"warehouse",%s,"value":"WH-EAST"},{"name":"customer",%s,"value":"C-%d"},{"name":"ship_cutoff",%s,"value":"2026-11-03T09:00:%02dZ"},{"name":"lines",%s,"value":3},{"name":"units",%s,"value":18},{"name":"value",%s,"value":541.5}],"relationships":[]}`,
			n, at, at, n%500, at, n%60, at, at, at)
		for k := range 3 {
			fmt.Fprintf(&b, `,{"id":"SO-%d-I%d","type":"item","attributes":[],"relationships":[{"objectId":"SO-%d","qualifier":"part of"}]}`, n, k, n)
		}
		fmt.Fprintf(&b, `,{"id":"PKG-%d","type":"package","attributes":[],"relationships":[{"objectId":"SO-%d-I0","qualifier":"contains"},{"objectId":"SO-%d-I1","qualifier":"contains"},{"objectId":"SO-%d-I2","qualifier":"contains"}]}`, n, n, n, n)
	}
	b.WriteString(`],"events":[]}`)
	m, _ := Compile([]byte(ocelYAML))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l, err := NewOCELLog(strings.NewReader(b.String()), m)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	objects := int64(orders * 5)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / objects
	t.Logf("%d objects, %d bytes each", objects, per)
	if per > 80 { // 158 as a map of ids, a linked list of relationships and boxed values
		t.Errorf("%d bytes an object kept, want at most 80", per)
	}
	runtime.KeepAlive(l)
}

// TestOCELLogKeepsEveryKindOfAttributeValue: the compact encoding of order
// attributes gives back what the JSON held, as CEL sees it, as of each time.
func TestOCELLogKeepsEveryKindOfAttributeValue(t *testing.T) {
	log := `{"objects":[{"id":"o\u00e9","type":"order","attributes":[
   {"name":"s","time":"2026-11-02T07:00:00Z","value":"a \"quoted\" caf\u00e9"},
   {"name":"i","time":"2026-11-02T07:00:00Z","value":-42},
   {"name":"big","value":9007199254740993},
   {"name":"f","time":"2026-11-02T07:00:00.5Z","value":3.0},
   {"name":"b","time":"1999-01-01T00:00:00Z","value":true},
   {"name":"n","time":"not a time","value":null},
   {"name":"j","time":"2026-11-02T07:00:00Z","value":{"k":[1,2.5,"x"]}},
   {"name":"s","time":"2026-11-02T09:00:00Z","value":""},
   {"name":"i","time":"2026-11-02T06:00:00Z","value":7},
   {"name":"late","time":"2026-11-03T00:00:00Z","value":false},
   {"name":"late","time":"2026-11-04T00:00:00Z","value":true}],"relationships":[]}],
"events":[{"id":"e1","type":"x","time":"2026-11-02T08:00:00Z","relationships":[{"objectId":"o\u00e9"}]},
{"id":"e2","type":"x","time":"2026-11-02T10:00:00Z","relationships":[{"objectId":"oé"}]}]}`
	recs := readOCEL(t, log)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	got := []string{}
	for _, r := range recs {
		o := r.Fields["order"].(map[string]any)
		got = append(got, fmt.Sprintf("%s %#v", o["id"], o["attributes"]))
	}
	want := []string{
		`oé map[string]interface {}{"b":true, "big":9007199254740993, "f":3, "i":-42, "j":map[string]interface {}{"k":[]interface {}{1, 2.5, "x"}}, "late":false, "n":interface {}(nil), "s":"a \"quoted\" café"}`,
		`oé map[string]interface {}{"b":true, "big":9007199254740993, "f":3, "i":-42, "j":map[string]interface {}{"k":[]interface {}{1, 2.5, "x"}}, "late":false, "n":interface {}(nil), "s":""}`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	o := recs[0].Fields["order"].(map[string]any)["attributes"].(map[string]any)
	if _, ok := o["f"].(float64); !ok {
		t.Errorf("3.0 is %T, want float64 (a CEL double)", o["f"])
	}
	if _, ok := o["i"].(int64); !ok {
		t.Errorf("-42 is %T, want int64", o["i"])
	}
}

// hugeValue is a reader of `{"objects":[` + prefix + a string of n bytes
// + `"}]...`: it is never held whole, so the test measures what the reader keeps.
type hugeValue struct {
	head, tail string
	n          int
	off        int
}

func (h *hugeValue) Read(p []byte) (int, error) {
	total := len(h.head) + h.n + len(h.tail)
	if h.off >= total {
		return 0, io.EOF
	}
	w := 0
	for w < len(p) && h.off < total {
		switch {
		case h.off < len(h.head):
			p[w] = h.head[h.off]
		case h.off < len(h.head)+h.n:
			p[w] = 'x'
		default:
			p[w] = h.tail[h.off-len(h.head)-h.n]
		}
		w++
		h.off++
	}
	return w, nil
}

// TestOCELLogStopsAtAHugeValue: one object, event or skipped section of 200
// MB (a hostile or broken file) stops the import with an error naming the
// bound, having read little past it, instead of buffering it whole; an event
// over MaxRecordBytes but under the bound is still only rejected as oversize.
func TestOCELLogStopsAtAHugeValue(t *testing.T) {
	m, _ := Compile([]byte(ocelYAML))
	const huge = 200 << 20
	for _, c := range []struct{ name, head, tail string }{
		{"object", `{"objects":[{"id":"o1","type":"order","attributes":[{"name":"n","value":"`, `"}]}],"events":[]}`},
		{"section", `{"objectTypes":[{"name":"`, `"}],"objects":[],"events":[]}`},
	} {
		r := &hugeValue{head: c.head, tail: c.tail, n: huge}
		_, err := NewOCELLog(r, m)
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s of %d bytes: %v, want an error naming the limit", c.name, huge, err)
		}
		if r.off > 2*MaxOCELValueBytes {
			t.Errorf("%s: read %d bytes before refusing, want about %d at most", c.name, r.off, MaxOCELValueBytes)
		}
	}
	r := &hugeValue{head: `{"objects":[],"events":[{"id":"e1","type":"x","time":"2026-11-02T10:00:00Z","attributes":[{"name":"n","value":"`, tail: `"}]}]}`, n: huge}
	l, err := NewOCELLog(r, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Next(); err == nil || !strings.Contains(err.Error(), "limit") || errors.Is(err, ErrBadOCEL) {
		t.Errorf("event of %d bytes: %v, want the import stopped (not a rejected record) naming the limit", huge, err)
	}
	if r.off > 2*MaxOCELValueBytes {
		t.Errorf("event: read %d bytes before refusing", r.off)
	}
}

// FuzzOCELOrderAttribute: an order attribute's value comes back from the
// compact table as encoding/json (UseNumber, then ints and doubles) reads it.
func FuzzOCELOrderAttribute(f *testing.F) {
	for _, s := range []string{`"WH-EAST"`, `"caf\u00e9 \"x\""`, "\"\xff\"", `3`, `-0`, `3.0`, `1e400`, `-9223372036854775808`, `18446744073709551616`, `true`, `false`, `null`, `{"a":[1,2.5,"x"]}`, `[]`, `""`} {
		f.Add(s)
	}
	m, err := Compile([]byte(ocelYAML))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string) {
		var want any
		dec := json.NewDecoder(strings.NewReader(value))
		dec.UseNumber()
		if dec.Decode(&want) != nil || dec.More() {
			return // not one JSON value
		}
		want = ocelValue(want)
		log := `{"objects":[{"id":"o1","type":"order","attributes":[{"name":"a","time":"2026-11-02T07:00:00Z","value":` + value + `}]}],"events":[{"id":"e1","type":"x","time":"2026-11-02T08:00:00Z","relationships":[{"objectId":"o1"}]}]}`
		l, err := NewOCELLog(strings.NewReader(log), m)
		if err != nil {
			return // a value the log refuses as a whole (a key, not a value, is bad)
		}
		rec, _, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		got := rec.Fields["order"].(map[string]any)["attributes"].(map[string]any)["a"]
		if !reflect.DeepEqual(got, want) && !(isNaN(got) && isNaN(want)) {
			t.Errorf("value %s: got %#v, want %#v", value, got, want)
		}
	})
}

func isNaN(v any) bool { f, ok := v.(float64); return ok && f != f }
