package features

// FallbackRisk is the hand-written rule that scores an order when no valid model is
// loaded: little time left before the cutoff, an unreleased credit hold, a shortfall,
// integration errors or carrier trouble raise the risk; a picked or packed order is
// mostly safe. Decisions based on it are marked degraded.
func FallbackRisk(v *Vector) float32 {
	risk := float32(0.05)
	switch m := v[FMinutesToCutoff]; {
	case m < 0:
		risk += 0.6
	case m < 60:
		risk += 0.4
	case m < 240:
		risk += 0.15
	}
	if v[FOnCreditHold] > 0 {
		risk += 0.25
	}
	if v[FAllocationShort] > 0 {
		risk += 0.2
	}
	if v[FIntegrationErrors] > 0 {
		risk += 0.1
	}
	if v[FCarrierIssues] > 0 {
		risk += 0.05
	}
	if v[FWarehouseOutage] > 0 || v[FWarehouseLoadRatio] > 1.5 {
		risk += 0.1
	}
	switch r := v[FMilestoneRank]; {
	case r >= 5: // packed
		risk *= 0.3
	case r >= 4: // picked
		risk *= 0.6
	}
	return min(risk, 0.99)
}
