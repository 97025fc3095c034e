package mapping

import "github.com/orderwatch/orderwatch/features"

// kind is what a data field of schema 1 holds, hence what its expression must give.
type kind uint8

const (
	kindString kind = iota // a CEL string
	kindInt                // a CEL int or uint, or a double with no fraction
	kindFloat              // a CEL double, int or uint
	kindTime               // a CEL timestamp or an RFC 3339 string
	kindBool               // a CEL bool
)

func (k kind) String() string {
	return [...]string{"a string", "an integer", "a number", "a timestamp or RFC 3339 string", "a bool"}[k]
}

// dataKinds are the data fields of schema 1 (features.EventData, by JSON name).
var dataKinds = map[string]kind{
	"warehouse": kindString, "ship_cutoff": kindTime, "customer_id": kindString,
	"customer_tier": kindString, "channel": kindString, "lines": kindInt, "units": kindInt,
	"value": kindFloat, "carrier": kindString, "service_level": kindString,
	"promised_at": kindTime, "region": kindString, "change": kindString, "reason": kindString,
	"short_units": kindInt, "text": kindString, "system": kindString, "code": kindString,
	"queue": kindInt, "capacity": kindInt, "outage": kindBool, "timezone": kindString,
	"on_time_share": kindFloat, "delay_minutes": kindFloat,
}

// typeFields are the data fields each type takes, as the README's event table lists
// them; a mapping that sets another is refused at compile time, since the fold would
// ignore it.
var typeFields = func() map[string][]string {
	orderCreated := []string{"warehouse", "ship_cutoff", "customer_id", "customer_tier", "channel",
		"lines", "units", "value", "carrier", "service_level", "promised_at", "region"}
	m := map[string][]string{
		features.TypeOrderCreated:       orderCreated,
		features.TypeOrderChanged:       {"change", "warehouse", "ship_cutoff", "lines", "units", "value"},
		features.TypeCreditHold:         {"reason"},
		features.TypePricingException:   {"reason"},
		features.TypeOrderCancelled:     {"reason"},
		features.TypeAllocationChanged:  {"short_units", "warehouse"},
		features.TypeAllocationShort:    {"short_units"},
		features.TypeCarrierStatus:      {"code", "text"},
		features.TypeNoteAdded:          {"text"},
		features.TypeInvoiceFailed:      {"text"},
		features.TypeIntegrationError:   {"system", "code", "text"},
		features.TypeWarehouseLoad:      {"warehouse", "queue", "capacity", "outage", "timezone"},
		features.TypeCarrierPerformance: {"carrier", "on_time_share", "delay_minutes"},
	}
	for _, t := range features.Types {
		if _, ok := m[t]; !ok {
			m[t] = nil // a milestone: the envelope only
		}
	}
	return m
}()

// requiredFields are the data fields a type cannot do without (features.Validate).
var requiredFields = map[string][]string{
	features.TypeOrderCreated:       {"warehouse", "ship_cutoff"},
	features.TypeWarehouseLoad:      {"warehouse"},
	features.TypeCarrierPerformance: {"carrier"},
}
