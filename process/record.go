package process

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/binrec"
)

// Order records are stored in a compact binary form, written once per order per
// batch: encoding/json took a tenth of the pipeline's time and tripled the bytes
// Badger writes. The first byte says the form: recordV1 below, or '{' for the JSON
// of earlier versions, which is still read. RecordJSON gives the API its JSON view.
//
// recordV1 is the fields in the order of encodeRecord, each value as
// internal/binrec writes its kind; the state, the policy memory and the model
// encode themselves (features.OrderState, actions.Memory and actions.ModelRef
// AppendBinary). An optional field is a boolean, then the value when it is true.
// Flags are derived from the state and not stored. TestRecordGolden holds the
// form to testdata/record-v1.golden.
//
// recordV2 is recordV1 followed by the shadows of the eval (evalShadow): a
// count, then each one's version, risk and threshold. It is written only for a
// record whose eval has shadows, so every other record keeps the recordV1
// form; testdata/record-v2.golden holds it.
//
// recordV3 is the recordV2 layout, whose shadow count may then be 0, followed
// by sections, each a tag (binrec int) and its payload (binrec string), and
// the tag sectionsEnd (0), so that a record cut between two sections is an
// error, not a record without the later ones. It is written only for a record
// that has a section to carry (record_sections.go); a reader skips a tag it
// does not know.
const (
	recordV1 = 1
	recordV2 = 2
	recordV3 = 3
)

// maxEvalShadows bounds the shadows an eval stores, far above
// models.MaxShadows, so that a damaged record cannot make the reader allocate.
const maxEvalShadows = 16

// orderRecord is what the pipeline stores per order: the folded state, the policy's
// episode memory, the latest score and the next rescoring time.
type orderRecord struct {
	State    features.OrderState `json:"state"`
	Policy   actions.Memory      `json:"policy,omitempty"`
	Risk     *float64            `json:"risk,omitempty"`
	ScoredAt time.Time           `json:"scored_at,omitzero"`
	Model    *actions.ModelRef   `json:"model,omitempty"`
	Degraded bool                `json:"degraded,omitempty"`
	NextDue  time.Time           `json:"next_due,omitzero"`
	// Eval is the prediction the order's outcome will judge: the last scores at
	// least evalHorizon before the cutoff (or the first, for a late order).
	Eval *evalScore `json:"eval,omitempty"`
	// LastPoint is what the order's last written score point said: the next
	// scoring writes one only when it says more (actions.ScoreMark). Nil
	// before the first; kept in section sectionLastPoint.
	LastPoint *actions.ScoreMark `json:"last_point,omitempty"`
	// Flags are derived from State when the record is written, for readers of the
	// API; the fold never reads them.
	Flags orderFlags `json:"flags"`
	// Gauge is the warehouse and risk state the order counts under in the open and
	// at-risk gauges, so a change moves it from one count to the other.
	Gauge gaugeState `json:"gauge,omitzero"`
	// Timeline references the order's applied events (timeline.go); the API
	// shows it apart from the record.
	Timeline Timeline `json:"-"`

	id      string // the key it is stored and cached under
	wasOpen bool
	// watchRaw is the order's deadline watches as its record carries them
	// (sectionWatches, deadline_section.go); flushWatches rewrites it.
	watchRaw []byte
	rows     rowSpan // its rows in the batch being staged (pickRows)
}

type orderFlags struct {
	Open            bool `json:"open"`
	OnCreditHold    bool `json:"on_credit_hold"`
	PricingOpen     bool `json:"pricing_open"`
	AllocationShort bool `json:"allocation_short"`
	InvoiceFailed   bool `json:"invoice_failed"`
}

// encodeRecord appends the binary form of rec to dst.
func encodeRecord(dst []byte, rec *orderRecord) ([]byte, error) {
	form := byte(recordV1)
	var shadows []evalShadow
	if rec.Eval != nil && len(rec.Eval.Shadows) > 0 {
		form, shadows = recordV2, rec.Eval.Shadows
		if len(shadows) > maxEvalShadows {
			return dst, fmt.Errorf("eval of %d shadows, limit %d", len(shadows), maxEvalShadows)
		}
	}
	at := len(dst)
	b := append(dst, form)
	b, err := rec.State.AppendBinary(b)
	if err != nil {
		return dst, err
	}
	if b, err = rec.Policy.AppendBinary(b); err != nil {
		return dst, err
	}
	b = binrec.AppendBool(b, rec.Risk != nil)
	if rec.Risk != nil {
		b = binrec.AppendFloat64(b, *rec.Risk)
	}
	b = binrec.AppendTime(b, rec.ScoredAt)
	b = binrec.AppendBool(b, rec.Model != nil)
	if rec.Model != nil {
		if b, err = rec.Model.AppendBinary(b); err != nil {
			return dst, err
		}
	}
	b = binrec.AppendBool(b, rec.Degraded)
	b = binrec.AppendTime(b, rec.NextDue)
	b = binrec.AppendBool(b, rec.Eval != nil)
	if v := rec.Eval; v != nil {
		b = binrec.AppendString(b, v.Model)
		b = binrec.AppendString(b, v.Version)
		b = binrec.AppendFloat32(b, v.Risk)
		b = binrec.AppendFloat64(b, v.Threshold)
		b = binrec.AppendString(b, v.Class)
		b = binrec.AppendString(b, v.ClassVer)
	}
	b = binrec.AppendString(b, rec.Gauge.Warehouse)
	b = binrec.AppendBool(b, rec.Gauge.Open)
	b = binrec.AppendBool(b, rec.Gauge.AtRisk)
	if form == recordV2 || rec.hasSections() {
		b = binrec.AppendInt(b, len(shadows))
		for _, sh := range shadows {
			b = binrec.AppendString(b, sh.Version)
			b = binrec.AppendFloat32(b, sh.Risk)
			b = binrec.AppendFloat64(b, sh.Threshold)
		}
	}
	if rec.hasSections() {
		b[at] = recordV3
		if b, err = appendSections(b, rec); err != nil {
			return dst, err
		}
		b = binrec.AppendInt(b, sectionsEnd)
	}
	return b, nil
}

// decodeRecord reads a stored order record, binary or (from earlier versions)
// JSON, into rec, which must be zero.
func decodeRecord(raw []byte, rec *orderRecord) error {
	if len(raw) > 0 && raw[0] == '{' {
		return json.Unmarshal(raw, rec)
	}
	if len(raw) == 0 || raw[0] != recordV1 && raw[0] != recordV2 && raw[0] != recordV3 {
		return fmt.Errorf("unknown order record form (first byte %#x): written by a newer orderwatch?", raw[:min(len(raw), 1)])
	}
	d := binrec.NewDecoder(raw[1:])
	d.Decode(&rec.State)
	d.Decode(&rec.Policy)
	if d.Bool() {
		v := d.Float64()
		rec.Risk = &v
	}
	rec.ScoredAt = d.Time()
	if d.Bool() {
		rec.Model = &actions.ModelRef{}
		d.Decode(rec.Model)
	}
	rec.Degraded = d.Bool()
	rec.NextDue = d.Time()
	if d.Bool() {
		rec.Eval = &evalScore{Model: d.Str(), Version: d.Str(), Risk: d.Float32(), Threshold: d.Float64(), Class: d.Str(), ClassVer: d.Str()}
	}
	rec.Gauge = gaugeState{Warehouse: d.Str(), Open: d.Bool(), AtRisk: d.Bool()}
	if raw[0] == recordV2 || raw[0] == recordV3 {
		n := d.Int()
		if raw[0] == recordV2 && n < 1 || n < 0 || n > maxEvalShadows || n > 0 && rec.Eval == nil {
			d.Fail(fmt.Errorf("eval shadows: %d for eval %v, want 1 to %d with an eval", n, rec.Eval != nil, maxEvalShadows))
			n = 0
		}
		if n > 0 {
			rec.Eval.Shadows = make([]evalShadow, n)
		}
		for i := range n {
			rec.Eval.Shadows[i] = evalShadow{Version: d.Str(), Risk: d.Float32(), Threshold: d.Float64()}
		}
	}
	if raw[0] == recordV3 {
		for d.Err() == nil {
			if len(d.Rest()) == 0 {
				d.Fail(errors.New("sections: no end (a cut record?)"))
				break
			}
			tag := d.Int()
			if tag == sectionsEnd {
				break
			}
			payload := strPart(&d)
			if d.Err() != nil {
				break
			}
			if err := readSection(tag, payload, rec); err != nil {
				d.Fail(fmt.Errorf("section %d: %w", tag, err))
			}
		}
	}
	rec.Flags = flagsOf(&rec.State)
	return d.End()
}

// strPart reads what binrec.AppendString wrote, as d.Str does, but returns
// the bytes of what d reads that hold it, not a copy: a section's payload,
// which readSection copies what it keeps of. (A BinaryDecoder would do, but
// escapes to the heap through the interface.)
func strPart(d *binrec.Decoder) []byte {
	if d.Err() != nil {
		return nil
	}
	b := d.Rest()
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		d.Fail(binrec.ErrShort)
		return nil
	}
	end := k + int(n)
	*d = binrec.NewDecoder(b[end:])
	return b[k:end:end]
}

// flagsOf derives the flags the API shows from an order's state.
func flagsOf(s *features.OrderState) orderFlags {
	return orderFlags{Open: s.Open(), OnCreditHold: s.OnCreditHold(), PricingOpen: s.PricingOpen(),
		AllocationShort: s.AllocationShort(), InvoiceFailed: s.InvoiceFailed()}
}

// RecordJSON returns the JSON view of a stored order record, as the API shows it.
func RecordJSON(raw []byte) (json.RawMessage, error) {
	if len(raw) > 0 && raw[0] == '{' {
		return raw, nil
	}
	var rec orderRecord
	if err := decodeRecord(raw, &rec); err != nil {
		return nil, fmt.Errorf("process: decode order record: %w", err)
	}
	return json.Marshal(&rec)
}
