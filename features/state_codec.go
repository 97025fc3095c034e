package features

import (
	"fmt"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// The binary form of an OrderState, as the pipeline stores it inside its order
// record: the fields in the order of AppendBinary, each as binrec writes its kind
// (strings with their length, integers as varints, times as Unix nanoseconds in
// UTC). A Stamp is its time then its id; Texts are their count, then each text's
// time, id and text. It is part of the stored format of order records: a field
// added here needs a new form of the record, or old records no longer read.

// AppendBinary appends the binary form of s to b. It never fails; it returns an
// error to be an encoding.BinaryAppender.
func (s *OrderState) AppendBinary(b []byte) ([]byte, error) {
	b = binrec.AppendString(b, s.OrderID)
	b = binrec.AppendBool(b, s.Known)
	b = binrec.AppendString(b, s.Warehouse)
	b = binrec.AppendString(b, s.CustomerID)
	b = binrec.AppendString(b, s.CustomerTier)
	b = binrec.AppendString(b, s.Channel)
	b = binrec.AppendString(b, s.Carrier)
	b = binrec.AppendString(b, s.ServiceLevel)
	b = binrec.AppendBool(b, s.Expedited)
	b = binrec.AppendString(b, s.Region)
	b = binrec.AppendInt(b, s.Lines)
	b = binrec.AppendInt(b, s.Units)
	b = binrec.AppendFloat64(b, s.Value)
	b = binrec.AppendTime(b, s.CreatedAt)
	b = binrec.AppendTime(b, s.ShipCutoff)
	b = binrec.AppendTime(b, s.PromisedAt)
	b = binrec.AppendString(b, s.Milestone)
	b = binrec.AppendTime(b, s.MilestoneAt)
	b = binrec.AppendTime(b, s.ShippedAt)
	b = binrec.AppendBool(b, s.Cancelled)
	b = binrec.AppendInt(b, s.CreditHolds)
	b = binrec.AppendInt(b, s.AllocationChanges)
	b = binrec.AppendInt(b, s.Changes)
	b = binrec.AppendBool(b, s.AddressChanged)
	b = binrec.AppendInt(b, s.IntegrationErrors)
	b = binrec.AppendInt(b, s.CarrierIssues)
	for _, st := range s.stamps() {
		b = binrec.AppendTime(b, st.At)
		b = binrec.AppendString(b, st.ID)
	}
	b = binrec.AppendInt(b, s.Events)
	b = binrec.AppendTime(b, s.LastEventAt)
	b = binrec.AppendInt(b, len(s.Texts))
	for i := range s.Texts {
		t := &s.Texts[i]
		b = binrec.AppendTime(b, t.At)
		b = binrec.AppendString(b, t.ID)
		b = binrec.AppendString(b, t.Text)
	}
	b = binrec.AppendBool(b, s.MissCounted)
	return b, nil
}

// DecodeBinary sets s, which must be zero, to the state AppendBinary wrote at the
// front of b, and returns the bytes that follow it. A state that ends early or
// holds a damaged count is an error.
func (s *OrderState) DecodeBinary(b []byte) (rest []byte, err error) {
	d := binrec.NewDecoder(b)
	s.OrderID = d.Str()
	s.Known = d.Bool()
	s.Warehouse = d.Str()
	s.CustomerID = d.Str()
	s.CustomerTier = d.Str()
	s.Channel = d.Str()
	s.Carrier = d.Str()
	s.ServiceLevel = d.Str()
	s.Expedited = d.Bool()
	s.Region = d.Str()
	s.Lines = d.Int()
	s.Units = d.Int()
	s.Value = d.Float64()
	s.CreatedAt = d.Time()
	s.ShipCutoff = d.Time()
	s.PromisedAt = d.Time()
	s.Milestone = d.Str()
	s.MilestoneAt = d.Time()
	s.ShippedAt = d.Time()
	s.Cancelled = d.Bool()
	s.CreditHolds = d.Int()
	s.AllocationChanges = d.Int()
	s.Changes = d.Int()
	s.AddressChanged = d.Bool()
	s.IntegrationErrors = d.Int()
	s.CarrierIssues = d.Int()
	for _, st := range s.stamps() {
		st.At = d.Time()
		st.ID = d.Str()
	}
	s.Events = d.Int()
	s.LastEventAt = d.Time()
	if n := d.Count(); n > 0 {
		s.Texts = make([]Text, n)
		for i := range s.Texts {
			t := &s.Texts[i]
			t.At = d.Time()
			t.ID = d.Str()
			t.Text = d.Str()
		}
	}
	s.MissCounted = d.Bool()
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("features: decode order state: %w", err)
	}
	return d.Rest(), nil
}

// stamps returns the state's stamps in the order of its binary form.
func (s *OrderState) stamps() [13]*Stamp {
	return [...]*Stamp{&s.HoldAt, &s.ReleaseAt, &s.PricingAt, &s.ApprovedAt, &s.ShortAt,
		&s.AllocAt, &s.InvFailAt, &s.InvoiceAt, &s.WarehouseSet, &s.CutoffSet, &s.LinesSet, &s.UnitsSet, &s.ValueSet}
}
