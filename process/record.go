package process

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
)

// Order records are stored in a compact binary form, written once per order per
// batch: encoding/json took a tenth of the pipeline's time and tripled the bytes
// Badger writes. The first byte says the form: recordV1 below, or '{' for the JSON
// of earlier versions, which is still read. RecordJSON gives the API its JSON view.
//
// recordV1 is the fields in the order of encodeRecord: strings and byte lengths as
// uvarint-prefixed bytes, integers as varints, booleans as one byte, float64 and
// float32 as little-endian IEEE bits, times as the varint of their Unix
// nanoseconds (0 for the zero time: no event or clock time is at the epoch) read
// back in UTC. Flags are derived from the state and not stored.
const recordV1 = 1

var errRecordShort = errors.New("record ends early")

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
	// Flags are derived from State when the record is written, for readers of the
	// API; the fold never reads them.
	Flags orderFlags `json:"flags"`
	// Gauge is the warehouse and risk state the order counts under in the open and
	// at-risk gauges, so a change moves it from one count to the other.
	Gauge gaugeState `json:"gauge,omitzero"`

	id      string // the key it is stored and cached under
	wasOpen bool
	dueSet  time.Time // NextDue when loaded, to replace its index entry
}

type orderFlags struct {
	Open            bool `json:"open"`
	OnCreditHold    bool `json:"on_credit_hold"`
	PricingOpen     bool `json:"pricing_open"`
	AllocationShort bool `json:"allocation_short"`
	InvoiceFailed   bool `json:"invoice_failed"`
}

// encodeRecord appends the binary form of rec to dst.
func encodeRecord(dst []byte, rec *orderRecord) []byte {
	e := recEncoder{b: append(dst, recordV1)}
	s := &rec.State
	e.str(s.OrderID)
	e.bool(s.Known)
	e.str(s.Warehouse)
	e.str(s.CustomerID)
	e.str(s.CustomerTier)
	e.str(s.Channel)
	e.str(s.Carrier)
	e.str(s.ServiceLevel)
	e.bool(s.Expedited)
	e.str(s.Region)
	e.int(s.Lines)
	e.int(s.Units)
	e.f64(s.Value)
	e.time(s.CreatedAt)
	e.time(s.ShipCutoff)
	e.time(s.PromisedAt)
	e.str(s.Milestone)
	e.time(s.MilestoneAt)
	e.time(s.ShippedAt)
	e.bool(s.Cancelled)
	e.int(s.CreditHolds)
	e.int(s.AllocationChanges)
	e.int(s.Changes)
	e.bool(s.AddressChanged)
	e.int(s.IntegrationErrors)
	e.int(s.CarrierIssues)
	for _, st := range [...]*features.Stamp{&s.HoldAt, &s.ReleaseAt, &s.PricingAt, &s.ApprovedAt, &s.ShortAt,
		&s.AllocAt, &s.InvFailAt, &s.InvoiceAt, &s.WarehouseSet, &s.CutoffSet, &s.LinesSet, &s.UnitsSet, &s.ValueSet} {
		e.time(st.At)
		e.str(st.ID)
	}
	e.int(s.Events)
	e.time(s.LastEventAt)
	e.int(len(s.Texts))
	for i := range s.Texts {
		t := &s.Texts[i]
		e.time(t.At)
		e.str(t.ID)
		e.str(t.Text)
	}
	e.bool(s.MissCounted)

	// Rules in id order, so a record's bytes do not depend on map order.
	var buf [16]ruleEntry
	e.int(len(rec.Policy))
	for _, r := range sortedRules(buf[:0], rec.Policy) {
		e.str(r.id)
		e.int(r.m.Episode)
		e.bool(r.m.Active)
	}
	e.bool(rec.Risk != nil)
	if rec.Risk != nil {
		e.f64(*rec.Risk)
	}
	e.time(rec.ScoredAt)
	e.bool(rec.Model != nil)
	if rec.Model != nil {
		e.str(rec.Model.Name)
		e.str(rec.Model.Version)
		e.str(rec.Model.SHA256)
	}
	e.bool(rec.Degraded)
	e.time(rec.NextDue)
	e.bool(rec.Eval != nil)
	if v := rec.Eval; v != nil {
		e.str(v.Model)
		e.str(v.Version)
		e.f32(v.Risk)
		e.f64(v.Threshold)
		e.str(v.Class)
		e.str(v.ClassVer)
	}
	e.str(rec.Gauge.Warehouse)
	e.bool(rec.Gauge.Open)
	e.bool(rec.Gauge.AtRisk)
	return e.b
}

type ruleEntry struct {
	id string
	m  actions.RuleMemory
}

// sortedRules appends mem's rules to buf, by id. It sorts by insertion: a policy
// has few rules.
func sortedRules(buf []ruleEntry, mem actions.Memory) []ruleEntry {
	for id, m := range mem {
		buf = append(buf, ruleEntry{id, m})
	}
	for i := 1; i < len(buf); i++ {
		for j := i; j > 0 && buf[j].id < buf[j-1].id; j-- {
			buf[j], buf[j-1] = buf[j-1], buf[j]
		}
	}
	return buf
}

// decodeRecord reads a stored order record, binary or (from earlier versions)
// JSON, into rec, which must be zero.
func decodeRecord(raw []byte, rec *orderRecord) error {
	if len(raw) > 0 && raw[0] == '{' {
		return json.Unmarshal(raw, rec)
	}
	if len(raw) == 0 || raw[0] != recordV1 {
		return fmt.Errorf("unknown order record form (first byte %#x): written by a newer orderwatch?", raw[:min(len(raw), 1)])
	}
	d := recDecoder{b: raw[1:]}
	s := &rec.State
	s.OrderID = d.str()
	s.Known = d.bool()
	s.Warehouse = d.str()
	s.CustomerID = d.str()
	s.CustomerTier = d.str()
	s.Channel = d.str()
	s.Carrier = d.str()
	s.ServiceLevel = d.str()
	s.Expedited = d.bool()
	s.Region = d.str()
	s.Lines = d.int()
	s.Units = d.int()
	s.Value = d.f64()
	s.CreatedAt = d.time()
	s.ShipCutoff = d.time()
	s.PromisedAt = d.time()
	s.Milestone = d.str()
	s.MilestoneAt = d.time()
	s.ShippedAt = d.time()
	s.Cancelled = d.bool()
	s.CreditHolds = d.int()
	s.AllocationChanges = d.int()
	s.Changes = d.int()
	s.AddressChanged = d.bool()
	s.IntegrationErrors = d.int()
	s.CarrierIssues = d.int()
	for _, st := range [...]*features.Stamp{&s.HoldAt, &s.ReleaseAt, &s.PricingAt, &s.ApprovedAt, &s.ShortAt,
		&s.AllocAt, &s.InvFailAt, &s.InvoiceAt, &s.WarehouseSet, &s.CutoffSet, &s.LinesSet, &s.UnitsSet, &s.ValueSet} {
		st.At = d.time()
		st.ID = d.str()
	}
	s.Events = d.int()
	s.LastEventAt = d.time()
	if n := d.count(); n > 0 {
		s.Texts = make([]features.Text, n)
		for i := range s.Texts {
			t := &s.Texts[i]
			t.At = d.time()
			t.ID = d.str()
			t.Text = d.str()
		}
	}
	s.MissCounted = d.bool()

	if n := d.count(); n > 0 {
		rec.Policy = make(actions.Memory, n)
		for range n {
			id := d.str()
			rec.Policy[id] = actions.RuleMemory{Episode: d.int(), Active: d.bool()}
		}
	}
	if d.bool() {
		v := d.f64()
		rec.Risk = &v
	}
	rec.ScoredAt = d.time()
	if d.bool() {
		rec.Model = &actions.ModelRef{Name: d.str(), Version: d.str(), SHA256: d.str()}
	}
	rec.Degraded = d.bool()
	rec.NextDue = d.time()
	if d.bool() {
		rec.Eval = &evalScore{Model: d.str(), Version: d.str(), Risk: d.f32(), Threshold: d.f64(), Class: d.str(), ClassVer: d.str()}
	}
	rec.Gauge = gaugeState{Warehouse: d.str(), Open: d.bool(), AtRisk: d.bool()}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left after the record", len(d.b))
	}
	rec.Flags = flagsOf(s)
	return d.err
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

type recEncoder struct{ b []byte }

func (e *recEncoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *recEncoder) int(v int) { e.b = binary.AppendVarint(e.b, int64(v)) }

func (e *recEncoder) bool(v bool) {
	var x byte
	if v {
		x = 1
	}
	e.b = append(e.b, x)
}

func (e *recEncoder) f64(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *recEncoder) f32(v float32) { e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v)) }

func (e *recEncoder) time(t time.Time) {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	e.b = binary.AppendVarint(e.b, n)
}

// recDecoder reads what recEncoder wrote; the first error sticks and zero values
// follow it.
type recDecoder struct {
	b   []byte
	err error
}

func (d *recDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *recDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errRecordShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recDecoder) int() int {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errRecordShort)
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

// count reads a length that must fit in what is left (each element takes a byte at least).
func (d *recDecoder) count() int {
	n := d.int()
	if n < 0 || n > len(d.b) {
		d.fail(fmt.Errorf("count %d out of range", n))
		return 0
	}
	return n
}

func (d *recDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errRecordShort)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *recDecoder) bool() bool {
	if len(d.b) < 1 {
		d.fail(errRecordShort)
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *recDecoder) f64() float64 {
	if len(d.b) < 8 {
		d.fail(errRecordShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *recDecoder) f32() float32 {
	if len(d.b) < 4 {
		d.fail(errRecordShort)
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	return v
}

func (d *recDecoder) time() time.Time {
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail(errRecordShort)
		return time.Time{}
	}
	d.b = d.b[k:]
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
