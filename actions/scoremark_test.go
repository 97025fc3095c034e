package actions

import (
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// TestScoreMarkSays: a scoring writes a score point when it says what the
// last point did not: the first point, a risk move of ScoreStep or more (in
// float32, as models give it), another most likely class, another model
// name or version, a change of degraded; or when it decided something.
func TestScoreMarkSays(t *testing.T) {
	at := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	model := ModelRef{Name: "cutoff_risk", Version: "v1", SHA256: "aa"}
	last := ScoreMark{At: at, Risk: float64(float32(0.40)), Class: "carrier", Model: "cutoff_risk@v1"}
	base := Input{OrderID: "SO-1", At: at.Add(time.Minute), Risk: float64(float32(0.42)), Model: model,
		Classes: map[string]float64{"carrier": 0.6, "credit": 0.3, "none": 0.1}}
	for _, c := range []struct {
		name    string
		last    ScoreMark
		change  func(in *Input)
		decided bool
		want    bool
	}{
		{"nothing new", last, func(*Input) {}, false, false},
		{"first point", ScoreMark{}, func(*Input) {}, false, true},
		{"risk up a step, in float32", last, func(in *Input) { in.Risk = float64(float32(0.45)) }, false, true},
		{"risk down a step, in float32", last, func(in *Input) { in.Risk = float64(float32(0.35)) }, false, true},
		{"risk down less than a step", last, func(in *Input) { in.Risk = float64(float32(0.36)) }, false, false},
		{"top class changed", last, func(in *Input) { in.Classes["credit"] = 0.7 }, false, true},
		{"classes gone", last, func(in *Input) { in.Classes = nil }, false, true},
		{"another version", last, func(in *Input) { in.Model.Version = "v2" }, false, true},
		{"another model", last, func(in *Input) { in.Model.Name = "rules_fallback" }, false, true},
		{"same model, another file", last, func(in *Input) { in.Model.SHA256 = "bb" }, false, false},
		{"degraded", last, func(in *Input) { in.Degraded = true }, false, true},
		{"decided", last, func(*Input) {}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := base
			in.Classes = map[string]float64{}
			for k, v := range base.Classes {
				in.Classes[k] = v
			}
			c.change(&in)
			mark := c.last
			in.Last = &mark
			p := &Policy{}
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			b := st.NewBatch()
			defer b.Discard()
			if err := p.recordScore(b, &in, c.decided); err != nil {
				t.Fatal(err)
			}
			if got := mark != c.last; got != c.want {
				t.Fatalf("point written: %v, want %v (mark %+v)", got, c.want, mark)
			}
			if c.want {
				want := ScoreMark{At: in.At, Risk: in.Risk, Class: topClass(in.Classes), Model: in.Model.Name + "@" + in.Model.Version, Degraded: in.Degraded}
				if mark != want {
					t.Fatalf("mark after the point %+v, want %+v", mark, want)
				}
			}
		})
	}
}

// TestScoreMarkBinary: a mark reads back as written, and a cut one is an error.
func TestScoreMarkBinary(t *testing.T) {
	in := ScoreMark{At: time.Date(2026, 6, 1, 8, 0, 0, 5, time.UTC), Risk: 0.625, Class: features.ExceptionCarrier, Model: "cutoff_risk@v1", Degraded: true}
	raw, _ := in.AppendBinary(nil)
	var out ScoreMark
	if rest, err := out.DecodeBinary(raw); err != nil || len(rest) != 0 || out != in {
		t.Fatalf("read back %+v, %d bytes left (%v), want %+v", out, len(rest), err, in)
	}
	for i := range len(raw) {
		if _, err := out.DecodeBinary(raw[:i]); err == nil {
			t.Fatalf("a mark cut at %d of %d bytes decoded", i, len(raw))
		}
	}
}
