package features

import (
	"slices"
	"strings"
	"time"
)

// Milestones an order passes, in order. An order's milestone only moves forward.
const (
	MilestoneNone      = ""
	MilestoneCreated   = "created"
	MilestoneAllocated = "allocated"
	MilestoneReleased  = "pick_released"
	MilestonePicked    = "picked"
	MilestonePacked    = "packed"
	MilestoneShipped   = "shipped"
	MilestoneInvoiced  = "invoiced"
)

// Milestones lists the milestones in order; a milestone's index is its rank.
var Milestones = []string{MilestoneNone, MilestoneCreated, MilestoneAllocated, MilestoneReleased,
	MilestonePicked, MilestonePacked, MilestoneShipped, MilestoneInvoiced}

func milestoneRank(m string) int { return max(slices.Index(Milestones, m), 0) }

// maxTexts bounds the free texts kept per order (notes, carrier and integration
// messages); the newest by event time are kept.
const maxTexts = 8

// OrderState is the live state of one order, folded from its events.
//
// The fold does not depend on arrival order: every field is either a count, a
// maximum or minimum, or the value of the latest event by event time (ties broken
// by event id). So an event that arrives late is applied by its event time without
// refolding, and applying the same set of events in any order gives the same state.
// Applying an event twice is not idempotent: the pipeline drops duplicates by id
// before the fold. The zero value is an order about which nothing is known yet. An
// OrderState is not safe for concurrent use.
type OrderState struct {
	OrderID      string    `json:"order_id"`
	Known        bool      `json:"known"` // order.created has been seen
	Warehouse    string    `json:"warehouse,omitempty"`
	CustomerID   string    `json:"customer_id,omitempty"`
	CustomerTier string    `json:"customer_tier,omitempty"`
	Channel      string    `json:"channel,omitempty"`
	Carrier      string    `json:"carrier,omitempty"`
	ServiceLevel string    `json:"service_level,omitempty"`
	Expedited    bool      `json:"expedited,omitempty"`
	Region       string    `json:"region,omitempty"`
	Lines        int       `json:"lines,omitempty"`
	Units        int       `json:"units,omitempty"`
	Value        float64   `json:"value,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	ShipCutoff   time.Time `json:"ship_cutoff,omitzero"`
	PromisedAt   time.Time `json:"promised_at,omitzero"`

	Milestone   string    `json:"milestone,omitempty"`
	MilestoneAt time.Time `json:"milestone_at,omitzero"` // when the current milestone was reached
	ShippedAt   time.Time `json:"shipped_at,omitzero"`
	Cancelled   bool      `json:"cancelled,omitempty"`

	CreditHolds       int  `json:"credit_holds,omitempty"`
	AllocationChanges int  `json:"allocation_changes,omitempty"`
	Changes           int  `json:"changes,omitempty"`
	AddressChanged    bool `json:"address_changed,omitempty"`
	IntegrationErrors int  `json:"integration_errors,omitempty"`
	CarrierIssues     int  `json:"carrier_issues,omitempty"`

	// Open/close pairs: the condition holds while its latest opening event is later
	// than its latest closing one.
	HoldAt     Stamp `json:"hold_at,omitzero"`
	ReleaseAt  Stamp `json:"release_at,omitzero"`
	PricingAt  Stamp `json:"pricing_at,omitzero"`
	ApprovedAt Stamp `json:"approved_at,omitzero"`
	ShortAt    Stamp `json:"short_at,omitzero"`
	AllocAt    Stamp `json:"alloc_at,omitzero"`
	InvFailAt  Stamp `json:"inv_fail_at,omitzero"`
	InvoiceAt  Stamp `json:"invoice_at,omitzero"`

	// Last-writer-wins stamps of fields that order.changed may overwrite.
	WarehouseSet Stamp `json:"warehouse_set,omitzero"`
	CutoffSet    Stamp `json:"cutoff_set,omitzero"`
	LinesSet     Stamp `json:"lines_set,omitzero"`
	UnitsSet     Stamp `json:"units_set,omitzero"`
	ValueSet     Stamp `json:"value_set,omitzero"`

	Events      int       `json:"events"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	Texts       []Text    `json:"texts,omitempty"`

	// MissCounted is set once the order's miss (or timely shipment) has been counted
	// in its customer's history.
	MissCounted bool `json:"miss_counted,omitempty"`
}

// Stamp orders events: by event time, then by id, so equal times still have one
// deterministic winner.
type Stamp struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// IsZero reports whether no event set the stamp.
func (s Stamp) IsZero() bool { return s.At.IsZero() && s.ID == "" }

// After reports whether s is later than o.
func (s Stamp) After(o Stamp) bool {
	if c := s.At.Compare(o.At); c != 0 {
		return c > 0
	}
	return s.ID > o.ID
}

// Text is a free text of an order with its event time.
type Text struct {
	At   time.Time `json:"at"`
	ID   string    `json:"id"`
	Text string    `json:"text"`
}

// OnCreditHold reports whether the latest credit event is a hold.
func (s *OrderState) OnCreditHold() bool { return s.HoldAt.After(s.ReleaseAt) }

// PricingOpen reports whether a pricing exception waits for approval.
func (s *OrderState) PricingOpen() bool { return s.PricingAt.After(s.ApprovedAt) }

// AllocationShort reports whether the latest allocation event is a shortfall.
func (s *OrderState) AllocationShort() bool { return s.ShortAt.After(s.AllocAt) }

// InvoiceFailed reports whether the latest invoicing event is a failure.
func (s *OrderState) InvoiceFailed() bool { return s.InvFailAt.After(s.InvoiceAt) }

// Open reports whether the order is known and still to be shipped.
func (s *OrderState) Open() bool {
	return s.Known && !s.Cancelled && milestoneRank(s.Milestone) < milestoneRank(MilestoneShipped)
}

// Closed reports whether nothing more is expected of the order's shipping: it was
// shipped or cancelled.
func (s *OrderState) Closed() bool {
	return s.Cancelled || milestoneRank(s.Milestone) >= milestoneRank(MilestoneShipped)
}

// Apply folds one order event into the state. Context events are not order events
// and are ignored here (see Context.Apply).
func (s *OrderState) Apply(ev *Event) {
	if s.OrderID == "" {
		s.OrderID = ev.OrderID
	}
	s.Events++
	if ev.OccurredAt.After(s.LastEventAt) {
		s.LastEventAt = ev.OccurredAt
	}
	st := Stamp{ev.OccurredAt, ev.ID}
	d := &ev.Data
	switch ev.Type {
	case TypeOrderCreated:
		if s.Known && !s.CreatedAt.After(ev.OccurredAt) {
			break // the earliest order.created wins
		}
		s.Known, s.CreatedAt = true, ev.OccurredAt
		s.CustomerID, s.CustomerTier, s.Channel = d.CustomerID, d.CustomerTier, d.Channel
		s.Carrier, s.ServiceLevel, s.Region = d.Carrier, d.ServiceLevel, d.Region
		s.Expedited = Expedited(d.ServiceLevel)
		if d.PromisedAt != nil {
			s.PromisedAt = *d.PromisedAt
		}
		// Fields order.changed may overwrite are set as the oldest writes.
		created := Stamp{ID: ""}
		s.setWarehouse(created, d.Warehouse)
		s.setCutoff(created, *d.ShipCutoff)
		s.setSize(created, d, true)
		s.advance(MilestoneCreated, ev.OccurredAt)
	case TypeOrderChanged:
		s.Changes++
		if d.Change == "address" {
			s.AddressChanged = true
		}
		if d.Warehouse != "" {
			s.setWarehouse(st, d.Warehouse)
		}
		if d.ShipCutoff != nil {
			s.setCutoff(st, *d.ShipCutoff)
		}
		s.setSize(st, d, false)
	case TypeCreditHold:
		s.CreditHolds++
		later(&s.HoldAt, st)
	case TypeCreditReleased:
		later(&s.ReleaseAt, st)
	case TypePricingException:
		later(&s.PricingAt, st)
	case TypePricingApproved:
		later(&s.ApprovedAt, st)
	case TypeInventoryAllocated:
		later(&s.AllocAt, st)
		s.advance(MilestoneAllocated, ev.OccurredAt)
	case TypeAllocationChanged:
		s.AllocationChanges++
		later(&s.AllocAt, st)
		if d.Warehouse != "" {
			s.setWarehouse(st, d.Warehouse)
		}
	case TypeAllocationShort:
		later(&s.ShortAt, st)
	case TypePickReleased:
		s.advance(MilestoneReleased, ev.OccurredAt)
	case TypePickConfirmed:
		s.advance(MilestonePicked, ev.OccurredAt)
	case TypePackConfirmed:
		s.advance(MilestonePacked, ev.OccurredAt)
	case TypeShipmentConfirmed:
		s.advance(MilestoneShipped, ev.OccurredAt)
		if s.ShippedAt.IsZero() || ev.OccurredAt.Before(s.ShippedAt) {
			s.ShippedAt = ev.OccurredAt
		}
	case TypeCarrierStatus:
		s.CarrierIssues++
		s.addText(ev, d.Text)
	case TypeInvoiceCreated:
		later(&s.InvoiceAt, st)
		s.advance(MilestoneInvoiced, ev.OccurredAt)
	case TypeInvoiceFailed:
		later(&s.InvFailAt, st)
		s.addText(ev, d.Text)
	case TypeIntegrationError:
		s.IntegrationErrors++
		s.addText(ev, d.Text)
	case TypeNoteAdded:
		s.addText(ev, d.Text)
	case TypeOrderCancelled:
		s.Cancelled = true
	}
}

func later(dst *Stamp, st Stamp) {
	if st.After(*dst) {
		*dst = st
	}
}

func (s *OrderState) setWarehouse(st Stamp, w string) { lww(&s.Warehouse, &s.WarehouseSet, w, st) }

func (s *OrderState) setCutoff(st Stamp, c time.Time) { lww(&s.ShipCutoff, &s.CutoffSet, c, st) }

// setSize sets lines, units and value, each last-writer-wins; order.created
// writes all three (as the oldest write), order.changed only those it carries.
func (s *OrderState) setSize(st Stamp, d *EventData, all bool) {
	if all || d.Lines > 0 {
		lww(&s.Lines, &s.LinesSet, d.Lines, st)
	}
	if all || d.Units > 0 {
		lww(&s.Units, &s.UnitsSet, d.Units, st)
	}
	if all || d.Value > 0 {
		lww(&s.Value, &s.ValueSet, d.Value, st)
	}
}

// lww writes v into dst when st is not older than the stamp of the current value,
// or when nothing was written yet.
func lww[T comparable](dst *T, set *Stamp, v T, st Stamp) {
	var zero T
	if !set.After(st) || *dst == zero {
		*dst, *set = v, st
	}
}

// advance moves the milestone forward. Reaching the same milestone again keeps the
// earliest time; a lower milestone arriving late changes nothing.
func (s *OrderState) advance(m string, at time.Time) {
	switch r, cur := milestoneRank(m), milestoneRank(s.Milestone); {
	case r > cur:
		s.Milestone, s.MilestoneAt = m, at
	case r == cur && at.Before(s.MilestoneAt):
		s.MilestoneAt = at
	}
}

// addText keeps the newest maxTexts texts, sorted by event time, each cut to
// MaxTextBytes.
func (s *OrderState) addText(ev *Event, text string) {
	if text == "" {
		return
	}
	t := Text{At: ev.OccurredAt, ID: ev.ID, Text: cutText(text)}
	i, _ := slices.BinarySearchFunc(s.Texts, t, func(a, b Text) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s.Texts = slices.Insert(s.Texts, i, t)
	if len(s.Texts) > maxTexts {
		s.Texts = slices.Delete(s.Texts, 0, len(s.Texts)-maxTexts)
	}
}

// TextValues returns the order's texts, oldest first.
func (s *OrderState) TextValues(dst []string) []string {
	for _, t := range s.Texts {
		dst = append(dst, t.Text)
	}
	return dst
}

// SeenException names the exception class the order's own events show, for judging
// the exception_class model once the outcome is known: the first that applies of
// credit, pricing, inventory, address, edi_mapping, carrier and invoicing, else
// none. Warehouse capacity shows in the context, not in the order's events, so it
// is never named here.
func (s *OrderState) SeenException() string {
	switch {
	case s.CreditHolds > 0:
		return ExceptionCredit
	case !s.PricingAt.IsZero():
		return ExceptionPricing
	case !s.ShortAt.IsZero() || s.AllocationChanges > 0:
		return ExceptionInventory
	case s.AddressChanged:
		return ExceptionAddress
	case s.IntegrationErrors > 0:
		return ExceptionEDIMapping
	case s.CarrierIssues > 0:
		return ExceptionCarrier
	case !s.InvFailAt.IsZero():
		return ExceptionInvoicing
	}
	return ExceptionNone
}
