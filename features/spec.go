package features

// SpecVersion names the feature spec: the names and order of Names. A model bundle
// declares the spec version it was trained on and is rejected when it differs.
const SpecVersion = "2"

// The feature spec, version 2. Index constants and Names must stay in step; the
// README describes each feature.
const (
	FMinutesToCutoff = iota
	FHoursSinceCreated
	FMilestoneRank
	FMinutesInMilestone
	FOnCreditHold
	FHoldMinutes
	FCreditHolds
	FPricingOpen
	FAllocationChanges
	FAllocationShort
	FOrderChanges
	FAddressChanged
	FIntegrationErrors
	FCarrierIssues
	FInvoiceFailed
	FCustomerTier
	FChannelEDI
	FChannelPortal
	FChannelEcommerce
	FChannelCS
	FExpedited
	FLines
	FLogUnits
	FLogValue
	FWarehouseLoadRatio
	FWarehouseOutage
	FWarehousePickRatio
	FCarrierOnTime
	FCarrierDelayMinutes
	FCustomerOrders
	FCustomerMissRate
	FCustomerHolds
	FLocalHour
	FLocalWeekday
	NumFeatures
)

// Names are the feature names of SpecVersion in vector order.
var Names = [NumFeatures]string{
	FMinutesToCutoff:     "minutes_to_cutoff",
	FHoursSinceCreated:   "hours_since_created",
	FMilestoneRank:       "milestone_rank",
	FMinutesInMilestone:  "minutes_in_milestone",
	FOnCreditHold:        "on_credit_hold",
	FHoldMinutes:         "hold_minutes",
	FCreditHolds:         "credit_holds",
	FPricingOpen:         "pricing_open",
	FAllocationChanges:   "allocation_changes",
	FAllocationShort:     "allocation_short",
	FOrderChanges:        "order_changes",
	FAddressChanged:      "address_changed",
	FIntegrationErrors:   "integration_errors",
	FCarrierIssues:       "carrier_issues",
	FInvoiceFailed:       "invoice_failed",
	FCustomerTier:        "customer_tier",
	FChannelEDI:          "channel_edi",
	FChannelPortal:       "channel_portal",
	FChannelEcommerce:    "channel_ecommerce",
	FChannelCS:           "channel_customer_service",
	FExpedited:           "expedited",
	FLines:               "lines",
	FLogUnits:            "log_units",
	FLogValue:            "log_value",
	FWarehouseLoadRatio:  "warehouse_load_ratio",
	FWarehouseOutage:     "warehouse_outage",
	FWarehousePickRatio:  "warehouse_pick_ratio",
	FCarrierOnTime:       "carrier_on_time",
	FCarrierDelayMinutes: "carrier_delay_minutes",
	FCustomerOrders:      "customer_orders",
	FCustomerMissRate:    "customer_miss_rate",
	FCustomerHolds:       "customer_holds",
	FLocalHour:           "local_hour",
	FLocalWeekday:        "local_weekday",
}

// Vector is one order's feature values in the order of Names.
type Vector [NumFeatures]float32
