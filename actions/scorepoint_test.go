package actions

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orderwatch/orderwatch/features"
)

// pointGen makes random score points, every field filled by reflection so that a
// field added to ScorePoint is filled too, and the round trip fails until the
// binary form keeps it.
type pointGen struct {
	r *rand.Rand
	// validUTF8 keeps strings valid UTF-8, as the pipeline's always are (it decodes
	// them from JSON): JSON replaced invalid bytes, the binary form keeps them.
	validUTF8 bool
	// wholeMinutes keeps zone offsets whole minutes, as RFC 3339 can say them.
	wholeMinutes bool
}

// scoreStrings are strings the binary form has short codes for, or nearly.
var scoreStrings = []string{"event", "timer", "cutoff_risk@2026-10-01", "rules_fallback@v4", "cutoff_risk@",
	"cutoff_risk", "cutoff_risk_x@1", "@", "exception_class@1.0.0", features.ExceptionCarrier, "credit", "Credit"}

func (g pointGen) str() string {
	for {
		var s string
		switch g.r.IntN(4) {
		case 0:
			s = oddStrings[g.r.IntN(len(oddStrings))]
		case 1:
			s = scoreStrings[g.r.IntN(len(scoreStrings))]
		case 2:
			s = string(make([]byte, 127+g.r.IntN(300))) // past one byte of length
		default:
			s = "e-" + string(rune('a'+g.r.IntN(26)))
		}
		if s != "" && (!g.validUTF8 || utf8.ValidString(s)) {
			return s
		}
	}
}

func (g pointGen) float() float64 {
	for {
		var f float64
		switch g.r.IntN(4) {
		case 0:
			f = oddFloats[g.r.IntN(len(oddFloats))]
		case 1:
			f = float64(float32(g.r.Float64())) // a model's output
		case 2:
			f = g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(80)-40))
		default:
			f = g.r.Float64()
		}
		if f != 0 {
			return f
		}
	}
}

func (g pointGen) time() time.Time {
	for {
		var t time.Time
		if g.r.IntN(4) == 0 {
			t = oddTimes[g.r.IntN(len(oddTimes))]
		} else {
			sec := minUnixSecond + g.r.Int64N(maxUnixSecond-minUnixSecond)
			nsec := g.r.Int64N(1e9)
			if g.r.IntN(2) == 0 {
				nsec -= nsec % 1e6 // whole milliseconds, as events' times
			}
			t = time.Unix(sec, nsec).UTC()
			switch g.r.IntN(4) {
			case 0:
				t = t.In(time.FixedZone("", (g.r.IntN(2*maxZoneOffset+1)-maxZoneOffset)/60*60))
			case 1:
				t = t.In(time.FixedZone("EST", -5*3600))
			case 2:
				if !g.wholeMinutes {
					t = t.In(time.FixedZone("LMT", g.r.IntN(2*maxZoneOffset+1)-maxZoneOffset))
				}
			}
		}
		if !t.IsZero() && checkScoreTime(t) == nil {
			return t
		}
	}
}

func (g pointGen) floats() map[string]float64 {
	m := map[string]float64{}
	if g.r.IntN(3) == 0 { // all the classes, as the model gives them
		for _, c := range features.ExceptionClasses {
			m[c] = g.float()
		}
	}
	for range 1 + g.r.IntN(4) {
		if g.r.IntN(2) == 0 {
			m[features.ExceptionClasses[g.r.IntN(len(features.ExceptionClasses))]] = g.float()
		} else {
			m[g.str()] = g.float()
		}
	}
	return m
}

// fill sets field i of p to a random non-zero value, or every field for i < 0.
func (g pointGen) fill(t testing.TB, p *ScorePoint, i int) {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	for j := range v.NumField() {
		if i >= 0 && j != i {
			continue
		}
		f := v.Field(j)
		switch f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(g.time()))
		case string:
			f.SetString(g.str())
		case float64:
			f.SetFloat(g.float())
		case bool:
			f.SetBool(true)
		case map[string]float64:
			f.Set(reflect.ValueOf(g.floats()))
		default:
			t.Fatalf("ScorePoint.%s is a %s, which this test cannot fill: teach it, and the binary form",
				v.Type().Field(j).Name, f.Type())
		}
		if f.IsZero() {
			t.Fatalf("ScorePoint.%s filled with its zero value", v.Type().Field(j).Name)
		}
	}
}

// samePoint reports the first field in which got and want differ: times by
// instant and zone offset, numbers by their bits, an empty map as a nil one.
func samePoint(got, want ScorePoint) (field string, ok bool) {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range wv.NumField() {
		ok := true
		switch w := wv.Field(i).Interface().(type) {
		case time.Time:
			g := gv.Field(i).Interface().(time.Time)
			_, gOff := g.Zone()
			_, wOff := w.Zone()
			ok = g.Equal(w) && gOff == wOff
		case float64:
			ok = math.Float64bits(gv.Field(i).Float()) == math.Float64bits(w)
		case map[string]float64:
			g := gv.Field(i).Interface().(map[string]float64)
			ok = len(g) == len(w)
			for k, v := range w {
				x, found := g[k]
				ok = ok && found && math.Float64bits(x) == math.Float64bits(v)
			}
		default:
			ok = reflect.DeepEqual(gv.Field(i).Interface(), w)
		}
		if !ok {
			return wv.Type().Field(i).Name, false
		}
	}
	return "", true
}

// TestScorePointRoundTrip writes points with one field set, then all, and reads
// them back: every field must come back as it was.
func TestScorePointRoundTrip(t *testing.T) {
	g := pointGen{r: rand.New(rand.NewPCG(5, 6))}
	fields := reflect.TypeFor[ScorePoint]().NumField()
	for n := range 4000 {
		var p ScorePoint
		g.fill(t, &p, n%(fields+1)-1)
		bin, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		var got ScorePoint
		if err := got.UnmarshalBinary(bin); err != nil {
			t.Fatalf("%+v: read back: %v\n%x", p, err, bin)
		}
		if f, ok := samePoint(got, p); !ok {
			t.Fatalf("%s does not survive the round trip:\n got %+v\nwant %+v\n%x", f, got, p, bin)
		}
		// What Decide writes, the model given as a ModelRef, is the same bytes.
		if name, version, ok := strings.Cut(p.Model, "@"); ok {
			ref := ModelRef{Name: name, Version: version}
			viaRef, err := p.appendBinary([]byte("prefix"), &ref)
			if err != nil || string(viaRef[:6]) != "prefix" || !bytes.Equal(viaRef[6:], bin) {
				t.Fatalf("%+v with model %+v:\n got %x, %v\nwant %x", p, ref, viaRef, err, bin)
			}
		}
	}
}

// TestScorePointReadsJSON reads points in the JSON form of earlier releases, and
// checks that a point reads the same, to its JSON bytes, from either form.
func TestScorePointReadsJSON(t *testing.T) {
	old := `{"at":"2026-11-02T06:00:00.123-05:00","trigger":"event","event":"e-1a2b-7f","risk":0.8299999833106995,` +
		`"classes":{"carrier":0.25,"credit":0.125,"none":0.625,"x\u003cy":0.5},"shadow":{"cutoff_risk@2026-11-01":0.91},` +
		`"model":"cutoff_risk@2026-10-01","degraded":true}`
	var p ScorePoint
	if err := p.UnmarshalBinary([]byte(old)); err != nil {
		t.Fatal(err)
	}
	want := ScorePoint{At: time.Date(2026, 11, 2, 6, 0, 0, 123e6, time.FixedZone("", -5*3600)), Trigger: "event",
		Event: "e-1a2b-7f", Risk: 0.8299999833106995, Classes: map[string]float64{"carrier": 0.25, "credit": 0.125, "none": 0.625, "x<y": 0.5},
		Shadow: map[string]float64{"cutoff_risk@2026-11-01": 0.91}, Model: "cutoff_risk@2026-10-01", Degraded: true}
	if f, ok := samePoint(p, want); !ok {
		t.Fatalf("%s: got %+v, want %+v", f, p, want)
	}

	g := pointGen{r: rand.New(rand.NewPCG(7, 8)), validUTF8: true, wholeMinutes: true}
	for range 3000 {
		var p ScorePoint
		g.fill(t, &p, -1)
		p.Degraded = g.r.IntN(2) == 0
		if g.r.IntN(3) == 0 {
			p.Event = ""
		}
		js, err := json.Marshal(&p) // what earlier releases stored
		if err != nil {
			t.Fatal(err)
		}
		bin, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON, fromBin ScorePoint
		if err := fromJSON.UnmarshalBinary(js); err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		if err := fromBin.UnmarshalBinary(bin); err != nil {
			t.Fatalf("%x: %v", bin, err)
		}
		if f, ok := samePoint(fromBin, fromJSON); !ok {
			t.Fatalf("%s differs:\nbinary %+v\n  json %+v", f, fromBin, fromJSON)
		}
		a, _ := json.Marshal(&fromJSON)
		b, _ := json.Marshal(&fromBin)
		if !bytes.Equal(a, b) || !bytes.Equal(a, js) {
			t.Fatalf("read from JSON\n%s\nread from binary\n%s\nstored\n%s", a, b, js)
		}
	}
}

// TestScorePointRefusesWhatJSONRefused: what json.Marshal could not write, the
// binary form does not store either.
func TestScorePointRefusesWhatJSONRefused(t *testing.T) {
	ok := ScorePoint{At: time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC), Trigger: "event", Model: "m@1"}
	bad := []func(p *ScorePoint){
		func(p *ScorePoint) { p.Risk = math.NaN() },
		func(p *ScorePoint) { p.Risk = math.Inf(-1) },
		func(p *ScorePoint) { p.Classes = map[string]float64{"none": math.Inf(1)} },
		func(p *ScorePoint) { p.Classes = map[string]float64{"other": math.NaN()} },
		func(p *ScorePoint) { p.Shadow = map[string]float64{"m@2": math.NaN()} },
		func(p *ScorePoint) { p.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(p *ScorePoint) { p.At = time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC) },
		func(p *ScorePoint) { p.At = p.At.In(time.FixedZone("", 24*3600)) },
		func(p *ScorePoint) { p.At = p.At.In(time.FixedZone("", -24*3600)) },
	}
	for i, spoil := range bad {
		p := ok
		spoil(&p)
		_, jsonErr := json.Marshal(&p)
		b, err := p.AppendBinary([]byte("prefix"))
		if err == nil || jsonErr == nil || string(b) != "prefix" {
			t.Errorf("case %d %+v: binary %q, %v; json.Marshal's error %v", i, p, b, err, jsonErr)
		}
	}
	if _, err := ok.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}

// TestScorePointDamaged: bytes that are no point are an error, never a panic;
// what reads without one is a point the binary form can store.
func TestScorePointDamaged(t *testing.T) {
	g := pointGen{r: rand.New(rand.NewPCG(9, 10))}
	for range 30 {
		var p ScorePoint
		g.fill(t, &p, -1)
		bin, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(bin) {
			if err := new(ScorePoint).UnmarshalBinary(bin[:n]); !errors.Is(err, ErrBadScorePoint) {
				t.Fatalf("%x cut to %d bytes: error %v, want ErrBadScorePoint", bin, n, err)
			}
		}
		if err := new(ScorePoint).UnmarshalBinary(append(slices.Clip(bin), 0)); !errors.Is(err, ErrBadScorePoint) {
			t.Fatalf("%x with a byte after it: error %v", bin, err)
		}
		for i := range bin {
			for _, x := range []byte{0, 0xff, bin[i] ^ 1, bin[i] ^ 0x80} {
				dam := slices.Clone(bin)
				dam[i] = x
				readOrRefuse(t, dam)
			}
		}
	}
	// A minimal point: flags spMillis|spEventIsTrigger, the epoch in UTC, trigger
	// "event", risk 0, no classes, no shadow, model "".
	const minimal = "\x01\x06\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	if err := new(ScorePoint).UnmarshalBinary([]byte(minimal)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ data, why string }{
		{"", "empty"},
		{"\x00", "unknown form 0x00"},
		{"\x02" + minimal[1:], "unknown form 0x02"},
		{"[]", "unknown form 0x5b"},
		{"{", "JSON"},
		{`{"risk":"high"}`, "cannot unmarshal"},
		{"\x01\x86" + minimal[2:], "unknown flags 0x86"},
		{minimal[:4] + "\x03" + minimal[5:], "unknown trigger 3"},
		{minimal[:5] + "\x00\x00\xc0\x7f" + minimal[9:], "risk is NaN"},
		{minimal[:9] + "\x80\x04" + minimal[10:], "unknown classes in mask 0x200"},
		{minimal[:10] + "\xff\xff\xff\xff\x0f" + minimal[11:], "count 4294967295 out of range"},
		{minimal[:10] + "\x01\x04none\x00\x00\x00\x00" + minimal[11:], `class "none" stored by name`},
		{minimal[:10] + "\x02\x01x\x00\x00\x00\x00\x01x\x00\x00\x00\x00" + minimal[11:], `class "x" stored twice`},
		{minimal[:11] + "\x02\x00\x01m\x00\x00\x00\x00\x00\x01m\x00\x00\x00\x00" + minimal[12:], `shadow "m" stored twice`},
		{minimal[:12] + "\x03\x00", "unknown model name 3"},
		{minimal[:3] + "\x80\xc6\x0a" + minimal[4:], "zone offset 86400 s out of range"},
		{"\x01\x04\x00\x80\x94\xeb\xdc\x03" + minimal[3:], "time 0 s 1000000000 ns out of range"},
		{"\x01\x06\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01" + minimal[3:], "out of range"},
		{minimal + "\x00", "1 bytes after the point"},
	} {
		err := new(ScorePoint).UnmarshalBinary([]byte(c.data))
		if !errors.Is(err, ErrBadScorePoint) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%q: error %v, want ErrBadScorePoint saying %s", c.data, err, c.why)
		}
	}
}

// readOrRefuse reads data as a point: an error must be ErrBadScorePoint, and a
// point read must store again and read back the same.
func readOrRefuse(t *testing.T, data []byte) {
	t.Helper()
	var p ScorePoint
	if err := p.UnmarshalBinary(data); err != nil {
		if !errors.Is(err, ErrBadScorePoint) {
			t.Fatalf("%x: error %v, want ErrBadScorePoint", data, err)
		}
		if f, ok := samePoint(p, ScorePoint{}); !ok {
			t.Fatalf("%x: error %v and %s set", data, err, f)
		}
		return
	}
	again, err := p.MarshalBinary()
	if err != nil {
		t.Fatalf("%x reads as %+v, which does not store: %v", data, p, err)
	}
	var q ScorePoint
	if err := q.UnmarshalBinary(again); err != nil {
		t.Fatalf("%x reads as %+v, stored as %x, which does not read: %v", data, p, again, err)
	}
	if f, ok := samePoint(q, p); !ok {
		t.Fatalf("%x reads as %+v, stored and read again %s differs: %+v", data, p, f, q)
	}
}

// FuzzScorePoint holds the reader to readOrRefuse on arbitrary bytes.
func FuzzScorePoint(f *testing.F) {
	g := pointGen{r: rand.New(rand.NewPCG(11, 12))}
	for range 20 {
		var p ScorePoint
		g.fill(f, &p, -1)
		bin, _ := p.MarshalBinary()
		f.Add(bin)
		js, _ := json.Marshal(&p)
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, data []byte) { readOrRefuse(t, data) })
}

// TestScoreClassesAreExceptionClasses: the classes the binary form stores without
// their names are those the exception_class model gives, so that a point of the
// model takes the short form. Should the taxonomy change, add a version of the
// form rather than changing scoreClasses, which points already stored depend on.
func TestScoreClassesAreExceptionClasses(t *testing.T) {
	if !slices.Equal(scoreClasses[:], features.ExceptionClasses) {
		t.Errorf("scoreClasses = %v, features.ExceptionClasses = %v", scoreClasses, features.ExceptionClasses)
	}
}

// TestScorePointSize pins the size of the pipeline's points.
func TestScorePointSize(t *testing.T) {
	classes := map[string]float64{}
	for i, c := range features.ExceptionClasses {
		classes[c] = float64(float32(1) / float32(3+i))
	}
	at := time.Date(2026, 11, 2, 6, 0, 0, 123e6, time.UTC)
	for _, c := range []struct {
		p    ScorePoint
		size int
	}{
		{ScorePoint{At: at, Trigger: "event", Event: "e-k3x9p-1a2b3", Risk: float64(float32(0.3)), Classes: classes,
			Model: "cutoff_risk@1.0.0"}, 72},
		{ScorePoint{At: at, Trigger: "timer", Event: "timer", Risk: float64(float32(0.3)), Classes: classes,
			Model: "cutoff_risk@1.0.0"}, 58},
		{ScorePoint{At: at, Trigger: "event", Event: "e-k3x9p-1a2b3", Risk: float64(float32(0.3)), Classes: classes,
			Shadow: map[string]float64{"cutoff_risk@1.1.0": float64(float32(0.4))}, Model: "cutoff_risk@1.0.0"}, 83},
		{ScorePoint{At: at, Trigger: "event", Event: "e-k3x9p-1a2b3", Risk: 0.3, Model: "rules_fallback@v3", Degraded: true}, 39},
	} {
		bin, err := c.p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(&c.p)
		if len(bin) != c.size {
			t.Errorf("%+v: %d bytes, want %d (%d as JSON)", c.p, len(bin), c.size, len(js))
		}
	}
}

// BenchmarkScorePointEncode measures the encoding of the benchmark's rows' score
// points, as Decide writes them.
func BenchmarkScorePointEncode(b *testing.B) {
	g := newDecideRows()
	ins := make([]Input, 1024)
	for i := range ins {
		g.next(&ins[i])
	}
	buf := make([]byte, 0, 1024)
	size := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		in := &ins[i%len(ins)]
		pt := ScorePoint{At: in.At, Trigger: in.TriggerType, Event: in.TriggerEvent, Risk: in.Risk,
			Classes: in.Classes, Shadow: in.Shadow, Degraded: in.Degraded}
		var err error
		if buf, err = pt.appendBinary(buf[:0], &in.Model); err != nil {
			b.Fatal(err)
		}
		size += len(buf)
	}
	b.ReportMetric(float64(size)/float64(b.N), "B/point")
}

// TestScorePointBounds: a point over its bounds, or with a number that is not
// finite, is refused by the encoder with an error naming the field, and refused
// by the reader in either form, so what reads always stores again.
func TestScorePointBounds(t *testing.T) {
	ok := ScorePoint{At: time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC), Trigger: "event", Event: "e-1", Risk: 0.2, Model: "cutoff_risk@1"}
	long := strings.Repeat("e", maxScoreString+1)
	many := func(n int) map[string]float64 {
		m := map[string]float64{}
		for i := range n {
			m[fmt.Sprint("c", i)] = 0.1
		}
		return m
	}
	cases := []struct {
		name  string
		spoil func(p *ScorePoint)
		field string
	}{
		{"NaN risk", func(p *ScorePoint) { p.Risk = math.NaN() }, "field risk"},
		{"Inf class", func(p *ScorePoint) { p.Classes = map[string]float64{"credit": math.Inf(1)} }, `field classes["credit"]`},
		{"NaN shadow", func(p *ScorePoint) { p.Shadow = map[string]float64{"cutoff_risk@2": math.NaN()} }, `field shadow["cutoff_risk@2"]`},
		{"year 10000", func(p *ScorePoint) { p.At = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "field at"},
		{"long event", func(p *ScorePoint) { p.Event = long }, "field event"},
		{"long trigger", func(p *ScorePoint) { p.Trigger = long }, "field trigger"},
		{"long model", func(p *ScorePoint) { p.Model = "cutoff_risk@" + long }, "field model"},
		{"long class label", func(p *ScorePoint) { p.Classes = map[string]float64{long: 0.5} }, "field classes"},
		{"too many classes", func(p *ScorePoint) { p.Classes = many(maxScoreClasses + 1) }, "field classes"},
		{"too many shadows", func(p *ScorePoint) { p.Shadow = many(maxScoreShadows + 1) }, "field shadow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ok
			c.spoil(&p)
			b, err := p.AppendBinary([]byte("prefix"))
			if !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), c.field) || string(b) != "prefix" {
				t.Fatalf("AppendBinary = %q, %v; want ErrBadRecord naming %s", b, err, c.field)
			}
			if js, err := json.Marshal(&p); err == nil { // the form of earlier releases
				var q ScorePoint
				if err := q.UnmarshalBinary(js); !errors.Is(err, ErrBadScorePoint) {
					t.Errorf("reading %s as JSON: %v, want ErrBadScorePoint", c.name, err)
				}
			}
		})
	}
	// The same bounds in the binary form: a point with an event over the bound.
	p := ok
	p.Event = "E"
	bin, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(bin, []byte("\x01E"))
	spoilt := append(append(append(bytes.Clone(bin[:i]), binary.AppendUvarint(nil, uint64(len(long)))...), long...), bin[i+2:]...)
	var q ScorePoint
	if err := q.UnmarshalBinary(spoilt); !errors.Is(err, ErrBadScorePoint) || !strings.Contains(err.Error(), "field event") {
		t.Errorf("reading a binary point with a long event: %v, want ErrBadScorePoint naming the field", err)
	}
	if _, err := ok.MarshalBinary(); err != nil {
		t.Errorf("a point within bounds: %v", err)
	}
}
