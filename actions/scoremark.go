package actions

import (
	"fmt"
	"math"
	"time"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// ScoreStep is how far an order's risk must move from its last score point for
// the next scoring to write another (issue 20: score history is written when a
// decision is made or the risk moves by a set amount). A twentieth of the
// scale keeps the stored history within 0.05 of every risk the model gave,
// finer than the policy's thresholds are apart (0.5, 0.7) and than the
// console's chart shows, while the row-to-row jitter of an order whose events
// change little (notes, carrier statuses, rescoring timers far from the
// cutoff) writes nothing.
const ScoreStep = 0.05

// scoreStepSlack absorbs the rounding of the models' float32 risks: a move of
// 0.05 between two float32 values can come out a few 1e-8 short of it.
const scoreStepSlack = 1e-6

// ScoreMark is what an order's last written score point said, kept by the
// caller with the order (the pipeline in its order record) so that deciding
// whether the next scoring is worth a point needs no read. The zero value
// means the order has no point yet.
type ScoreMark struct {
	At       time.Time `json:"at"`
	Risk     float64   `json:"risk"`
	Class    string    `json:"class,omitempty"` // the most likely exception class; empty without one
	Model    string    `json:"model"`           // "name@version" of the risk model
	Degraded bool      `json:"degraded,omitempty"`
}

// says reports whether a scoring of in, whose most likely class is top, says
// something m did not: the first point, a move of the risk by ScoreStep or
// more, another top class, another model (name and version) or a change of
// degraded.
func (m *ScoreMark) says(in *Input, top string) bool {
	return m.At.IsZero() || math.Abs(in.Risk-m.Risk) >= ScoreStep-scoreStepSlack || top != m.Class ||
		in.Degraded != m.Degraded || !sameModel(m.Model, &in.Model)
}

// sameModel reports whether s is ref's "name@version", without building it.
func sameModel(s string, ref *ModelRef) bool {
	n, v := len(ref.Name), len(ref.Version)
	return len(s) == n+1+v && s[:n] == ref.Name && s[n] == '@' && s[n+1:] == ref.Version
}

// set makes m the mark of a point written for in at its moment.
func (m *ScoreMark) set(in *Input, top string) {
	m.At, m.Risk, m.Class, m.Degraded = in.At, in.Risk, top, in.Degraded
	if !sameModel(m.Model, &in.Model) {
		m.Model = in.Model.Name + "@" + in.Model.Version
	}
}

// topClass returns the most likely class of classes (ties to the first name
// in byte order), or "" when there is none.
func topClass(classes map[string]float64) string {
	top, best := "", math.Inf(-1)
	for c, p := range classes {
		if p > best || p == best && c < top {
			top, best = c, p
		}
	}
	return top
}

// The binary form of a ScoreMark, as the pipeline stores it inside its order
// record (see internal/binrec): At, Risk, Class, Model and Degraded, in this
// order. It is part of the stored format of order records.

// AppendBinary appends the binary form of m to b. It never fails; it returns an
// error to be an encoding.BinaryAppender.
func (m *ScoreMark) AppendBinary(b []byte) ([]byte, error) {
	b = binrec.AppendTime(b, m.At)
	b = binrec.AppendFloat64(b, m.Risk)
	b = binrec.AppendString(b, m.Class)
	b = binrec.AppendString(b, m.Model)
	return binrec.AppendBool(b, m.Degraded), nil
}

// DecodeBinary sets m to the mark AppendBinary wrote at the front of b, and
// returns the bytes that follow it.
func (m *ScoreMark) DecodeBinary(b []byte) (rest []byte, err error) {
	d := binrec.NewDecoder(b)
	*m = ScoreMark{At: d.Time(), Risk: d.Float64(), Class: d.Str(), Model: d.Str(), Degraded: d.Bool()}
	if err := d.Err(); err != nil {
		*m = ScoreMark{}
		return nil, fmt.Errorf("actions: decode score mark: %w", err)
	}
	return d.Rest(), nil
}
