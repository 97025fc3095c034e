package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Strings, numbers and times that take encoding/json's less travelled paths.
var (
	oddStrings = []string{"", "plain", `quote " and \ back`, "<b>&amp;</b>", "tab\tnew\nline\rcr\bbs\fff",
		"\x00\x01\x1f\x7f", "caf\u00e9 \u65e5\u672c", "line\u2028para\u2029", "bad \xff utf8 \xe2\x80", "\xe2\x80@x",
		"emoji \U0001F600", "~webhook"}
	oddFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.7, 1.0 / 3, 123456789.123, 1e-6, 9.99e-7, 1e-7,
		1.5e-9, 1e20, 1e21, 1.2e21, -3e-8, math.MaxFloat64, math.SmallestNonzeroFloat64, float64(float32(0.1)),
		float64(float32(1e-6)), float64(float32(9.9999e-7)), float64(math.MaxFloat32), 3, -5, 240, 1e15, 1 << 24, 1<<24 - 1,
		1<<24 + 1, 1<<24 + 2, 1<<25 + 4, 1 << 53, 1<<53 - 1, 1<<53 + 2, -(1 << 53), 1e22, 123456789}
	oddTimes = []time.Time{{}, time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 6, 0, 0, 123456789, time.UTC),
		time.Date(2026, 11, 2, 6, 0, 0, 120000000, time.FixedZone("", -5*3600-30*60)), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", 23*3600+59*60)), time.Unix(0, 1).In(time.FixedZone("X", 3600))}
)

// TestEncodersWriteWhatJSONMarshalWrites holds the hand-written encoders to
// json.Marshal's bytes on random records, odd strings, numbers and times
// included, so that records stay what earlier releases wrote.
func TestEncodersWriteWhatJSONMarshalWrites(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		g := recordGen{r}
		d := g.decision()
		same(t, "decision", &d, d.appendJSON)
		c := g.command()
		same(t, "command", &c, c.appendJSON)
		it := g.openItem()
		same(t, "open item", &it, it.appendJSON)
		body, err := json.Marshal(&c)
		if err != nil {
			continue
		}
		j := job{Target: g.str(), Action: g.str(), MsgID: g.str(), Command: body}
		same(t, "job", &j, func(b []byte) ([]byte, error) { return j.appendJSON(b), nil })
	}
}

// TestEncodersFailAsJSONMarshalFails checks that what json.Marshal refuses, the
// encoders refuse with the same message.
func TestEncodersFailAsJSONMarshalFails(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		d := Decision{Features: map[string]float32{"lines": float32(f)}}
		same(t, "decision", &d, d.appendJSON)
		c := Command{Classes: map[string]float64{"credit": f}}
		same(t, "command", &c, c.appendJSON)
	}
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -25*3600))} {
		d := Decision{At: at}
		same(t, "decision", &d, d.appendJSON)
		it := OpenItem{Due: at}
		same(t, "open item", &it, it.appendJSON)
	}
}

// FuzzEncodersMatchJSON holds the decision encoder to json.Marshal on arbitrary
// strings, numbers and times.
func FuzzEncodersMatchJSON(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, oddFloats[i%len(oddFloats)], int64(i)*1e15+int64(i), s+"x")
	}
	f.Fuzz(func(t *testing.T, s string, x float64, nanos int64, k string) {
		d := Decision{ID: s, At: time.Unix(0, nanos).UTC(), Features: map[string]float32{s: float32(x), k: float32(-x)},
			Attributes: map[string]string{k: s}, Reasons: []string{s, k}, Scores: map[string]float64{"cutoff_risk": x}}
		same(t, "decision", &d, d.appendJSON)
	})
}

// same fails t unless enc appends to a non-empty prefix what json.Marshal writes
// for v, or fails with json.Marshal's message.
func same(t *testing.T, what string, v any, enc func([]byte) ([]byte, error)) {
	t.Helper()
	want, wantErr := json.Marshal(v)
	got, err := enc([]byte("prefix"))
	switch {
	case err != nil && !errors.Is(err, ErrBadRecord):
		t.Fatalf("%s %+v: error %v does not wrap ErrBadRecord", what, v, err)
	case wantErr != nil && (err == nil || !strings.HasSuffix(err.Error(), ": "+wantErr.Error())):
		t.Fatalf("%s %+v: error %v, want json.Marshal's %v with the field", what, v, err, wantErr)
	case wantErr != nil:
		return
	case err != nil && !strings.Contains(err.Error(), fmt.Sprintf("bytes, limit %d", MaxRecordString)):
		t.Fatalf("%s %+v: error %v, json.Marshal's none", what, v, err)
	case err != nil:
		return // a string over the limit, which json.Marshal would write
	}
	if !bytes.HasPrefix(got, []byte("prefix")) || !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("%s:\n got %s\nwant prefix%s", what, got, want)
	}
}

// TestEncodersNameTheField: what a record cannot hold is an error that says
// which field (and which map key) holds it.
func TestEncodersNameTheField(t *testing.T) {
	long := strings.Repeat("x", MaxRecordString+1)
	cases := []struct {
		name  string
		enc   func([]byte) ([]byte, error)
		field string
	}{
		{"NaN feature", (&Decision{Features: map[string]float32{"lines": float32(math.NaN())}}).appendJSON, `field features["lines"]`},
		{"NaN feature of the spec", func(b []byte) ([]byte, error) {
			d := Decision{Features: map[string]float32{}}
			for _, n := range features.Names {
				d.Features[n] = 1
			}
			d.Features["carrier_on_time"] = float32(math.Inf(1))
			return d.appendJSON(b)
		}, `field features["carrier_on_time"]`},
		{"Inf score", (&Decision{Scores: map[string]float64{"cutoff_risk": math.Inf(1)}}).appendJSON, `field scores["cutoff_risk"]`},
		{"NaN shadow score", (&Decision{ShadowScores: map[string]float64{"cutoff_risk@2": math.NaN()}}).appendJSON, `field shadow_scores["cutoff_risk@2"]`},
		{"decision in year 10000", (&Decision{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).appendJSON, "field at"},
		{"long order id", (&Decision{OrderID: long}).appendJSON, "field order_id"},
		{"long reason", (&Decision{Reasons: []string{"ok", long}}).appendJSON, "field reasons"},
		{"long attribute key", (&Decision{Attributes: map[string]string{long: "v"}}).appendJSON, `field attributes["xxxx`},
		{"NaN command risk", (&Command{Risk: math.NaN()}).appendJSON, "field risk"},
		{"Inf class", (&Command{Classes: map[string]float64{"credit": math.Inf(-1)}}).appendJSON, `field classes["credit"]`},
		{"long approval reason", (&Command{ApprovalReason: long}).appendJSON, "field approval_reason"},
		{"open item due in year -1", (&OpenItem{Due: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}).appendJSON, "field due"},
		{"long team", (&OpenItem{Team: long}).appendJSON, "field team"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.enc(nil)
			if !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), c.field) || len(err.Error()) > 300 {
				t.Errorf("error %v (%d bytes), want ErrBadRecord naming %s, short", err, len(fmt.Sprint(err)), c.field)
			}
			_ = b
		})
	}
}

// recordGen makes random records.
type recordGen struct{ r *rand.Rand }

func (g recordGen) str() string {
	if g.r.IntN(3) == 0 {
		return oddStrings[g.r.IntN(len(oddStrings))]
	}
	return "s" + string(rune('a'+g.r.IntN(26)))
}

func (g recordGen) float() float64 {
	switch g.r.IntN(5) {
	case 0:
		return oddFloats[g.r.IntN(len(oddFloats))]
	case 1:
		return float64(float32(g.r.Float64()))
	case 2:
		return math.Trunc(g.r.NormFloat64() * math.Pow(2, float64(g.r.IntN(60))))
	}
	return g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(50)-25))
}

func (g recordGen) time() time.Time {
	if g.r.IntN(3) == 0 {
		return oddTimes[g.r.IntN(len(oddTimes))]
	}
	return time.Unix(0, g.r.Int64N(1<<62))
}

func (g recordGen) floats(n int) map[string]float64 {
	if n < 0 {
		return nil
	}
	m := make(map[string]float64, n)
	for range n {
		m[g.str()] = g.float()
	}
	return m
}

func (g recordGen) strs() []string {
	n := g.r.IntN(4) - 1
	if n < 0 {
		return nil
	}
	s := make([]string, n)
	for i := range s {
		s[i] = g.str()
	}
	return s
}

func (g recordGen) model() ModelRef {
	m := ModelRef{Name: g.str(), Version: g.str()}
	if g.r.IntN(2) == 0 {
		m.SHA256 = g.str()
	}
	return m
}

func (g recordGen) decision() Decision {
	var fv map[string]float32
	switch g.r.IntN(4) {
	case 0: // nil
	case 1:
		fv = map[string]float32{g.str(): float32(g.float()), g.str(): float32(g.float())}
	default: // as Decide makes it, or nearly
		fv = make(map[string]float32, features.NumFeatures)
		for _, name := range features.Names {
			fv[name] = float32(g.float())
		}
		if g.r.IntN(3) == 0 {
			delete(fv, features.Names[g.r.IntN(features.NumFeatures)])
			fv[g.str()] = 1
		}
	}
	d := Decision{ID: g.str(), OrderID: g.str(), At: g.time(), TriggerEvent: g.str(), TriggerType: g.str(), FeatureSpec: g.str(),
		Features: fv, Model: g.model(), Scores: g.floats(g.r.IntN(5) - 1), ShadowScores: g.floats(g.r.IntN(3) - 1),
		Reasons: g.strs(), Degraded: g.r.IntN(2) == 0, PolicyVersion: g.str(), RuleID: g.str(), Action: g.str(), Mode: g.str(),
		Status: g.str(), Episode: g.r.IntN(5) - 1, IdempotencyKey: g.str(), RequireAck: g.r.IntN(2) == 0}
	if g.r.IntN(2) == 0 {
		d.Attributes = map[string]string{}
		for range g.r.IntN(4) {
			d.Attributes[g.str()] = g.str()
		}
	}
	if g.r.IntN(2) == 0 {
		m := g.model()
		d.ClassModel = &m
	}
	if g.r.IntN(2) == 0 {
		d.SuppressedBy, d.SuppressedNote, d.Target, d.Escalation, d.Team = g.str(), g.str(), g.str(), g.str(), g.str()
	}
	return d
}

func (g recordGen) command() Command {
	c := Command{DecisionID: g.str(), OrderID: g.str(), Action: g.str(), RuleID: g.str(), PolicyVersion: g.str(),
		Risk: g.float(), Classes: g.floats(g.r.IntN(4) - 1), Reasons: g.strs(), Degraded: g.r.IntN(2) == 0,
		IdempotencyKey: g.str(), DecidedAt: g.time(), Tier: g.r.IntN(3)}
	if g.r.IntN(2) == 0 {
		c.Warehouse, c.Customer, c.Carrier, c.Target, c.Team = g.str(), g.str(), g.str(), g.str(), g.str()
	}
	if g.r.IntN(2) == 0 {
		c.ApprovedBy, c.ApprovalReason, c.ApprovedAt = g.str(), g.str(), g.time()
		c.Escalates, c.Waiting, c.WaitingSince = g.str(), g.str(), g.time()
	}
	return c
}

func (g recordGen) openItem() OpenItem {
	it := OpenItem{Kind: g.str(), DecisionID: g.str(), OrderID: g.str(), Action: g.str(), RuleID: g.str(),
		IdempotencyKey: g.str(), Since: g.time(), Tier: g.r.IntN(3) - 1, Team: g.str(), Due: g.time(), RequireAck: g.r.IntN(2) == 0}
	if n := g.r.IntN(4); n > 0 {
		for range n {
			it.Ladder = append(it.Ladder, Tier{Team: g.str(), SLA: Duration(g.r.Int64N(int64(48 * time.Hour)))})
		}
	}
	return it
}

// TestStoredRecordsAreJSONMarshalOutput runs the benchmark's rows through Decide and
// Record on Badger and checks that every decision record, outbox entry and open
// item stored holds the bytes json.Marshal writes for it, as the releases before
// the hand-written encoders stored; and that every score point is stored in its
// binary form, which reads back as the point whose JSON earlier releases stored.
func TestStoredRecordsAreJSONMarshalOutput(t *testing.T) {
	doc := string(defaultPolicy) + "\nwebhooks:\n  notify_customer_service: {url: 'https://cs.example.com/hook', secret_env: CS_SECRET}\n"
	p, err := ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := newDecideRows()
	wantScores := map[string][]ScorePoint{}
	var decided []Decision
	var in Input
	for range 6 {
		b := st.NewBatch()
		for range 1000 {
			g.next(&in)
			wantScores[in.OrderID] = append(wantScores[in.OrderID], ScorePoint{At: in.At, Trigger: in.TriggerType,
				Event: in.TriggerEvent, Risk: in.Risk, Classes: maps.Clone(in.Classes), Shadow: maps.Clone(in.Shadow),
				Model: in.Model.Name + "@" + in.Model.Version, Degraded: in.Degraded})
			ds, err := p.Decide(b, &in, g.mem(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range ds {
				ds[i].Reasons = []string{"minutes to cutoff <4h", "credit hold"}
				if err := p.Record(b, &ds[i]); err != nil {
					t.Fatal(err)
				}
			}
			decided = append(decided, ds...)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		b.Discard()
	}
	if len(decided) < 500 {
		t.Fatalf("%d decisions: the rows should fire more rules", len(decided))
	}

	points, size := 0, 0
	for order, want := range wantScores {
		got, err := st.Scores(order)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("order %s: %d score points, want %d", order, len(got), len(want))
		}
		for i := range got {
			bin, err := want[i].MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[i], bin) {
				t.Fatalf("order %s score point %d:\n got %x\nwant %x", order, i, got[i], bin)
			}
			var pt ScorePoint
			if err := pt.UnmarshalBinary(got[i]); err != nil {
				t.Fatalf("order %s score point %d: %v", order, i, err)
			}
			gotJSON, _ := json.Marshal(&pt)
			wantJSON, _ := json.Marshal(&want[i])
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("order %s score point %d reads as\n%s\nwant\n%s", order, i, gotJSON, wantJSON)
			}
			points, size = points+1, size+len(got[i])
		}
	}
	t.Logf("%d score points, %.1f bytes each on average", points, float64(size)/float64(points))
	if avg := float64(size) / float64(points); avg > 100 {
		t.Errorf("score points take %.1f bytes on average, want under 100", avg)
	}

	outbox, err := st.OutboxPage("", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]string{}
	for _, e := range outbox {
		entries[e.DecisionID] = string(e.Command)
	}
	statuses := map[string]int{}
	for i := range decided {
		d := &decided[i]
		statuses[d.Status]++
		dv, err := st.Decision(d.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(d)
		if !bytes.Equal(dv.Record, want) {
			t.Fatalf("decision %s:\n got %s\nwant %s", d.ID, dv.Record, want)
		}
		var wantOpen []byte
		ladder := p.Escalation[d.Escalation]
		open := func(kind string) {
			it := OpenItem{Kind: kind, DecisionID: d.ID, OrderID: d.OrderID, Action: d.Action, RuleID: d.RuleID,
				IdempotencyKey: d.IdempotencyKey, Since: d.At, Ladder: ladder, RequireAck: d.RequireAck}
			if len(ladder) > 0 {
				it.Team, it.Due = ladder[0].Team, d.At.Add(ladder[0].SLA.D())
			}
			wantOpen, _ = json.Marshal(it)
		}
		switch d.Status {
		case StatusQueued:
			body, _ := json.Marshal(d.Command())
			for _, target := range []string{TargetNATS, TargetWebhook} {
				entry := d.ID
				if target == TargetWebhook {
					if d.Action != ActionNotifyCS {
						continue
					}
					entry += entryWebhook
				}
				want, _ := json.Marshal(job{Target: target, Action: d.Action, MsgID: d.IdempotencyKey, Command: body})
				if entries[entry] != string(want) {
					t.Fatalf("outbox entry %s:\n got %s\nwant %s", entry, entries[entry], want)
				}
			}
			if d.RequireAck {
				open(OpenAck)
			}
		case StatusPendingApproval:
			open(OpenApproval)
		}
		if !bytes.Equal(dv.Open, wantOpen) {
			t.Fatalf("open item of %s:\n got %s\nwant %s", d.ID, dv.Open, wantOpen)
		}
	}
	for _, s := range []string{StatusQueued, StatusPendingApproval, StatusShadow, StatusSuppressed} {
		if statuses[s] == 0 {
			t.Errorf("no decision %s among %v: the test does not cover it", s, statuses)
		}
	}
	if !strings.Contains(entries[decidedWith(decided, ActionNotifyCS)+entryWebhook], TargetWebhook) {
		t.Error("no webhook delivery checked")
	}
}

func decidedWith(ds []Decision, action string) string {
	for _, d := range ds {
		if d.Action == action && d.Status == StatusQueued {
			return d.ID
		}
	}
	return ""
}
