// Package features turns canonical order lifecycle events into per-order state and
// the feature vectors the models score. It owns the event schema (schema 1), its
// decoding and validation, the fold into OrderState and the feature spec. It is pure
// Go; the pipeline, replay and the simulator's tests import it.
package features

import (
	"time"
)

// SchemaVersion is the only event schema version this build accepts.
const SchemaVersion = 1

// MaxEventBytes is the largest encoded event accepted; larger ones are dead-lettered
// with ReasonOversize.
const MaxEventBytes = 64 << 10

// Event is one canonical order lifecycle event (schema 1). Context events
// (warehouse.load, carrier.performance) carry no OrderID.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OrderID    string    `json:"order_id,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
	Source     string    `json:"source,omitempty"`
	Actor      string    `json:"actor,omitempty"`
	Schema     int       `json:"schema"`
	Data       EventData `json:"data"`
}

// EventData is the union of the type-specific fields of every event type. A field
// absent from the JSON keeps its zero value; unknown fields are ignored. The README
// documents which type uses which field.
type EventData struct {
	// order.created (warehouse and ship_cutoff required), order.changed
	Warehouse    string     `json:"warehouse,omitempty"`
	ShipCutoff   *time.Time `json:"ship_cutoff,omitempty"`
	CustomerID   string     `json:"customer_id,omitempty"`
	CustomerTier string     `json:"customer_tier,omitempty"`
	Channel      string     `json:"channel,omitempty"`
	Lines        int        `json:"lines,omitempty"`
	Units        int        `json:"units,omitempty"`
	Value        float64    `json:"value,omitempty"`
	Carrier      string     `json:"carrier,omitempty"`
	ServiceLevel string     `json:"service_level,omitempty"`
	PromisedAt   *time.Time `json:"promised_at,omitempty"`
	Region       string     `json:"region,omitempty"`

	// order.changed: "substitution", "quantity" or "address"; holds, exceptions,
	// cancellations: a short reason code.
	Change string `json:"change,omitempty"`
	Reason string `json:"reason,omitempty"`

	// allocation.short, allocation.changed
	ShortUnits int `json:"short_units,omitempty"`

	// carrier.status, integration.error, note.added, invoice.failed: free text.
	Text   string `json:"text,omitempty"`
	System string `json:"system,omitempty"`
	Code   string `json:"code,omitempty"`

	// warehouse.load
	Queue    int  `json:"queue,omitempty"`
	Capacity int  `json:"capacity,omitempty"`
	Outage   bool `json:"outage,omitempty"`
	// Timezone is the warehouse's IANA time zone (America/Chicago); the local hour
	// and weekday features use it.
	Timezone string `json:"timezone,omitempty"`

	// carrier.performance
	OnTimeShare  *float64 `json:"on_time_share,omitempty"`
	DelayMinutes float64  `json:"delay_minutes,omitempty"`
}

// Event types of the taxonomy (schema 1).
const (
	TypeOrderCreated       = "order.created"
	TypeOrderChanged       = "order.changed"
	TypeCreditHold         = "credit.hold"
	TypeCreditReleased     = "credit.released"
	TypePricingException   = "pricing.exception"
	TypePricingApproved    = "pricing.approved"
	TypeInventoryAllocated = "inventory.allocated"
	TypeAllocationChanged  = "allocation.changed"
	TypeAllocationShort    = "allocation.short"
	TypePickReleased       = "pick.released"
	TypePickConfirmed      = "pick.confirmed"
	TypePackConfirmed      = "pack.confirmed"
	TypeShipmentConfirmed  = "shipment.confirmed"
	TypeCarrierStatus      = "carrier.status"
	TypeInvoiceCreated     = "invoice.created"
	TypeInvoiceFailed      = "invoice.failed"
	TypeIntegrationError   = "integration.error"
	TypeNoteAdded          = "note.added"
	TypeOrderCancelled     = "order.cancelled"
	TypeWarehouseLoad      = "warehouse.load"
	TypeCarrierPerformance = "carrier.performance"
)

// Types lists every known event type in a fixed order; metrics label values come
// from this list so their cardinality is bounded.
var Types = []string{
	TypeOrderCreated, TypeOrderChanged, TypeCreditHold, TypeCreditReleased,
	TypePricingException, TypePricingApproved, TypeInventoryAllocated,
	TypeAllocationChanged, TypeAllocationShort, TypePickReleased, TypePickConfirmed,
	TypePackConfirmed, TypeShipmentConfirmed, TypeCarrierStatus, TypeInvoiceCreated,
	TypeInvoiceFailed, TypeIntegrationError, TypeNoteAdded, TypeOrderCancelled,
	TypeWarehouseLoad, TypeCarrierPerformance,
}

var knownTypes = func() map[string]bool {
	m := make(map[string]bool, len(Types))
	for _, t := range Types {
		m[t] = true
	}
	return m
}()

// KnownType reports whether t is a type of the taxonomy.
func KnownType(t string) bool { return knownTypes[t] }

// IsContext reports whether events of type t describe the network (a warehouse or a
// carrier) rather than one order.
func IsContext(t string) bool {
	return t == TypeWarehouseLoad || t == TypeCarrierPerformance
}
