package features

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Describe says in plain words what feature i of v means for the order, for reason
// codes: "credit hold 5 h", "warehouse DAL backlog 2.3× capacity". s names the
// warehouse, carrier and milestone.
func Describe(i int, v *Vector, s *OrderState) string {
	x := v[i]
	switch i {
	case FMinutesToCutoff:
		if x < 0 {
			return "cutoff passed " + duration(-x) + " ago"
		}
		return "cutoff in " + duration(x)
	case FHoursSinceCreated:
		return "order open " + duration(60*x)
	case FMilestoneRank, FMinutesInMilestone:
		m := strings.ReplaceAll(s.Milestone, "_", " ")
		if m == "" {
			m = "no milestone"
		}
		return fmt.Sprintf("at %s for %s", m, duration(v[FMinutesInMilestone]))
	case FOnCreditHold, FHoldMinutes:
		if v[FOnCreditHold] == 0 {
			return "no credit hold"
		}
		return "credit hold " + duration(v[FHoldMinutes])
	case FCreditHolds:
		return count(x, "credit hold")
	case FPricingOpen:
		return onOff(x, "pricing exception open", "pricing approved")
	case FAllocationChanges:
		return count(x, "re-allocation")
	case FAllocationShort:
		return onOff(x, "allocation short", "fully allocated")
	case FOrderChanges:
		return count(x, "order change")
	case FAddressChanged:
		return onOff(x, "address changed", "address unchanged")
	case FIntegrationErrors:
		return count(x, "integration error")
	case FCarrierIssues:
		return count(x, "carrier issue")
	case FInvoiceFailed:
		return onOff(x, "invoice failed", "invoice fine")
	case FCustomerTier:
		return "customer tier " + orUnknown(s.CustomerTier)
	case FChannelEDI, FChannelPortal, FChannelEcommerce, FChannelCS:
		return "channel " + orUnknown(s.Channel)
	case FExpedited:
		return onOff(x, "expedited service "+s.ServiceLevel, "ground service")
	case FLines:
		return count(x, "line")
	case FLogUnits:
		return fmt.Sprintf("%.0f units", math.Expm1(float64(x)))
	case FLogValue:
		return fmt.Sprintf("value %.0f", math.Expm1(float64(x)))
	case FWarehouseLoadRatio:
		return fmt.Sprintf("warehouse %s backlog %.1f× capacity", s.Warehouse, x)
	case FWarehouseOutage:
		return onOff(x, "warehouse "+s.Warehouse+" outage", "warehouse "+s.Warehouse+" up")
	case FWarehousePickRatio:
		return fmt.Sprintf("warehouse %s picked %.1f× capacity last hour", s.Warehouse, x)
	case FCarrierOnTime:
		return fmt.Sprintf("carrier %s on time %.0f%%", orUnknown(s.Carrier), 100*x)
	case FCarrierDelayMinutes:
		return fmt.Sprintf("carrier %s delays %s", orUnknown(s.Carrier), duration(x))
	case FCustomerOrders, FCustomerMissRate:
		return fmt.Sprintf("customer misses %.0f%% of cutoffs (%.0f orders)", 100*v[FCustomerMissRate], v[FCustomerOrders])
	case FCustomerHolds:
		return count(x, "credit hold") + " for this customer"
	case FLocalHour:
		h := int(x)
		return fmt.Sprintf("%02d:%02d at the warehouse", h, int((x-float32(h))*60))
	case FLocalWeekday:
		return time.Weekday((int(x)+1)%7).String() + " at the warehouse"
	}
	return Names[i]
}

func duration(minutes float32) string {
	switch m := float64(minutes); {
	case m < 90:
		return fmt.Sprintf("%.0f min", m)
	case m < 48*60:
		return fmt.Sprintf("%.1f h", m/60)
	default:
		return fmt.Sprintf("%.1f days", m/1440)
	}
}

func count(x float32, noun string) string {
	if x == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%.0f %ss", x, noun)
}

func onOff(x float32, on, off string) string {
	if x != 0 {
		return on
	}
	return off
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
