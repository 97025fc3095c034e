package actions

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
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
	// Windows sets the window of a kind of cause (the first segment of its
	// key: integration, carrier, warehouse, price_contract) apart from Window.
	// Without window and windows, price_contract is 72h (an expired price
	// contract shows on the customer's orders as they come, hours or days
	// apart) and integration 1h (a partner's broken map fails its orders
	// minutes apart; independent failures of one code hours apart are not one
	// cause): the windows that measured best against the simulator (README).
	Windows map[string]Duration `yaml:"windows" json:"windows,omitempty"`
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

// DefaultIncidentWindows are the windows of kinds of cause that differ from
// Window when the policy does not set them.
var DefaultIncidentWindows = map[string]time.Duration{"price_contract": 72 * time.Hour, "integration": time.Hour}

// IncidentKinds are the kinds of cause an incident can have.
var IncidentKinds = []string{"integration", "carrier", "warehouse", "price_contract"}

// WindowOf returns the window of a kind of cause.
func (ip *IncidentPolicy) WindowOf(kind string) time.Duration {
	if d, ok := ip.Windows[kind]; ok {
		return d.D()
	}
	return ip.Window.D()
}

// validate applies the defaults and checks the values.
func (ip *IncidentPolicy) validate() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for kind, d := range ip.Windows {
		if !slices.Contains(IncidentKinds, kind) || d <= 0 {
			bad("incidents.windows.%s %s: want a kind of %v and a positive duration", kind, d.D(), IncidentKinds)
		}
	}
	for kind, d := range DefaultIncidentWindows {
		// A policy that sets window means it for the kinds it does not name.
		if _, ok := ip.Windows[kind]; !ok && ip.Window == 0 {
			if ip.Windows == nil {
				ip.Windows = map[string]Duration{}
			}
			ip.Windows[kind] = Duration(d)
		}
	}
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

// RuleIncidentNotify is the RuleID of the decisions of incident notifications.
const RuleIncidentNotify = "incidents.notify"

// TriggerIncident is the TriggerType of the decision of an incident's
// notification; its TriggerEvent is the incident's id.
const TriggerIncident = "incident"

// IncidentNotice is what an incident's notification is about: the incident
// and the orders it affects.
type IncidentNotice struct {
	Incident, Cause, Kind, Owner, Class string
	Orders                              []string // the orders listed (the first ones)
	OrderCount                          int      // all the orders
	FirstSeen, LastSeen                 time.Time
	// Order is the order the decision is listed under (the one whose exception
	// made the incident large enough); At when it is decided.
	Order string
	At    time.Time
}

// IncidentCommand is the command of an incident's notification: one for the
// incident, listing its orders. OrderID is the order the decision is listed
// under, so the member that owns it delivers it.
type IncidentCommand struct {
	DecisionID     string    `json:"decision_id"`
	OrderID        string    `json:"order_id"`
	Action         string    `json:"action"`
	RuleID         string    `json:"rule_id"`
	PolicyVersion  string    `json:"policy_version"`
	IdempotencyKey string    `json:"idempotency_key"`
	DecidedAt      time.Time `json:"decided_at"`
	Incident       string    `json:"incident"`
	Cause          string    `json:"cause"`
	Kind           string    `json:"kind"`
	Owner          string    `json:"owner,omitempty"`
	Class          string    `json:"class,omitempty"`
	Orders         []string  `json:"orders"`
	OrderCount     int       `json:"order_count"`
	FirstSeen      time.Time `json:"first_seen"`
	LastSeen       time.Time `json:"last_seen"`
}

// IncidentKey is the idempotency key (the Nats-Msg-Id) of an incident's
// notification: one per incident, whatever the policy version.
func IncidentKey(incident string) string { return hashKey("incident", incident, RuleIncidentNotify) }

// NotifyIncident decides the notification of an incident under the policy's
// incidents.notify and records it into b like a rule's decision: shadow mode
// records it only; the kill switch and dry run suppress it; otherwise its
// command goes into the outbox (JetStream, and the action's webhook when the
// policy has one), keyed by the incident so that it is sent once. It does not
// wait for approval, nor count in the cooldowns and rate limits of orders.
// The caller calls it once per incident.
func (p *Policy) NotifyIncident(b *store.Batch, n *IncidentNotice) (Decision, error) {
	cfg := p.Incidents.Notify
	if cfg == nil {
		return Decision{}, fmt.Errorf("actions: notify incident %s: the policy has no incidents.notify", n.Incident)
	}
	key := IncidentKey(n.Incident)
	d := Decision{
		ID: decisionID(n.At, key), OrderID: n.Order, At: n.At, TriggerEvent: n.Incident, TriggerType: TriggerIncident,
		FeatureSpec: features.SpecVersion, PolicyVersion: p.Version, RuleID: RuleIncidentNotify,
		Action: cfg.Action, Mode: cfg.Mode, IdempotencyKey: key, Team: n.Owner,
		Attributes: map[string]string{"incident": n.Incident, "cause": n.Cause, "orders": strconv.Itoa(n.OrderCount)},
	}
	switch halted, reason := p.Halted(); {
	case cfg.Mode == ModeShadow:
		d.Status = StatusShadow
	case halted:
		d.Status, d.SuppressedBy, d.SuppressedNote = StatusSuppressed, reason, "actions are stopped by the kill switch"
	case p.Settings.DryRun:
		d.Status, d.SuppressedBy, d.SuppressedNote = StatusSuppressed, SuppressedDryRun, "dry run: would have been "+StatusQueued
	default:
		d.Status = StatusQueued
	}
	raw, err := d.appendJSON(nil)
	if err != nil {
		return d, fmt.Errorf("actions: encode decision of incident %s: %w", n.Incident, err)
	}
	if err := b.PutDecision(d.ID, d.OrderID, raw); err != nil {
		return d, err
	}
	b.Add(store.CounterDecisions, 1)
	switch d.Status {
	case StatusSuppressed:
		b.Add(counterSuppressed+d.SuppressedBy, 1)
		return d, nil
	case StatusQueued:
	default:
		return d, nil
	}
	cmd, err := json.Marshal(&IncidentCommand{DecisionID: d.ID, OrderID: d.OrderID, Action: d.Action, RuleID: d.RuleID,
		PolicyVersion: d.PolicyVersion, IdempotencyKey: key, DecidedAt: d.At, Incident: n.Incident, Cause: n.Cause,
		Kind: n.Kind, Owner: n.Owner, Class: n.Class, Orders: n.Orders, OrderCount: n.OrderCount,
		FirstSeen: n.FirstSeen, LastSeen: n.LastSeen})
	if err != nil {
		return d, fmt.Errorf("actions: encode command of incident %s: %w", n.Incident, err)
	}
	j := job{Target: TargetNATS, Action: d.Action, MsgID: key, Command: cmd}
	v, err := json.Marshal(&j)
	if err != nil {
		return d, fmt.Errorf("actions: encode outbox entry of incident %s: %w", n.Incident, err)
	}
	if err := b.Enqueue(d.ID, v); err != nil {
		return d, err
	}
	if _, ok := p.Webhooks[d.Action]; !ok {
		return d, nil
	}
	j.Target = TargetWebhook
	if v, err = json.Marshal(&j); err != nil {
		return d, fmt.Errorf("actions: encode outbox entry of incident %s: %w", n.Incident, err)
	}
	return d, b.Enqueue(d.ID+entryWebhook, v)
}
