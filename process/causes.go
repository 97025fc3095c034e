package process

import (
	"strings"

	"github.com/orderwatch/orderwatch/features"
)

// What opens an exception may say what caused it, and the same cause then
// shows on the exceptions of other orders: a trading partner's broken EDI
// map, a WMS outage, a carrier that did not come to a warehouse, a customer's
// expired price contract. causeOf names that cause (Exception.Cause) so that
// the incidents part groups the exceptions of one cause into one incident. A
// cause is shared by the exceptions of exactly one real cause: where an event
// cannot tell a shared cause from independent trouble (an address that fails
// validation, a label that does not print, a retry that cleared), it names
// none.

// Integration systems whose errors share a cause (integration.error's
// data.system).
const (
	systemEDI = "edi"
	systemAPI = "api"
	systemWMS = "wms"
)

// Integration error codes of retries: a timeout or a late acknowledgement
// that the next attempt clears, independent of any other order's, whatever
// the system. Besides these, any code that ends in TIMEOUT.
const (
	codeWaveTimeout = "WAVE_TIMEOUT" // WMS wave release, retried
	codeAckLate     = "997_LATE"     // X12 functional acknowledgement not yet received
	codeIDoc51      = "IDOC_51"      // SAP IDoc not posted (a lock), retried
	codeDeadlock    = "DEADLOCK"     // database deadlock victim, retried
	suffixTimeout   = "TIMEOUT"
)

// Codes of carrier.status that say a pickup failed at the order's warehouse:
// the carrier's trouble there is one cause for every order it should have
// taken. The others (TRANSIT_DELAY, TRANSIT) are about one shipment.
const (
	codeNoShow     = "NO_SHOW"
	codePickupLate = "PICKUP_LATE"
	codeRolled     = "ROLLED"
)

// reasonContractExpired is the pricing.exception reason of a customer whose
// price contract expired: every order of the customer meets it until the
// contract is renewed.
const reasonContractExpired = "contract_expired"

// causeOf returns what an event that opens an exception says of its cause: the
// source system and code it reports, and the key of the cause it may share with
// exceptions of other orders (Exception.Cause), or "" when none. s is the
// order's state with the event folded in.
//
// Contract between the parts of issue 18: the deadlines part calls it when an
// event opens an exception; the causes part owns this file and fills it in.
//
// The causes, by event (README "Exceptions", cause keys):
//   - integration.error: source data.system (the envelope's source when it has
//     none), code data.code. A retry's code (a timeout, a late
//     acknowledgement: retry) has none, whatever the system. System edi or
//     api: one trading partner's broken map,
//     "integration/<system>/<code>/<customer_id>"; wms: an outage of the
//     order's warehouse, "warehouse/<warehouse>"; others (TMS address
//     validation, label print): none.
//   - carrier.status: code data.code; NO_SHOW, PICKUP_LATE and ROLLED: the
//     carrier at the order's warehouse, "carrier/<carrier>/<warehouse>" (the
//     event's data.carrier, else the order's); others: none.
//   - pricing.exception: code data.reason; contract_expired: the customer's
//     contract, "price_contract/<customer_id>"; others: none.
//   - any other: its source, no code, no cause.
//
// A cause needs each of its parts: with one unknown (an order whose
// order.created has not come, an error without a code) it is "". System and
// codes match without regard to case; the key holds the system in lower case
// and the code as sent.
func causeOf(ev *features.Event, s *features.OrderState) (source, code, cause string) {
	d := &ev.Data
	switch ev.Type {
	case features.TypeIntegrationError:
		source, code = d.System, d.Code
		if source == "" {
			source = ev.Source
		}
		switch {
		case retry(code):
		case strings.EqualFold(source, systemEDI), strings.EqualFold(source, systemAPI):
			if code != "" && s.CustomerID != "" {
				cause = "integration/" + strings.ToLower(source) + "/" + code + "/" + s.CustomerID
			}
		case strings.EqualFold(source, systemWMS):
			if s.Warehouse != "" {
				cause = "warehouse/" + s.Warehouse
			}
		}
		return source, code, cause
	case features.TypeCarrierStatus:
		code = d.Code
		carrier := d.Carrier
		if carrier == "" {
			carrier = s.Carrier
		}
		if pickupFailed(code) && carrier != "" && s.Warehouse != "" {
			cause = "carrier/" + carrier + "/" + s.Warehouse
		}
		return ev.Source, code, cause
	case features.TypePricingException:
		code = d.Reason
		if strings.EqualFold(code, reasonContractExpired) && s.CustomerID != "" {
			cause = "price_contract/" + s.CustomerID
		}
		return ev.Source, code, cause
	}
	return ev.Source, "", ""
}

// retry reports whether an integration error code is a retry's (a timeout, a
// late acknowledgement), which shares no cause.
func retry(code string) bool {
	n := len(code) - len(suffixTimeout)
	return strings.EqualFold(code, codeWaveTimeout) || strings.EqualFold(code, codeAckLate) ||
		strings.EqualFold(code, codeIDoc51) || strings.EqualFold(code, codeDeadlock) ||
		n >= 0 && strings.EqualFold(code[n:], suffixTimeout)
}

// pickupFailed reports whether a carrier.status code says a pickup failed.
func pickupFailed(code string) bool {
	return strings.EqualFold(code, codeNoShow) || strings.EqualFold(code, codePickupLate) ||
		strings.EqualFold(code, codeRolled)
}
