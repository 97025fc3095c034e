package process

import (
	"encoding/binary"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/internal/binrec"
)

// appendLastPoint appends the section of an order's last written score point:
// its tag, then the mark's binary form (actions.ScoreMark AppendBinary) as a
// binrec string, as appendSection writes it.
func appendLastPoint(b []byte, m *actions.ScoreMark) []byte {
	var tmp [96]byte
	payload, _ := m.AppendBinary(tmp[:0]) // on the stack unless the strings are long
	b = binrec.AppendInt(b, sectionLastPoint)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// readLastPoint reads the section of an order's last written score point.
func readLastPoint(payload []byte, rec *orderRecord) error {
	m := &actions.ScoreMark{}
	d := binrec.NewDecoder(payload)
	d.Decode(m)
	if err := d.End(); err != nil {
		return err
	}
	rec.LastPoint = m
	return nil
}

// LatestScore is an order's latest scoring as its record keeps it, whether or
// not it wrote a point to the score history.
type LatestScore struct {
	At       time.Time
	Risk     float64
	Model    string // "name@version"
	Degraded bool
}

// LatestScoreOf returns the latest scoring of a stored order record, and false
// when the order was never scored (or the record does not decode: the API
// names that where it reads the record). The score history holds a point only
// when a scoring said something new (actions.ScoreMark); a reader that draws
// the risk over time ends it with this one.
func LatestScoreOf(raw []byte) (LatestScore, bool) {
	var rec orderRecord
	if decodeRecord(raw, &rec) != nil || rec.Risk == nil {
		return LatestScore{}, false
	}
	ls := LatestScore{At: rec.ScoredAt, Risk: *rec.Risk, Degraded: rec.Degraded}
	if rec.Model != nil {
		ls.Model = rec.Model.Name + "@" + rec.Model.Version
	}
	return ls, true
}
