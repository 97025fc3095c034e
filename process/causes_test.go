package process

import (
	"testing"

	"github.com/orderwatch/orderwatch/features"
)

// TestCauseOf: the cause an event names is shared by the exceptions of one
// real cause (one partner's map, one warehouse's WMS, one carrier at one
// warehouse, one customer's contract) and by no independent ones.
func TestCauseOf(t *testing.T) {
	order := func(customer, warehouse, carrier string) *features.OrderState {
		return &features.OrderState{OrderID: "SO-1", Known: true, CustomerID: customer, Warehouse: warehouse, Carrier: carrier}
	}
	s := order("C-0042", "DAL", "ODFL")
	ev := func(typ, source string, d features.EventData) *features.Event {
		return &features.Event{ID: "e-1", Type: typ, OrderID: "SO-1", Source: source, Schema: 1, Data: d}
	}
	cases := []struct {
		name                string
		ev                  *features.Event
		s                   *features.OrderState
		source, code, cause string
	}{
		{"edi mapping failure", ev("integration.error", "edi", features.EventData{System: "edi", Code: "MAP_UOM", Text: "850 map fail"}), s,
			"edi", "MAP_UOM", "integration/edi/MAP_UOM/C-0042"},
		{"the same code of another customer is another cause", ev("integration.error", "edi", features.EventData{System: "edi", Code: "MAP_UOM"}), order("C-0007", "DAL", "ODFL"),
			"edi", "MAP_UOM", "integration/edi/MAP_UOM/C-0007"},
		{"api mapping failure", ev("integration.error", "api", features.EventData{System: "api", Code: "SCHEMA_422"}), s,
			"api", "SCHEMA_422", "integration/api/SCHEMA_422/C-0042"},
		{"system in upper case", ev("integration.error", "gateway", features.EventData{System: "EDI", Code: "XREF_ITEM"}), s,
			"EDI", "XREF_ITEM", "integration/edi/XREF_ITEM/C-0042"},
		{"system from the envelope", ev("integration.error", "edi", features.EventData{Code: "SEG_MISSING"}), s,
			"edi", "SEG_MISSING", "integration/edi/SEG_MISSING/C-0042"},
		{"edi without a code", ev("integration.error", "edi", features.EventData{System: "edi"}), s,
			"edi", "", ""},
		{"edi before order.created", ev("integration.error", "edi", features.EventData{System: "edi", Code: "MAP_UOM"}), &features.OrderState{OrderID: "SO-1"},
			"edi", "MAP_UOM", ""},
		{"wms outage", ev("integration.error", "wms", features.EventData{System: "wms", Code: "WMS_CONN"}), s,
			"wms", "WMS_CONN", "warehouse/DAL"},
		{"wms of another warehouse", ev("integration.error", "wms", features.EventData{System: "wms", Code: "RF_OFFLINE"}), order("C-0042", "ATL", "ODFL"),
			"wms", "RF_OFFLINE", "warehouse/ATL"},
		{"wms retry", ev("integration.error", "wms", features.EventData{System: "wms", Code: "WAVE_TIMEOUT", Text: "wave release timeout after 30s, retrying"}), s,
			"wms", "WAVE_TIMEOUT", ""},
		{"edi acknowledgement late", ev("integration.error", "edi", features.EventData{System: "edi", Code: "997_LATE"}), s,
			"edi", "997_LATE", ""},
		{"api timeout", ev("integration.error", "api", features.EventData{System: "api", Code: "gateway_timeout"}), s,
			"api", "gateway_timeout", ""},
		{"tms address validation", ev("integration.error", "tms", features.EventData{System: "tms", Code: "AV-102"}), s,
			"tms", "AV-102", ""},
		{"label print", ev("integration.error", "tms", features.EventData{System: "tms", Code: "LABEL_FAIL"}), s,
			"tms", "LABEL_FAIL", ""},
		{"erp retry", ev("integration.error", "erp", features.EventData{System: "erp", Code: "DEADLOCK"}), s,
			"erp", "DEADLOCK", ""},
		{"carrier no-show", ev("carrier.status", "tms", features.EventData{Carrier: "ODFL", Code: "NO_SHOW", Text: "driver did not show"}), s,
			"tms", "NO_SHOW", "carrier/ODFL/DAL"},
		{"pickup late, carrier of the order", ev("carrier.status", "tms", features.EventData{Code: "PICKUP_LATE"}), s,
			"tms", "PICKUP_LATE", "carrier/ODFL/DAL"},
		{"rolled, lower case", ev("carrier.status", "tms", features.EventData{Carrier: "XPO", Code: "rolled"}), s,
			"tms", "rolled", "carrier/XPO/DAL"},
		{"the same carrier at another warehouse", ev("carrier.status", "tms", features.EventData{Carrier: "ODFL", Code: "NO_SHOW"}), order("C-1", "PHX", "ODFL"),
			"tms", "NO_SHOW", "carrier/ODFL/PHX"},
		{"transit delay", ev("carrier.status", "tms", features.EventData{Carrier: "ODFL", Code: "TRANSIT_DELAY"}), s,
			"tms", "TRANSIT_DELAY", ""},
		{"tracking", ev("carrier.status", "tms", features.EventData{Carrier: "ODFL", Code: "TRANSIT"}), s,
			"tms", "TRANSIT", ""},
		{"carrier message without a code", ev("carrier.status", "tms", features.EventData{Carrier: "ODFL", Text: "driver delayed"}), s,
			"tms", "", ""},
		{"contract expired", ev("pricing.exception", "erp", features.EventData{Reason: "contract_expired"}), s,
			"erp", "contract_expired", "price_contract/C-0042"},
		{"other pricing reason", ev("pricing.exception", "erp", features.EventData{Reason: "below_floor"}), s,
			"erp", "below_floor", ""},
		{"credit hold", ev("credit.hold", "finance", features.EventData{Reason: "over_limit"}), s,
			"finance", "", ""},
		{"note", ev("note.added", "cs", features.EventData{Text: "customer called"}), s,
			"cs", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			source, code, cause := causeOf(c.ev, c.s)
			if source != c.source || code != c.code || cause != c.cause {
				t.Errorf("causeOf = (%q, %q, %q), want (%q, %q, %q)", source, code, cause, c.source, c.code, c.cause)
			}
		})
	}
}
