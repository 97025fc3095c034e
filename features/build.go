package features

import (
	"math"
	"strings"
	"time"
)

// defaultOnTime is assumed for a carrier with no performance reported yet.
const defaultOnTime = 0.95

var tierValue = map[string]float32{"standard": 1, "silver": 2, "gold": 3, "platinum": 4}

// CustomerTiers are the customer tiers the features know (the keys of
// tierValue), lowest first: the values the API filters by.
var CustomerTiers = []string{"standard", "silver", "gold", "platinum"}

// Build writes the order's feature vector (spec SpecVersion) as of moment into v.
// It reads only s and ctx, so the same state and context give the same vector,
// live or in replay. ctx may be nil (no context known). Every value is finite and
// within its feature's Bounds, whatever s and ctx hold.
func (s *OrderState) Build(moment time.Time, ctx *Context, v *Vector) {
	*v = Vector{}
	v[FMinutesToCutoff] = clamp(minutes(s.ShipCutoff.Sub(moment)), -1440, 10080)
	v[FHoursSinceCreated] = clamp(float32(moment.Sub(s.CreatedAt).Hours()), 0, 720)
	v[FMilestoneRank] = float32(milestoneRank(s.Milestone))
	v[FMinutesInMilestone] = clamp(minutes(moment.Sub(s.MilestoneAt)), 0, 10080)
	if s.OnCreditHold() {
		v[FOnCreditHold] = 1
		v[FHoldMinutes] = clamp(minutes(moment.Sub(s.HoldAt.At)), 0, 10080)
	}
	v[FCreditHolds] = float32(s.CreditHolds)
	v[FPricingOpen] = flag(s.PricingOpen())
	v[FAllocationChanges] = float32(s.AllocationChanges)
	v[FAllocationShort] = flag(s.AllocationShort())
	v[FOrderChanges] = float32(s.Changes)
	v[FAddressChanged] = flag(s.AddressChanged)
	v[FIntegrationErrors] = float32(s.IntegrationErrors)
	v[FCarrierIssues] = float32(s.CarrierIssues)
	v[FInvoiceFailed] = flag(s.InvoiceFailed())
	v[FCustomerTier] = tierValue[s.CustomerTier]
	switch s.Channel {
	case "edi":
		v[FChannelEDI] = 1
	case "portal":
		v[FChannelPortal] = 1
	case "ecommerce":
		v[FChannelEcommerce] = 1
	case "customer_service":
		v[FChannelCS] = 1
	}
	v[FExpedited] = flag(s.Expedited)
	v[FLines] = float32(s.Lines)
	v[FLogUnits] = float32(math.Log1p(float64(max(s.Units, 0))))
	v[FLogValue] = float32(math.Log1p(math.Max(s.Value, 0)))

	v[FCarrierOnTime] = defaultOnTime
	loc := time.UTC
	if ctx != nil {
		if w := ctx.Warehouses[s.Warehouse]; w != nil {
			if w.Capacity > 0 {
				v[FWarehouseLoadRatio] = clamp(float32(w.Queue/w.Capacity), 0, 100)
				v[FWarehousePickRatio] = clamp(w.Picks.Sum(moment)/float32(w.Capacity), 0, 100)
			}
			v[FWarehouseOutage] = flag(w.Outage)
			loc = w.location()
		}
		if r := ctx.Carriers[s.Carrier]; r != nil {
			v[FCarrierOnTime] = float32(r.OnTime)
			v[FCarrierDelayMinutes] = clamp(float32(r.Delay), 0, 10080)
		}
		if u := ctx.Customers[s.CustomerID]; u != nil {
			v[FCustomerOrders] = float32(u.Closed)
			// Smoothed toward a 10% prior so a new customer's one miss is not 100%.
			v[FCustomerMissRate] = float32((float64(u.Missed) + 1) / (float64(u.Closed) + 10))
			v[FCustomerHolds] = float32(u.Holds)
		} else {
			v[FCustomerMissRate] = 0.1
		}
	}
	local := moment.In(loc)
	v[FLocalHour] = float32(local.Hour()) + float32(local.Minute())/60
	v[FLocalWeekday] = float32((int(local.Weekday()) + 6) % 7) // Monday is 0
	v.clampToBounds()
}

// clampToBounds puts every value of v within its feature's Bounds; NaN takes Lo.
func (v *Vector) clampToBounds() {
	for i, x := range v {
		b := Bounds[i]
		switch {
		case x >= b.Lo && x <= b.Hi:
		case x > b.Hi:
			v[i] = b.Hi
		default: // below, or NaN
			v[i] = b.Lo
		}
	}
}

// Expedited reports whether a service level is faster than ground (next day,
// express, air, 2day, same day, priority).
func Expedited(level string) bool {
	l := strings.ToLower(level)
	for _, k := range []string{"next", "express", "expedit", "air", "priority", "2day", "same"} {
		if strings.Contains(l, k) {
			return true
		}
	}
	return false
}

func minutes(d time.Duration) float32 { return float32(d.Minutes()) }

func flag(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

func clamp(x, lo, hi float32) float32 { return min(max(x, lo), hi) }
