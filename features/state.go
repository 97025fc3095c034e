package features

import (
	"math"
	"time"
)

// Milestones an order passes, in order. Milestone values only move forward.
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

var milestoneRank = map[string]int{
	MilestoneNone: 0, MilestoneCreated: 1, MilestoneAllocated: 2, MilestoneReleased: 3,
	MilestonePicked: 4, MilestonePacked: 5, MilestoneShipped: 6, MilestoneInvoiced: 7,
}

// maxTexts bounds the free texts kept per order (notes, carrier and integration
// messages); the newest are kept.
const maxTexts = 8

// OrderState is the live state of one order, folded from its events. The zero value
// is an order about which nothing is known yet. It is not safe for concurrent use.
type OrderState struct {
	OrderID      string    `json:"order_id"`
	Known        bool      `json:"known"` // order.created has been seen
	Warehouse    string    `json:"warehouse,omitempty"`
	CustomerID   string    `json:"customer_id,omitempty"`
	CustomerTier string    `json:"customer_tier,omitempty"`
	Channel      string    `json:"channel,omitempty"`
	Carrier      string    `json:"carrier,omitempty"`
	ServiceLevel string    `json:"service_level,omitempty"`
	Region       string    `json:"region,omitempty"`
	Lines        int       `json:"lines,omitempty"`
	Units        int       `json:"units,omitempty"`
	Value        float64   `json:"value,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
	ShipCutoff   time.Time `json:"ship_cutoff,omitzero"`
	PromisedAt   time.Time `json:"promised_at,omitzero"`

	Milestone string    `json:"milestone,omitempty"`
	ShippedAt time.Time `json:"shipped_at,omitzero"`
	Cancelled bool      `json:"cancelled,omitempty"`

	OnCreditHold      bool      `json:"on_credit_hold,omitempty"`
	HoldSince         time.Time `json:"hold_since,omitzero"`
	CreditHolds       int       `json:"credit_holds,omitempty"`
	PricingOpen       bool      `json:"pricing_open,omitempty"`
	AllocationChanges int       `json:"allocation_changes,omitempty"`
	AllocationShort   bool      `json:"allocation_short,omitempty"`
	Changes           int       `json:"changes,omitempty"`
	IntegrationErrors int       `json:"integration_errors,omitempty"`
	CarrierIssues     int       `json:"carrier_issues,omitempty"`
	InvoiceFailed     bool      `json:"invoice_failed,omitempty"`

	Events      int       `json:"events"`
	LastEventAt time.Time `json:"last_event_at,omitzero"`
	Texts       []string  `json:"texts,omitempty"`
}

// Open reports whether the order is known and still to be shipped.
func (s *OrderState) Open() bool {
	return s.Known && !s.Cancelled && milestoneRank[s.Milestone] < milestoneRank[MilestoneShipped]
}

// Apply folds one order event into the state. Context events are ignored here.
func (s *OrderState) Apply(ev *Event) {
	if s.OrderID == "" {
		s.OrderID = ev.OrderID
	}
	s.Events++
	if ev.OccurredAt.After(s.LastEventAt) {
		s.LastEventAt = ev.OccurredAt
	}
	d := &ev.Data
	switch ev.Type {
	case TypeOrderCreated:
		s.Known = true
		s.CreatedAt = ev.OccurredAt
		s.Warehouse, s.CustomerID, s.CustomerTier = d.Warehouse, d.CustomerID, d.CustomerTier
		s.Channel, s.Carrier, s.ServiceLevel, s.Region = d.Channel, d.Carrier, d.ServiceLevel, d.Region
		s.Lines, s.Units, s.Value = d.Lines, d.Units, d.Value
		s.ShipCutoff = *d.ShipCutoff
		if d.PromisedAt != nil {
			s.PromisedAt = *d.PromisedAt
		}
		s.advance(MilestoneCreated)
	case TypeOrderChanged:
		s.Changes++
		if d.Warehouse != "" {
			s.Warehouse = d.Warehouse
		}
		if d.ShipCutoff != nil {
			s.ShipCutoff = *d.ShipCutoff
		}
		if d.Lines > 0 {
			s.Lines = d.Lines
		}
		if d.Units > 0 {
			s.Units = d.Units
		}
		if d.Value > 0 {
			s.Value = d.Value
		}
	case TypeCreditHold:
		if !s.OnCreditHold {
			s.OnCreditHold, s.HoldSince = true, ev.OccurredAt
			s.CreditHolds++
		}
	case TypeCreditReleased:
		s.OnCreditHold, s.HoldSince = false, time.Time{}
	case TypePricingException:
		s.PricingOpen = true
	case TypePricingApproved:
		s.PricingOpen = false
	case TypeInventoryAllocated:
		s.AllocationShort = false
		s.advance(MilestoneAllocated)
	case TypeAllocationChanged:
		s.AllocationChanges++
	case TypeAllocationShort:
		s.AllocationShort = true
	case TypePickReleased:
		s.advance(MilestoneReleased)
	case TypePickConfirmed:
		s.advance(MilestonePicked)
	case TypePackConfirmed:
		s.advance(MilestonePacked)
	case TypeShipmentConfirmed:
		s.advance(MilestoneShipped)
		if s.ShippedAt.IsZero() {
			s.ShippedAt = ev.OccurredAt
		}
	case TypeCarrierStatus:
		s.CarrierIssues++
		s.addText(d.Text)
	case TypeInvoiceCreated:
		s.InvoiceFailed = false
		s.advance(MilestoneInvoiced)
	case TypeInvoiceFailed:
		s.InvoiceFailed = true
		s.addText(d.Text)
	case TypeIntegrationError:
		s.IntegrationErrors++
		s.addText(d.Text)
	case TypeNoteAdded:
		s.addText(d.Text)
	case TypeOrderCancelled:
		s.Cancelled = true
	}
}

func (s *OrderState) advance(m string) {
	if milestoneRank[m] > milestoneRank[s.Milestone] {
		s.Milestone = m
	}
}

func (s *OrderState) addText(t string) {
	if t == "" {
		return
	}
	if len(s.Texts) == maxTexts {
		copy(s.Texts, s.Texts[1:])
		s.Texts = s.Texts[:maxTexts-1]
	}
	s.Texts = append(s.Texts, t)
}

var tierValue = map[string]float32{"standard": 1, "silver": 2, "gold": 3, "platinum": 4}

// Build writes the order's feature vector (spec SpecVersion) as of now into v.
func (s *OrderState) Build(now time.Time, v *Vector) {
	*v = Vector{}
	v[FMinutesToCutoff] = clamp(float32(s.ShipCutoff.Sub(now).Minutes()), -1440, 10080)
	v[FHoursSinceCreated] = clamp(float32(now.Sub(s.CreatedAt).Hours()), 0, 720)
	v[FOnCreditHold] = flag(s.OnCreditHold)
	v[FCreditHolds] = float32(s.CreditHolds)
	v[FPricingOpen] = flag(s.PricingOpen)
	v[FAllocationChanges] = float32(s.AllocationChanges)
	v[FAllocationShort] = flag(s.AllocationShort)
	rank := milestoneRank[s.Milestone]
	v[FPicked] = flag(rank >= milestoneRank[MilestonePicked])
	v[FPacked] = flag(rank >= milestoneRank[MilestonePacked])
	v[FIntegrationErrors] = float32(s.IntegrationErrors)
	v[FCarrierIssues] = float32(s.CarrierIssues)
	v[FCustomerTier] = tierValue[s.CustomerTier]
	v[FLines] = float32(s.Lines)
	v[FLogValue] = float32(math.Log1p(math.Max(s.Value, 0)))
}

func flag(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

func clamp(x, lo, hi float32) float32 { return min(max(x, lo), hi) }
