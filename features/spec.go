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

// Bound is the closed range of one feature's values.
type Bound struct{ Lo, Hi float32 }

// maxCount bounds the count features: far above any real order or customer, and
// exact in a float32.
const maxCount = 10_000_000

// Bounds are the ranges Build keeps each feature in, whatever the state and the
// context hold: a value outside is clamped to the nearer end, a NaN takes Lo. So a
// vector is finite by construction, and a model sees only values of the ranges it
// was trained on.
var Bounds = [NumFeatures]Bound{
	FMinutesToCutoff:     {-1440, 10080},
	FHoursSinceCreated:   {0, 720},
	FMilestoneRank:       {0, 7},
	FMinutesInMilestone:  {0, 10080},
	FOnCreditHold:        {0, 1},
	FHoldMinutes:         {0, 10080},
	FCreditHolds:         {0, maxCount},
	FPricingOpen:         {0, 1},
	FAllocationChanges:   {0, maxCount},
	FAllocationShort:     {0, 1},
	FOrderChanges:        {0, maxCount},
	FAddressChanged:      {0, 1},
	FIntegrationErrors:   {0, maxCount},
	FCarrierIssues:       {0, maxCount},
	FInvoiceFailed:       {0, 1},
	FCustomerTier:        {0, 4},
	FChannelEDI:          {0, 1},
	FChannelPortal:       {0, 1},
	FChannelEcommerce:    {0, 1},
	FChannelCS:           {0, 1},
	FExpedited:           {0, 1},
	FLines:               {0, 100_000},
	FLogUnits:            {0, 17}, // ln(1 + 10^7)
	FLogValue:            {0, 24}, // ln(1 + 10^10)
	FWarehouseLoadRatio:  {0, 100},
	FWarehouseOutage:     {0, 1},
	FWarehousePickRatio:  {0, 100},
	FCarrierOnTime:       {0, 1},
	FCarrierDelayMinutes: {0, 10080},
	FCustomerOrders:      {0, maxCount},
	FCustomerMissRate:    {0, 1},
	FCustomerHolds:       {0, maxCount},
	FLocalHour:           {0, 24},
	FLocalWeekday:        {0, 6},
}
