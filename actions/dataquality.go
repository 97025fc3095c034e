package actions

import (
	"fmt"
	"slices"
)

// The data-quality checks (ExceptionPolicy.DataQuality): events of two systems
// that disagree on the order of an order's milestones. Each open disagreement
// is an exception of class data_quality, category CategoryDataQuality, owned
// by ExceptionPolicy.DataQualityOwner.
const (
	// CheckInvoicedBeforeShipped: invoice.created with no shipment.confirmed.
	CheckInvoicedBeforeShipped = "invoiced_before_shipped"
	// CheckShippedWithoutPick: shipment.confirmed with neither pick.confirmed
	// nor pack.confirmed.
	CheckShippedWithoutPick = "shipped_without_pick"
	// CheckActivityAfterCancel: pick.confirmed, pack.confirmed,
	// shipment.confirmed or invoice.created that happened after
	// order.cancelled.
	CheckActivityAfterCancel = "activity_after_cancel"
	// CheckPickedBeforeReleased: pick.confirmed with no pick.released.
	CheckPickedBeforeReleased = "picked_before_released"
)

// DataQualityChecks returns the names of the data-quality checks.
func DataQualityChecks() []string {
	return []string{CheckInvoicedBeforeShipped, CheckShippedWithoutPick, CheckActivityAfterCancel, CheckPickedBeforeReleased}
}

// DefaultDataQualityOwner is ExceptionPolicy.DataQualityOwner when the policy
// runs checks and does not name their owner: the integration team, a ladder of
// the shipped policy.
const DefaultDataQualityOwner = "integration"

// RunsCheck reports whether the policy runs the data-quality check name.
func (e *ExceptionPolicy) RunsCheck(name string) bool { return slices.Contains(e.DataQuality, name) }

// validateDataQuality checks the data-quality checks and their owner against
// the teams of the escalation ladders, and applies the default owner when
// checks run.
func (p *Policy) validateDataQuality() []error {
	var errs []error
	checks := DataQualityChecks()
	seen := map[string]bool{}
	for i, c := range p.DataQuality {
		switch {
		case !slices.Contains(checks, c):
			errs = append(errs, fmt.Errorf("data_quality[%d] %q: unknown check, want one of %v", i, c, checks))
		case seen[c]:
			errs = append(errs, fmt.Errorf("data_quality[%d] %q is listed twice", i, c))
		}
		seen[c] = true
	}
	if len(p.DataQuality) == 0 {
		return errs
	}
	if p.DataQualityOwner == "" {
		p.DataQualityOwner = DefaultDataQualityOwner
	}
	for name, l := range p.Escalation {
		if name == p.DataQualityOwner {
			return errs
		}
		for _, t := range l {
			if t.Team == p.DataQualityOwner {
				return errs
			}
		}
	}
	return append(errs, fmt.Errorf("data_quality_owner %q is neither a ladder under escalation: nor a team of one: add the ladder or name a team", p.DataQualityOwner))
}
