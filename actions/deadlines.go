package actions

import (
	"fmt"
	"slices"
	"strings"

	"github.com/orderwatch/orderwatch/features"
)

// AfterCutoff is the Deadline.After that starts a deadline's clock at the
// order's ship cutoff instead of at an event.
const AfterCutoff = "cutoff"

// Exception categories: what kind of trouble an exception is, for the team
// that owns it.
const (
	CategoryDataQuality = "data_quality"
	CategoryPolicy      = "policy"
	CategoryIntegration = "integration"
	CategoryExecution   = "execution"
)

// Categories lists the exception categories.
var Categories = []string{CategoryDataQuality, CategoryPolicy, CategoryIntegration, CategoryExecution}

// DefaultWatchUntil is ExceptionPolicy.WatchUntil when the policy does not set it.
const DefaultWatchUntil = features.TypeInvoiceCreated

// ExceptionPolicy is the policy's milestone deadlines and who owns the
// exceptions they open. Its keys sit at the top level of the policy file.
type ExceptionPolicy struct {
	// Deadlines are the milestone deadlines, independent of the models.
	Deadlines []Deadline `yaml:"deadlines" json:"deadlines,omitempty"`
	// ExceptionOwners maps an exception class to the team that owns its
	// exceptions: the name of a ladder under escalation: or a team of one.
	ExceptionOwners map[string]string `yaml:"exception_owners" json:"exception_owners,omitempty"`
	// WatchUntil is the event type after which an order has no deadlines left:
	// its open exceptions close and no clock starts. Empty means invoice.created.
	// Order cancellation ends the watch too.
	WatchUntil string `yaml:"watch_until" json:"watch_until,omitempty"`
	// DataQuality lists the checks of milestone order across systems to run
	// (DataQualityChecks, README "Data-quality checks"); empty runs none.
	DataQuality []string `yaml:"data_quality" json:"data_quality,omitempty"`
	// DataQualityOwner is the team that owns the exceptions of the checks: a
	// ladder under escalation: or a team of one. Empty means
	// DefaultDataQualityOwner.
	DataQualityOwner string `yaml:"data_quality_owner" json:"data_quality_owner,omitempty"`
}

// Deadline is one milestone deadline: once After happens, Expect must happen
// within Within, or an exception of Class opens, owned by the class's team.
type Deadline struct {
	ID string `yaml:"id" json:"id"`
	// After is the event type that starts the clock, or "cutoff": the order's
	// ship cutoff.
	After string `yaml:"after" json:"after"`
	// Expect is the event type that stops the clock, and closes the exception
	// once it is open.
	Expect string   `yaml:"expect" json:"expect"`
	Within Duration `yaml:"within" json:"within"`
	// Class is the exception class (features.ExceptionClasses), Category one of
	// Categories.
	Class    string `yaml:"class" json:"class"`
	Category string `yaml:"category" json:"category"`
	// RemindEvery repeats a reminder while the exception is open; zero sends none.
	RemindEvery Duration `yaml:"remind_every" json:"remind_every,omitempty"`
}

// Owner returns the team that owns exceptions of class.
func (e *ExceptionPolicy) Owner(class string) string { return e.ExceptionOwners[class] }

// validateExceptions checks the deadlines and the owners against the event
// types, the exception classes and the teams of the escalation ladders, and
// applies the default of watch_until.
func (p *Policy) validateExceptions() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	orderType := func(t string) bool { return features.KnownType(t) && !features.IsContext(t) }
	if p.WatchUntil == "" {
		p.WatchUntil = DefaultWatchUntil
	}
	if !orderType(p.WatchUntil) {
		bad("watch_until %q: want an order event type (README \"Events (schema 1)\"), for example invoice.created", p.WatchUntil)
	}
	teams := map[string]bool{}
	for name, l := range p.Escalation {
		teams[name] = true
		for _, t := range l {
			teams[t.Team] = true
		}
	}
	classes := features.ExceptionClasses[1:]
	for class, team := range p.ExceptionOwners {
		at := "exception_owners." + class
		if !slices.Contains(classes, class) {
			bad("%s: unknown exception class, want one of %v", at, classes)
		}
		if !teams[team] {
			bad("%s: team %q is neither a ladder under escalation: nor a team of one", at, team)
		}
	}
	seen := map[string]bool{}
	for i, d := range p.Deadlines {
		at := fmt.Sprintf("deadlines[%d]", i)
		if d.ID != "" {
			at = fmt.Sprintf("deadlines[%d] (%s)", i, d.ID)
		}
		switch {
		case d.ID == "":
			bad("%s.id is empty", at)
		case seen[d.ID]:
			bad("%s.id %q is used twice", at, d.ID)
		case strings.ContainsFunc(d.ID, func(r rune) bool { return r < 0x20 || r == '/' || r == 0x7f }):
			bad("%s.id %q: must not hold '/' or control characters", at, d.ID)
		}
		seen[d.ID] = true
		if d.After != AfterCutoff && !orderType(d.After) {
			bad("%s.after %q: want an order event type or %q", at, d.After, AfterCutoff)
		}
		if !orderType(d.Expect) {
			bad("%s.expect %q: want an order event type", at, d.Expect)
		}
		if d.After == d.Expect {
			bad("%s: after and expect are both %q", at, d.After)
		}
		if d.Within < 0 {
			bad("%s.within %s is negative", at, d.Within.D())
		}
		if d.RemindEvery < 0 {
			bad("%s.remind_every %s is negative (0 sends no reminders)", at, d.RemindEvery.D())
		}
		if !slices.Contains(classes, d.Class) {
			bad("%s.class %q: unknown exception class, want one of %v", at, d.Class, classes)
		} else if _, ok := p.ExceptionOwners[d.Class]; !ok {
			bad("%s.class %q has no owner: add it to exception_owners", at, d.Class)
		}
		if !slices.Contains(Categories, d.Category) {
			bad("%s.category %q: want one of %v", at, d.Category, Categories)
		}
	}
	return errs
}
