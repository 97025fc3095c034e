package features

// SpecVersion names the feature spec: the names and order of Names. A model bundle
// declares the spec version it was trained on and is rejected when it differs.
const SpecVersion = "1"

// The feature spec, version 1. Index constants and Names must stay in step; the
// README describes each feature.
const (
	FMinutesToCutoff = iota
	FHoursSinceCreated
	FOnCreditHold
	FCreditHolds
	FPricingOpen
	FAllocationChanges
	FAllocationShort
	FPicked
	FPacked
	FIntegrationErrors
	FCarrierIssues
	FCustomerTier
	FLines
	FLogValue
	NumFeatures
)

// Names are the feature names of SpecVersion in vector order.
var Names = [NumFeatures]string{
	FMinutesToCutoff:   "minutes_to_cutoff",
	FHoursSinceCreated: "hours_since_created",
	FOnCreditHold:      "on_credit_hold",
	FCreditHolds:       "credit_holds",
	FPricingOpen:       "pricing_open",
	FAllocationChanges: "allocation_changes",
	FAllocationShort:   "allocation_short",
	FPicked:            "picked",
	FPacked:            "packed",
	FIntegrationErrors: "integration_errors",
	FCarrierIssues:     "carrier_issues",
	FCustomerTier:      "customer_tier",
	FLines:             "lines",
	FLogValue:          "log_value",
}

// Vector is one order's feature values in the order of Names.
type Vector [NumFeatures]float32
