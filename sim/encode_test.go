package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone test compares with the tz database, on any machine

	"github.com/orderwatch/orderwatch/features"
)

// The hand-written JSON means what encoding/json would make of it: decoding it
// generically gives the same keys and values as encoding features.Event's decoding
// of it again (so no field name is misspelt and silently dropped, no value changes).
func TestHandJSONMatchesEncodingJSON(t *testing.T) {
	data, _, _ := run(t, Options{Orders: 1500, Seed: 21, Scenario: WarehouseOutage, Faults: DefaultFaults})
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		var ev features.Event
		if err := features.Decode(line, &ev); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		var got, want map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(again, &want); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(got, want) {
			t.Fatalf("hand-written event\n%s\ndecodes differently from encoding/json's\n%s", line, again)
		}
		var ev2 features.Event
		if err := features.Decode(again, &ev2); err != nil {
			t.Fatal(err)
		}
		if !sameEvent(&ev, &ev2) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, ev2)
		}
		n++
	}
	if n < 10000 {
		t.Fatalf("only %d events compared", n)
	}
}

// sameJSON compares generic JSON values; times compare as instants, and a zero
// value equals an absent key (encoding/json omits them, the simulator writes some).
func sameJSON(a, b map[string]any) bool {
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			if !isZero(va) {
				return false
			}
			continue
		}
		switch x := va.(type) {
		case map[string]any:
			y, ok := vb.(map[string]any)
			if !ok || !sameJSON(x, y) {
				return false
			}
		case string:
			y, ok := vb.(string)
			if !ok {
				return false
			}
			ta, ea := time.Parse(time.RFC3339Nano, x)
			tb, eb := time.Parse(time.RFC3339Nano, y)
			if ea == nil && eb == nil {
				if !ta.Equal(tb) {
					return false
				}
			} else if x != y {
				return false
			}
		default:
			if !reflect.DeepEqual(va, vb) {
				return false
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			return false
		}
	}
	return true
}

func isZero(v any) bool {
	switch x := v.(type) {
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	}
	return v == nil
}

func sameEvent(a, b *features.Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return false
	}
	ta, tb := *a, *b
	ta.OccurredAt, tb.OccurredAt = time.Time{}, time.Time{}
	for _, p := range [][2]**time.Time{{&ta.Data.ShipCutoff, &tb.Data.ShipCutoff}, {&ta.Data.PromisedAt, &tb.Data.PromisedAt}} {
		x, y := *p[0], *p[1]
		if (x == nil) != (y == nil) || x != nil && !x.Equal(*y) {
			return false
		}
		*p[0], *p[1] = nil, nil
	}
	return reflect.DeepEqual(ta, tb)
}

func TestAppendJSONString(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("aZ09 \"\\/\n\t\r\x00\x01\x1f\x7fé€😀<>&\u2028")
	for range 2000 {
		var sb strings.Builder
		for range r.IntN(20) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		s := sb.String()
		var got string
		b := appendJSONString(nil, s)
		if err := json.Unmarshal(b, &got); err != nil || got != s {
			t.Fatalf("appendJSONString(%q) = %s, decodes to %q, %v", s, b, got, err)
		}
		if !bytes.Equal(appendJSONString(nil, []byte(s)), b) {
			t.Fatalf("string and []byte encodings of %q differ", s)
		}
	}
}

func TestAppendTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli()
	for range 20000 {
		ms := lo + r.Int64N(hi-lo)
		tm := time.UnixMilli(ms).UTC()
		if got, want := string(appendMillis(nil, ms)), tm.Format("2006-01-02T15:04:05.000Z07:00"); got != want {
			t.Fatalf("appendMillis(%d) = %s, want %s", ms, got, want)
		}
		off := (r.Int64N(25) - 12) * msHour
		if got, want := string(appendLocal(nil, ms, off)), tm.In(time.FixedZone("", int(off/1000))).Truncate(time.Second).Format(time.RFC3339); got != want {
			t.Fatalf("appendLocal(%d, %d) = %s, want %s", ms, off, got, want)
		}
	}
}

// The zones agree with the tz database hour by hour over two years.
func TestZonesMatchTZDatabase(t *testing.T) {
	zones := []zone{zoneCentral, zoneEastern, zonePacific, zoneMountain}
	for _, z := range zones {
		loc, err := time.LoadLocation(z.name)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for h := 0; h < 2*366*24; h++ {
			tm := start.Add(time.Duration(h) * time.Hour)
			_, want := tm.In(loc).Zone()
			if got := z.offset(tm.UnixMilli()); got != int64(want)*1000 {
				t.Fatalf("%s at %v: offset %d ms, want %d s", z.name, tm, got, want)
			}
			day, wd, ms := z.local(tm.UnixMilli())
			lt := tm.In(loc)
			if wd != int(lt.Weekday()) || ms/msHour != int64(lt.Hour()) || day != daysFromCivil(int64(lt.Year()), int64(lt.Month()), int64(lt.Day())) {
				t.Fatalf("%s at %v: local day %d weekday %d hour %d, want %v", z.name, tm, day, wd, ms/msHour, lt)
			}
		}
	}
}

func TestCalendar(t *testing.T) {
	z := zoneCentral
	loc := time.FixedZone("CDT", -5*3600) // May: daylight time
	at := func(s string) int64 {
		tm, err := time.ParseInLocation("Mon 2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	show := func(ms int64) string { return time.UnixMilli(ms).In(loc).Format("Mon 2006-01-02 15:04") }
	for _, c := range []struct {
		from string
		work time.Duration
		want string
	}{
		{"Tue 2026-05-19 10:00", 50 * time.Minute, "Tue 2026-05-19 10:50"},
		{"Tue 2026-05-19 16:45", 50 * time.Minute, "Wed 2026-05-20 08:35"}, // a hold at 16:45 waits for the morning
		{"Fri 2026-05-22 16:00", 2 * time.Hour, "Mon 2026-05-25 09:00"},
		{"Sat 2026-05-23 11:00", 0, "Mon 2026-05-25 08:00"},
		{"Tue 2026-05-19 06:00", 9 * time.Hour, "Tue 2026-05-19 17:00"},
	} {
		if got := financeHours.addWork(&z, at(c.from), c.work.Milliseconds()); show(got) != c.want {
			t.Errorf("finance work %v from %s done %s, want %s", c.work, c.from, show(got), c.want)
		}
	}
	staff, next := warehouseDefs[0].shifts.staffAt(&z, at("Tue 2026-05-19 15:00"))
	if staff != 13 || show(next) != "Tue 2026-05-19 23:00" {
		t.Errorf("DAL at Tue 15:00: staff %d until %s", staff, show(next))
	}
	staff, next = warehouseDefs[0].shifts.staffAt(&z, at("Sat 2026-05-23 16:00"))
	if staff != 0 || show(next) != "Sun 2026-05-24 14:00" {
		t.Errorf("DAL at Sat 16:00: staff %d until %s", staff, show(next))
	}
}

var placeholder = regexp.MustCompile(`%[a-zA-Z]`)

// No free text names an exception class: the model has to infer it.
func TestTextsDoNotNameTheClass(t *testing.T) {
	banned := []string{"credit", "pricing", "inventory", "address", "carrier", "invoicing",
		"capacity", "mapping", "edi_mapping", "warehouse_capacity", "none"}
	check := func(where, text string) {
		lower := strings.ToLower(text)
		for _, w := range banned {
			if strings.Contains(lower, w) {
				t.Fatalf("%s: text %q names %q", where, text, w)
			}
		}
	}
	s, err := New(Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	o := &order{lines: 12, value: 1234.5}
	tc := &textCtx{o: o, wh: "DAL", wh2: "ATL", car: "UPSN", city: "Dallas", minutes: 95, clock: 17 * msHour, day: 20600, queue: 310}
	sets := []*textSet{&txtHoldNote, &txtPriceNote, &txtShortNote, &txtShipToNote, &txtFloorNote, &txtNote,
		&txtEDIFix, &txtShipToFixed, &txtTruckLate, &txtNoShow, &txtRolled, &txtTransitDelay}
	for i := range txtTracking {
		sets = append(sets, &txtTracking[i])
	}
	for _, group := range [][]codedText{txtMapping, txtTransient, txtShipToSys, txtOutageSys, txtInvoice} {
		for _, ct := range group {
			check("code", ct.code)
			sets = append(sets, &textSet{tmpl: ct.tmpl})
		}
	}
	for _, set := range sets {
		for range 200 {
			text := string(s.render(set, tc))
			check("template", text)
			if strings.ContainsAny(text, "{}|") || placeholder.MatchString(text) {
				t.Fatalf("text %q has an unexpanded placeholder", text)
			}
		}
	}
	// And in a whole run, with typos.
	data, _, _ := run(t, Options{Orders: 2000, Seed: 4, Scenario: CarrierDisruption})
	sc := bufio.NewScanner(bytes.NewReader(data))
	texts := 0
	for sc.Scan() {
		var ev features.Event
		if err := features.Decode(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Data.Text != "" {
			texts++
			check(ev.Type, ev.Data.Text)
		}
		check(ev.Type+" code", ev.Data.Code)
	}
	if texts < 1000 {
		t.Errorf("only %d texts in 2000 orders", texts)
	}
}
