// Package actions decides what to do about scored orders and gets it done once: the
// policy file and its rules, decision records, and the executor that drains the
// outbox into JetStream commands. The pipeline calls Decide inside its batch; the
// executor runs beside it.
package actions

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Action types; each becomes the last token of the command subject
// orderwatch.actions.<action>.
const (
	ActionNotifyCS       = "notify_customer_service"
	ActionReprioritise   = "request_warehouse_reprioritisation"
	ActionValidateCarier = "validate_carrier_capacity"
	ActionFlagFinance    = "flag_finance"
	ActionReroute        = "reroute_warehouse"
	ActionEscalate       = "escalate"
)

// Actions lists the action types a policy may name.
var Actions = []string{ActionNotifyCS, ActionReprioritise, ActionValidateCarier, ActionFlagFinance, ActionReroute, ActionEscalate}

// Modes say what happens to a decision.
const (
	ModeAuto     = "auto"     // executed at once
	ModeApproval = "approval" // waits for a person
	ModeShadow   = "shadow"   // recorded, never executed
)

// Modes lists the governance modes.
var Modes = []string{ModeAuto, ModeApproval, ModeShadow}

//go:embed default_policy.yaml
var defaultPolicy []byte

// Policy is a validated policy file. It is immutable after loading and safe for
// concurrent use.
type Policy struct {
	Version string `yaml:"version" json:"version"`
	Rules   []Rule `yaml:"rules" json:"rules"`
}

// Rule fires its action when every condition of When holds.
type Rule struct {
	ID     string    `yaml:"id" json:"id"`
	Action string    `yaml:"action" json:"action"`
	Mode   string    `yaml:"mode" json:"mode"`
	When   Condition `yaml:"when" json:"when"`
}

// Condition combines model outputs and features; unset fields do not constrain.
type Condition struct {
	RiskAtLeast          *float64 `yaml:"risk_at_least" json:"risk_at_least,omitempty"`
	MinutesToCutoffBelow *float64 `yaml:"minutes_to_cutoff_below" json:"minutes_to_cutoff_below,omitempty"`
	OnCreditHold         *bool    `yaml:"on_credit_hold" json:"on_credit_hold,omitempty"`
	AllocationShort      *bool    `yaml:"allocation_short" json:"allocation_short,omitempty"`
}

// LoadPolicy reads and validates a policy file; an empty path means the shipped
// default policy.
func LoadPolicy(path string) (*Policy, error) {
	b, name := defaultPolicy, "default policy"
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("actions: read policy: %w", err)
		}
		name = path
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("actions: policy %s: %w", name, err)
	}
	return p, nil
}

// ParsePolicy decodes and validates a policy document. Unknown keys are errors.
func ParsePolicy(b []byte) (*Policy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode yaml: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func (p *Policy) validate() error {
	var errs []error
	if p.Version == "" {
		errs = append(errs, errors.New("version is empty: give the policy a version so decisions can name it"))
	}
	if len(p.Rules) == 0 {
		errs = append(errs, errors.New("rules is empty"))
	}
	seen := map[string]bool{}
	for i, r := range p.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.ID == "":
			errs = append(errs, fmt.Errorf("%s.id is empty", at))
		case seen[r.ID]:
			errs = append(errs, fmt.Errorf("%s.id %q is used twice", at, r.ID))
		}
		seen[r.ID] = true
		if !slices.Contains(Actions, r.Action) {
			errs = append(errs, fmt.Errorf("%s.action %q is unknown, want one of %v", at, r.Action, Actions))
		}
		if !slices.Contains(Modes, r.Mode) {
			errs = append(errs, fmt.Errorf("%s.mode %q is unknown, want one of %v", at, r.Mode, Modes))
		}
		if w := r.When; w.RiskAtLeast == nil && w.MinutesToCutoffBelow == nil && w.OnCreditHold == nil && w.AllocationShort == nil {
			errs = append(errs, fmt.Errorf("%s.when has no condition: a rule must say when it fires", at))
		}
		if w := r.When.RiskAtLeast; w != nil && (*w < 0 || *w > 1) {
			errs = append(errs, fmt.Errorf("%s.when.risk_at_least %v is outside 0..1", at, *w))
		}
	}
	return errors.Join(errs...)
}
