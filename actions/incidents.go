package actions

import (
	"fmt"
	"slices"
	"time"
)

// Defaults of IncidentPolicy.
const (
	// DefaultIncidentWindow is IncidentPolicy.Window when the policy does not set it.
	DefaultIncidentWindow = 2 * time.Hour
	// DefaultMaxOpenIncidents is IncidentPolicy.MaxOpen when the policy does not set it.
	DefaultMaxOpenIncidents = 1000
)

// IncidentPolicy is how exceptions of one cause are grouped into incidents,
// and the notification an incident may send: the policy's incidents: key.
type IncidentPolicy struct {
	// Window: an exception joins the incident of its cause when it opens within
	// Window of the incident's last exception; otherwise it starts a new one.
	// Zero means 2h.
	Window Duration `yaml:"window" json:"window"`
	// MaxOpen bounds the open incidents kept; an exception whose cause has no
	// open incident while MaxOpen are open is not grouped (counted in
	// orderwatch_incidents_ungrouped_total). Zero means 1000.
	MaxOpen int `yaml:"max_open" json:"max_open"`
	// Notify, when set, sends one action for an incident once it affects
	// MinOrders orders, listing them, instead of one per order.
	Notify *IncidentNotify `yaml:"notify" json:"notify,omitempty"`
}

// IncidentNotify is the action an incident takes once it is large enough.
type IncidentNotify struct {
	Action string `yaml:"action" json:"action"`
	// MinOrders is how many orders the incident must affect; zero means 2.
	MinOrders int `yaml:"min_orders" json:"min_orders"`
	// Mode is auto (the default) or shadow (recorded, never executed). An
	// incident's notification does not wait for approval.
	Mode string `yaml:"mode" json:"mode"`
}

// validate applies the defaults and checks the values.
func (ip *IncidentPolicy) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case ip.Window < 0:
		bad("incidents.window %s is negative", ip.Window.D())
	case ip.Window == 0:
		ip.Window = Duration(DefaultIncidentWindow)
	}
	switch {
	case ip.MaxOpen < 0:
		bad("incidents.max_open %d is negative (0 means %d)", ip.MaxOpen, DefaultMaxOpenIncidents)
	case ip.MaxOpen == 0:
		ip.MaxOpen = DefaultMaxOpenIncidents
	}
	n := ip.Notify
	if n == nil {
		return errs
	}
	if !slices.Contains(Actions, n.Action) || n.Action == ActionEscalate {
		bad("incidents.notify.action %q: want one of %v except %s", n.Action, Actions, ActionEscalate)
	}
	switch {
	case n.MinOrders < 0:
		bad("incidents.notify.min_orders %d is negative (0 means 2)", n.MinOrders)
	case n.MinOrders == 0:
		n.MinOrders = 2
	}
	switch n.Mode {
	case "":
		n.Mode = ModeAuto
	case ModeAuto, ModeShadow:
	default:
		bad("incidents.notify.mode %q: want %s or %s (an incident's notification does not wait for approval)", n.Mode, ModeAuto, ModeShadow)
	}
	return errs
}
