// Package actions decides what to do about scored orders and gets it done once,
// with someone accountable: the policy file and its rules, governance (modes, rate
// limits, cooldowns, kill switch, dry run), decision records, the executor that
// drains the outbox into JetStream commands and signed webhooks, and the governor
// that applies approvals, rejections and acknowledgements and escalates what waits
// past its SLA. The pipeline calls Decide inside its batch; the executor and the
// governor run beside it; the API calls the governor.
package actions

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/orderwatch/orderwatch/features"
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

// Limit scopes: a rate limit counts an action's executions per warehouse, customer
// or carrier of the order over the last hour.
const (
	ScopeWarehouse = "warehouse"
	ScopeCustomer  = "customer"
	ScopeCarrier   = "carrier"
)

//go:embed default_policy.yaml
var defaultPolicy []byte

// DefaultPolicy returns the text of the shipped policy, which LoadPolicy("") loads.
func DefaultPolicy() []byte { return bytes.Clone(defaultPolicy) }

// Policy is a validated policy file. It is immutable after loading, except for the
// runtime kill switch and the group's rate windows it may be given with
// UseKillSwitch and UseRateShare, and safe for concurrent use.
type Policy struct {
	Version  string   `yaml:"version" json:"version"`
	Settings Settings `yaml:"settings" json:"settings"`
	// Escalation holds ladders of teams by name. Tier 0 is the team that owns a
	// decision first; when its SLA passes with nobody acting, the next tier owns it.
	Escalation map[string]Ladder   `yaml:"escalation" json:"escalation,omitempty"`
	Reroute    Reroute             `yaml:"reroute" json:"reroute"`
	Webhooks   map[string]*Webhook `yaml:"webhooks" json:"webhooks,omitempty"`
	Rules      []Rule              `yaml:"rules" json:"rules"`
	// ExceptionPolicy is the milestone deadlines and the exception owners
	// (deadlines.go); its keys sit at the top level.
	ExceptionPolicy `yaml:",inline"`
	// Costs, when set, prices misses and actions: every decision records its
	// expected value, and cost-aware rules act only when it pays (cost.go).
	Costs *Costs `yaml:"costs" json:"costs,omitempty"`
	// Incidents groups exceptions of one cause (incidents.go).
	Incidents IncidentPolicy `yaml:"incidents" json:"incidents"`

	kill  *KillSwitch
	rates *RateShare
	// keep is, per action, how long its cooldown records must live: the longest
	// cooldown of its rules.
	keep map[string]time.Duration
	// bufs holds *[]byte scratch buffers of the record encoders (encode.go).
	bufs sync.Pool
}

// maxScratch is the largest scratch buffer kept for reuse.
const maxScratch = 64 << 10

// buffer returns a scratch buffer for encoding; give it back with release.
func (p *Policy) buffer() *[]byte {
	if b, ok := p.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1024)
	return &b
}

// release returns a scratch buffer; grown, when not nil, is what it grew into.
func (p *Policy) release(b *[]byte, grown []byte) {
	if cap(grown) > cap(*b) {
		*b = grown
	}
	if cap(*b) <= maxScratch {
		p.bufs.Put(b)
	}
}

// Settings are the policy's global switches.
type Settings struct {
	// DryRun records every decision but executes none: each is suppressed with
	// reason dry_run, and no approval is asked for.
	DryRun bool `yaml:"dry_run" json:"dry_run"`
	// KillSwitch stops all actions: decisions are recorded, suppressed with reason
	// kill_switch:policy, and the executor holds its outbox.
	KillSwitch bool `yaml:"kill_switch" json:"kill_switch"`
	// MaxOutage is how long a delivery waits for its target (a webhook, or a
	// JetStream subject) to come back before it is recorded failed for good. While
	// a target fails, its deliveries wait in order and its circuit is probed.
	// Zero means 24h.
	MaxOutage Duration `yaml:"max_outage" json:"max_outage"`
}

// DefaultMaxOutage is Settings.MaxOutage when the policy does not set it.
const DefaultMaxOutage = 24 * time.Hour

// Ladder is an escalation ladder: the teams a waiting decision moves through.
type Ladder []Tier

// Tier is one rung of a ladder: the team and how long it has to act.
type Tier struct {
	Team string   `yaml:"team" json:"team"`
	SLA  Duration `yaml:"sla" json:"sla"`
}

// Reroute says where an order may move. Stock is not in the event stream: a
// warehouse listed as an alternative is one the operator knows carries the
// assortment, and the receiving WMS confirms the stock when it takes the command.
type Reroute struct {
	// Alternatives lists, per warehouse, the warehouses its orders may move to, in
	// order of preference.
	Alternatives map[string][]string `yaml:"alternatives" json:"alternatives,omitempty"`
	// MaxLoadRatio is the most backlog (queue over capacity per hour, in hours) an
	// alternative may have to take an order. Zero means 1.
	MaxLoadRatio float64 `yaml:"max_load_ratio" json:"max_load_ratio"`
}

// Webhook delivers an action's commands over HTTP, besides JetStream.
type Webhook struct {
	URL string `yaml:"url" json:"url"`
	// SecretEnv names the environment variable holding the HMAC-SHA256 secret.
	SecretEnv string `yaml:"secret_env" json:"secret_env"`
	// Timeout of one attempt. Zero means 5s.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// MaxAttempts is how many attempts in a row may fail before the webhook's
	// circuit opens: its deliveries then wait, probed, up to settings.max_outage.
	// No delivery is given up for its number of attempts. Zero means 8.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// Backoff before the second attempt, doubled after each failure up to
	// MaxBackoff. Zero means 1s and 5m.
	Backoff    Duration `yaml:"backoff" json:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff"`
}

// Rule fires its action when every condition of When holds.
type Rule struct {
	ID          string    `yaml:"id" json:"id"`
	Description string    `yaml:"description" json:"description,omitempty"`
	Action      string    `yaml:"action" json:"action"`
	Mode        string    `yaml:"mode" json:"mode"`
	When        Condition `yaml:"when" json:"when"`
	// Cooldown is the least time between two executions of this rule's action for
	// one order, whichever rule fired it before.
	Cooldown Duration `yaml:"cooldown" json:"cooldown,omitempty"`
	// Limits caps the executions of this rule's action per hour, per key.
	Limits Limits `yaml:"limits" json:"limits,omitzero"`
	// Escalation names the ladder of a decision that waits: for approval, or, with
	// RequireAck, for someone to acknowledge the executed action.
	Escalation string `yaml:"escalation" json:"escalation,omitempty"`
	RequireAck bool   `yaml:"require_ack" json:"require_ack,omitempty"`
	// CostAware: act only when the expected saving exceeds the action's cost
	// (costs:); otherwise the decision is suppressed with reason not_worth_it.
	CostAware bool `yaml:"cost_aware" json:"cost_aware,omitempty"`

	waitKey string // the memory key of a cost-aware episode waiting to pay (cost.go)
}

// Limits are per-hour caps of an action's executions (and approval requests) for
// one warehouse, customer or carrier, counted over every rule with that action.
// Zero means no cap.
type Limits struct {
	Warehouse int `yaml:"warehouse" json:"warehouse,omitempty"`
	Customer  int `yaml:"customer" json:"customer,omitempty"`
	Carrier   int `yaml:"carrier" json:"carrier,omitempty"`
}

// Condition combines model outputs, features and order attributes; unset parts do
// not constrain, and every set part must hold.
type Condition struct {
	// Risk bounds the cutoff_risk score.
	Risk *Range `yaml:"risk" json:"risk,omitempty"`
	// Classes bounds exception_class probabilities by class name
	// (features.ExceptionClasses). A class the model did not score does not hold.
	Classes map[string]Range `yaml:"classes" json:"classes,omitempty"`
	// Features bounds feature values by spec name (features.Names).
	Features map[string]Range `yaml:"features" json:"features,omitempty"`
	// Order matches the order's attributes.
	Order Match `yaml:"order" json:"order,omitzero"`

	feats   []featureRange // Features by vector index, sorted
	classes []classRange   // Classes by name, sorted
}

type classRange struct {
	name string
	r    Range
}

type featureRange struct {
	idx int
	r   Range
}

// Range bounds a number; unset bounds do not constrain.
type Range struct {
	GT  *float64 `yaml:"gt" json:"gt,omitempty"`
	GTE *float64 `yaml:"gte" json:"gte,omitempty"`
	LT  *float64 `yaml:"lt" json:"lt,omitempty"`
	LTE *float64 `yaml:"lte" json:"lte,omitempty"`
	EQ  *float64 `yaml:"eq" json:"eq,omitempty"`
}

// Match lists allowed values of order attributes; an empty list allows any. A
// single value may be written without brackets.
type Match struct {
	Warehouse    Set `yaml:"warehouse" json:"warehouse,omitempty"`
	Customer     Set `yaml:"customer" json:"customer,omitempty"`
	CustomerTier Set `yaml:"customer_tier" json:"customer_tier,omitempty"`
	Channel      Set `yaml:"channel" json:"channel,omitempty"`
	Carrier      Set `yaml:"carrier" json:"carrier,omitempty"`
}

// Set is a list of strings that YAML may give as one scalar.
type Set []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *Set) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Set{n.Value}
		return nil
	}
	var v []string
	if err := n.Decode(&v); err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time.Duration written as "15m" in YAML and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration ("90s", "15m", "2h").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, such as 90s, 15m or 2h", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

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
		return nil, fmt.Errorf("decode yaml: %w", explainYAML(err))
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// UseKillSwitch gives the policy the runtime kill switch. Call it before the policy
// is shared.
func (p *Policy) UseKillSwitch(k *KillSwitch) { p.kill = k }

// KillSwitch returns the runtime kill switch given with UseKillSwitch, or nil.
func (p *Policy) KillSwitch() *KillSwitch { return p.kill }

// UseRateShare gives the policy the other members' rate-limit windows, which its
// limits count with this member's, and where this member's are published. Nil
// means this member's alone. Call it before the policy is shared.
func (p *Policy) UseRateShare(r *RateShare) { p.rates = r }

// RateShare returns what UseRateShare gave, or nil.
func (p *Policy) RateShare() *RateShare { return p.rates }

// Halted reports whether actions are stopped, by the policy's kill_switch setting
// or the runtime kill switch, and which.
func (p *Policy) Halted() (bool, string) {
	if p.Settings.KillSwitch {
		return true, SuppressedKillSwitchPolicy
	}
	if p.kill.On() {
		return true, SuppressedKillSwitchRuntime
	}
	return false, ""
}

// Rule returns the rule with the id, or nil.
func (p *Policy) Rule(id string) *Rule {
	for i := range p.Rules {
		if p.Rules[i].ID == id {
			return &p.Rules[i]
		}
	}
	return nil
}

var (
	teamName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	yamlUnknown = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

func (p *Policy) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.Version == "" {
		bad("version is empty: give the policy a version so decisions can name it")
	}
	if len(p.Rules) == 0 {
		bad("rules is empty")
	}
	for name, l := range p.Escalation {
		at := "escalation." + name
		if len(l) == 0 {
			bad("%s has no tiers: list at least one {team, sla}", at)
		}
		for i, t := range l {
			if !teamName.MatchString(t.Team) {
				bad("%s[%d].team %q: want a name of letters, digits, '.', '_' or '-'", at, i, t.Team)
			}
			if t.SLA <= 0 {
				bad("%s[%d].sla must be above zero (for example 15m)", at, i)
			}
		}
	}
	switch {
	case p.Settings.MaxOutage < 0:
		bad("settings.max_outage %s is negative: give how long a delivery may wait for its target (for example 24h)", p.Settings.MaxOutage.D())
	case p.Settings.MaxOutage == 0:
		p.Settings.MaxOutage = Duration(DefaultMaxOutage)
	case p.Settings.MaxOutage.D() < time.Second:
		bad("settings.max_outage %s is under a second: deliveries would fail at the first hiccup of their target", p.Settings.MaxOutage.D())
	}
	if p.Reroute.MaxLoadRatio < 0 {
		bad("reroute.max_load_ratio %v is negative", p.Reroute.MaxLoadRatio)
	}
	if p.Reroute.MaxLoadRatio == 0 {
		p.Reroute.MaxLoadRatio = 1
	}
	for from, alts := range p.Reroute.Alternatives {
		if slices.Contains(alts, from) {
			bad("reroute.alternatives.%s lists %s itself", from, from)
		}
		if len(alts) == 0 {
			bad("reroute.alternatives.%s is empty", from)
		}
	}
	for action, w := range p.Webhooks {
		at := "webhooks." + action
		if !slices.Contains(Actions, action) {
			bad("%s: unknown action, want one of %v", at, Actions)
		}
		if w == nil {
			bad("%s is empty: give url and secret_env", at)
			continue
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s.url %q: want an absolute http or https URL", at, w.URL)
		}
		if w.SecretEnv == "" {
			bad("%s.secret_env is empty: name the environment variable that holds the signing secret", at)
		}
		if w.Timeout < 0 || w.Backoff < 0 || w.MaxBackoff < 0 || w.MaxAttempts < 0 {
			bad("%s: timeout, backoff, max_backoff and max_attempts must not be negative", at)
		}
		w.Timeout = Duration(cmpOr(w.Timeout.D(), 5*time.Second))
		w.Backoff = Duration(cmpOr(w.Backoff.D(), time.Second))
		w.MaxBackoff = Duration(max(cmpOr(w.MaxBackoff.D(), 5*time.Minute), w.Backoff.D()))
		if w.MaxAttempts == 0 {
			w.MaxAttempts = 8
		}
	}
	seen := map[string]bool{}
	p.keep = map[string]time.Duration{}
	for i := range p.Rules {
		r := &p.Rules[i]
		at := fmt.Sprintf("rules[%d]", i)
		if r.ID != "" {
			at = fmt.Sprintf("rules[%d] (%s)", i, r.ID)
		}
		switch {
		case r.ID == "":
			bad("%s.id is empty", at)
		case seen[r.ID]:
			bad("%s.id %q is used twice", at, r.ID)
		case strings.ContainsAny(r.ID, "\x00~"):
			bad("%s.id %q: must not hold NUL or '~'", at, r.ID)
		}
		seen[r.ID] = true
		r.waitKey = r.ID + "~worth"
		if !slices.Contains(Actions, r.Action) {
			bad("%s.action %q is unknown, want one of %v", at, r.Action, Actions)
		}
		if r.Action == ActionEscalate {
			bad("%s.action escalate: escalations come from the ladders (escalation:), not from rules", at)
		}
		if !slices.Contains(Modes, r.Mode) {
			bad("%s.mode %q is unknown, want one of %v", at, r.Mode, Modes)
		}
		if r.Cooldown < 0 {
			bad("%s.cooldown must not be negative", at)
		}
		if r.Limits.Warehouse < 0 || r.Limits.Customer < 0 || r.Limits.Carrier < 0 {
			bad("%s.limits must not be negative (0 means no limit)", at)
		}
		if r.Escalation != "" {
			if _, ok := p.Escalation[r.Escalation]; !ok {
				bad("%s.escalation %q: no such ladder under escalation:", at, r.Escalation)
			}
		}
		if r.RequireAck && r.Escalation == "" {
			bad("%s.require_ack needs escalation: the ladder whose first team acknowledges", at)
		}
		if r.RequireAck && r.Mode == ModeShadow {
			bad("%s.require_ack with mode shadow: a shadow decision is never executed", at)
		}
		if r.Action == ActionReroute && r.Mode != ModeShadow && len(p.Reroute.Alternatives) == 0 {
			bad("%s: reroute_warehouse needs reroute.alternatives to say where orders may go", at)
		}
		p.keep[r.Action] = max(p.keep[r.Action], r.Cooldown.D())
		errs = append(errs, r.When.compile(at+".when")...)
	}
	errs = append(errs, p.validateExceptions()...)
	errs = append(errs, p.validateDataQuality()...)
	errs = append(errs, p.Costs.validate(p.Rules)...)
	errs = append(errs, p.Incidents.validate()...)
	return errors.Join(errs...)
}

func (c *Condition) compile(at string) []error {
	var errs []error
	if c.Risk == nil && len(c.Classes) == 0 && len(c.Features) == 0 && c.Order.empty() {
		errs = append(errs, fmt.Errorf("%s has no condition: a rule must say when it fires", at))
	}
	if c.Risk != nil {
		errs = append(errs, c.Risk.check(at+".risk", true)...)
	}
	c.classes = c.classes[:0]
	for _, name := range sortedKeys(c.Classes) {
		if !slices.Contains(features.ExceptionClasses, name) {
			errs = append(errs, fmt.Errorf("%s.classes.%s: unknown exception class, want one of %v", at, name, features.ExceptionClasses))
			continue
		}
		r := c.Classes[name]
		errs = append(errs, r.check(at+".classes."+name, true)...)
		c.classes = append(c.classes, classRange{name, r})
	}
	c.feats = c.feats[:0]
	for _, name := range sortedKeys(c.Features) {
		idx := slices.Index(features.Names[:], name)
		if idx < 0 {
			errs = append(errs, fmt.Errorf("%s.features.%s: unknown feature of spec %s, want one of %v", at, name, features.SpecVersion, features.Names))
			continue
		}
		r := c.Features[name]
		errs = append(errs, r.check(at+".features."+name, false)...)
		c.feats = append(c.feats, featureRange{idx, r})
	}
	return errs
}

func (m *Match) empty() bool {
	return len(m.Warehouse)+len(m.Customer)+len(m.CustomerTier)+len(m.Channel)+len(m.Carrier) == 0
}

func (r *Range) check(at string, probability bool) []error {
	var errs []error
	bounds := []*float64{r.GT, r.GTE, r.LT, r.LTE, r.EQ}
	n := 0
	for _, b := range bounds {
		if b == nil {
			continue
		}
		n++
		if math.IsNaN(*b) || math.IsInf(*b, 0) {
			errs = append(errs, fmt.Errorf("%s: bounds must be finite numbers", at))
		} else if probability && (*b < 0 || *b > 1) {
			errs = append(errs, fmt.Errorf("%s: bound %v is outside 0..1 (a probability)", at, *b))
		}
	}
	switch {
	case n == 0:
		errs = append(errs, fmt.Errorf("%s has no bound: give gt, gte, lt, lte or eq", at))
	case r.EQ != nil && n > 1:
		errs = append(errs, fmt.Errorf("%s: eq excludes the other bounds", at))
	case r.GT != nil && r.GTE != nil, r.LT != nil && r.LTE != nil:
		errs = append(errs, fmt.Errorf("%s: give at most one lower bound (gt or gte) and one upper bound (lt or lte)", at))
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	for _, b := range []*float64{r.GT, r.GTE} {
		if b != nil {
			lo = *b
		}
	}
	for _, b := range []*float64{r.LT, r.LTE} {
		if b != nil {
			hi = *b
		}
	}
	if lo > hi || (lo == hi && (r.GT != nil || r.LT != nil)) {
		errs = append(errs, fmt.Errorf("%s: no value can satisfy the bounds (lower %v, upper %v)", at, lo, hi))
	}
	return errs
}

// holds reports whether v is within the range.
func (r *Range) holds(v float64) bool {
	switch {
	case r.EQ != nil && v != *r.EQ,
		r.GT != nil && !(v > *r.GT),
		r.GTE != nil && !(v >= *r.GTE),
		r.LT != nil && !(v < *r.LT),
		r.LTE != nil && !(v <= *r.LTE):
		return false
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// explainYAML rewrites the decoder's "field x not found in type actions.Rule" as an
// unknown key.
func explainYAML(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = yamlUnknown.ReplaceAllString(m, `unknown key "$1"`)
	}
	return errors.New(strings.Join(msgs, "; "))
}
