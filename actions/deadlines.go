package actions

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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

// When a deadline's exception opens (Deadline.Open).
const (
	// OpenDue: when the deadline passes without an expected event.
	OpenDue = "due"
	// OpenStart: when the After event happens (the event shows the trouble,
	// e.g. a credit hold); the deadline passing makes it overdue.
	OpenStart = "start"
)

// ExpectNextMilestone is the Deadline.Expect that is met by any event that
// moves the order past the milestone it was at when the clock started (an
// integration error is resolved once the order moves on).
const ExpectNextMilestone = "next_milestone"

// Deadline is one milestone deadline: once After happens, one of Expect must
// happen within Within, or an exception of Class opens, owned by the class's
// team.
type Deadline struct {
	ID string `yaml:"id" json:"id"`
	// After is the event type that starts the clock, or "cutoff": the order's
	// ship cutoff.
	After string `yaml:"after" json:"after"`
	// Expect are the event types that stop the clock, any one of them, and
	// close the exception once it is open; or ExpectNextMilestone. A single
	// type may be written as a string.
	Expect EventTypes `yaml:"expect" json:"expect"`
	Within Duration   `yaml:"within" json:"within"`
	// Class is the exception class (features.ExceptionClasses), Category one of
	// Categories.
	Class    string `yaml:"class" json:"class"`
	Category string `yaml:"category" json:"category"`
	// RemindEvery repeats a reminder while the exception is open and overdue;
	// zero sends none.
	RemindEvery Duration `yaml:"remind_every" json:"remind_every,omitempty"`
	// Open is OpenDue (empty means it) or OpenStart.
	Open string `yaml:"open" json:"open,omitempty"`
	// Codes, when not empty, start the clock only for an After event whose
	// code (integration.error's code, carrier.status's code, pricing's reason)
	// is one of them.
	Codes []string `yaml:"codes" json:"codes,omitempty"`
}

// Expects reports whether an event of type t is one the deadline expects
// (ExpectNextMilestone is judged on the order's milestone, not here).
func (d *Deadline) Expects(t string) bool { return slices.Contains(d.Expect, t) }

// OpensAtStart reports whether the exception opens with the After event.
func (d *Deadline) OpensAtStart() bool { return d.Open == OpenStart }

// EventTypes is a list of event types; in YAML a single string is a list of
// one.
type EventTypes []string

// UnmarshalYAML takes a string or a list of strings.
func (e *EventTypes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*e = EventTypes{s}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("want an event type or a list of them: %w", err)
	}
	*e = l
	return nil
}

// Escalates returns the team an exception owned by owner moves to when it
// has sat past its deadline for the SLA of owner's tier, and that SLA: owner
// is a ladder under escalation: (its first tier then) or a team of one (the
// first ladder by name whose tiers hold it, at its last place there, so that
// no ladder climbs in a circle). ok is false when owner is at the end of its
// ladder, or on none.
func (p *Policy) Escalates(owner string) (next string, sla time.Duration, ok bool) {
	l, i := p.Escalation[owner], 0
	if l == nil {
		first := ""
		for name, tiers := range p.Escalation {
			j := len(tiers) - 1
			for j >= 0 && tiers[j].Team != owner {
				j--
			}
			if j >= 0 && (l == nil || name < first) {
				l, i, first = tiers, j, name
			}
		}
	}
	if i+1 >= len(l) {
		return "", 0, false
	}
	return l[i+1].Team, l[i].SLA.D(), true
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
		if len(d.Expect) == 0 {
			bad("%s.expect is empty: want an order event type, a list of them or %q", at, ExpectNextMilestone)
		}
		for j, e := range d.Expect {
			switch {
			case e == ExpectNextMilestone && len(d.Expect) > 1:
				bad("%s.expect[%d] %q stands alone: it is met by any milestone event after the order's", at, j, e)
			case e == ExpectNextMilestone:
			case !orderType(e):
				bad("%s.expect[%d] %q: want an order event type or %q", at, j, e, ExpectNextMilestone)
			case e == d.After:
				bad("%s: after and expect are both %q", at, d.After)
			}
		}
		switch d.Open {
		case "":
			p.Deadlines[i].Open = OpenDue
		case OpenDue, OpenStart:
		default:
			bad("%s.open %q: want %q (the exception opens when the deadline passes) or %q (when after happens)", at, d.Open, OpenDue, OpenStart)
		}
		if d.Open == OpenStart && d.After == AfterCutoff {
			bad("%s.open start: an exception cannot open at the cutoff itself, use open: due", at)
		}
		for j, c := range d.Codes {
			if c == "" || strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				bad("%s.codes[%d] %q: want a code as the events give it", at, j, c)
			}
		}
		if len(d.Codes) > 0 && d.After == AfterCutoff {
			bad("%s.codes: the cutoff has no code", at)
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
