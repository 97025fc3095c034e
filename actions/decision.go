package actions

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Input is what a decision is based on: one scored order.
type Input struct {
	OrderID      string
	At           time.Time // when the decision is taken (event time in replay)
	TriggerEvent string    // id of the event that caused the scoring
	TriggerType  string
	Risk         float64
	// Classes holds the exception_class probabilities by class name
	// (features.ExceptionClasses); nil when that model did not score the order.
	Classes    map[string]float64
	ClassModel ModelRef // the exception_class model behind Classes
	// Shadow holds the risk of shadow models by "name@version": recorded, never
	// acted on.
	Shadow   map[string]float64
	Degraded bool // scored by the rules fallback, not a model
	// Last is the order's last written score point, which Decide reads and,
	// when it writes a new one, updates in place; the caller keeps it with the
	// order. Nil writes a point for every scoring.
	Last     *ScoreMark
	Model    ModelRef
	Features *features.Vector
	State    *features.OrderState
	// Context holds the warehouse and carrier aggregates; reroutes look up the
	// alternatives' load in it. Nil means nothing is known, and a reroute is
	// suppressed for want of an alternative.
	Context *features.Context
}

// Decision is the durable record of one decision. Records are append-only; what
// happens later (approval, execution attempts, escalations, acknowledgement) is
// stored beside them.
type Decision struct {
	ID             string             `json:"id"`
	OrderID        string             `json:"order_id"`
	At             time.Time          `json:"at"`
	TriggerEvent   string             `json:"trigger_event"`
	TriggerType    string             `json:"trigger_type"`
	FeatureSpec    string             `json:"feature_spec"`
	Features       map[string]float32 `json:"features"`
	Attributes     map[string]string  `json:"attributes,omitempty"` // warehouse, customer, customer_tier, channel, carrier
	Model          ModelRef           `json:"model"`
	ClassModel     *ModelRef          `json:"class_model,omitempty"`
	Scores         map[string]float64 `json:"scores"` // cutoff_risk, and exception_class:<class> per class
	ShadowScores   map[string]float64 `json:"shadow_scores,omitempty"`
	Reasons        []string           `json:"reasons,omitempty"` // the risk's top drivers, set by the pipeline before Record
	Degraded       bool               `json:"degraded"`
	PolicyVersion  string             `json:"policy_version"`
	RuleID         string             `json:"rule_id"`
	Action         string             `json:"action"`
	Mode           string             `json:"mode"`
	Status         string             `json:"status"`
	SuppressedBy   string             `json:"suppressed_by,omitempty"`     // why a decision was not executed (a Suppressed* reason)
	SuppressedNote string             `json:"suppressed_detail,omitempty"` // the particulars, for people
	Target         string             `json:"target,omitempty"`            // reroute: the warehouse to move to
	Escalation     string             `json:"escalation,omitempty"`        // the ladder of a wait
	Team           string             `json:"team,omitempty"`              // tier 0 of the ladder: who approves or acknowledges
	RequireAck     bool               `json:"require_ack,omitempty"`
	Cost           *Cost              `json:"cost,omitempty"` // the expected value, when the policy states costs
	Episode        int                `json:"episode"`
	IdempotencyKey string             `json:"idempotency_key"`
}

// Decision statuses at the time of recording.
const (
	StatusQueued          = "queued"           // in the outbox, to be executed
	StatusPendingApproval = "pending_approval" // waits for a person
	StatusShadow          = "shadow"           // recorded only, by the rule's mode
	StatusSuppressed      = "suppressed"       // would have fired; SuppressedBy says why not
)

// Reasons a decision is suppressed; the label values of
// orderwatch_decisions_suppressed_total.
const (
	SuppressedKillSwitchPolicy  = "kill_switch:policy"  // settings.kill_switch
	SuppressedKillSwitchRuntime = "kill_switch:runtime" // POST /api/v1/killswitch
	SuppressedDryRun            = "dry_run"             // settings.dry_run
	SuppressedNoAlternative     = "no_alternative"      // reroute: no alternative warehouse can take it
	SuppressedCooldown          = "cooldown"            // the action fired for the order within the rule's cooldown
	SuppressedRateWarehouse     = "rate_limit:" + ScopeWarehouse
	SuppressedRateCustomer      = "rate_limit:" + ScopeCustomer
	SuppressedRateCarrier       = "rate_limit:" + ScopeCarrier
	SuppressedNotWorthIt        = "not_worth_it" // a cost_aware rule whose expected saving does not exceed the action's cost (cost.go)
)

// counterSuppressed prefixes the durable counters of suppressed decisions by reason.
const counterSuppressed = "suppressed:"

// rateWindow is the span of the rate limits.
const rateWindow = time.Hour

// scoreKeep is how long an order's score points are kept: as long as timelines are
// by default.
const scoreKeep = 30 * 24 * time.Hour

// Decide evaluates every rule for the order, records the order's score point
// into b, the pipeline's batch, when it says something (recordScore), and
// returns out with the decisions taken now appended. The caller then passes
// each to Record, in the same batch.
//
// A rule decides once when its conditions start to hold (a new episode) and not
// again until they stopped holding; but a cost-aware rule found not worth it
// starts a new episode, and decides again, once it pays while they still hold.
// Governance then says what becomes of the decision: shadow mode records it
// only; the kill switch, a cost-aware rule's saving not exceeding its cost
// (not_worth_it), dry run, a reroute without an alternative, the cooldown and
// the rate limits suppress it, in that order, and the status says which. A
// decision that may fire takes its place in the rate-limit windows and the
// cooldown, written into b. mem is updated in
// place; the caller stores it in the same commit.
func (p *Policy) Decide(b *store.Batch, in *Input, mem Memory, out []Decision) ([]Decision, error) {
	first := len(out)
	for i := range p.Rules {
		r := &p.Rules[i]
		holds := r.When.holds(in)
		m := mem[r.ID]
		if !holds {
			if m.Active {
				m.Active = false
				mem[r.ID] = m
				delete(mem, r.waitKey)
			}
			continue
		}
		if m.Active && !p.nowWorth(r, in, mem) {
			continue
		}
		m.Active = true
		m.Episode++
		mem[r.ID] = m
		d := p.decision(r, in, m.Episode)
		if err := p.govern(b, r, in, &d); err != nil {
			return out, fmt.Errorf("govern rule %s for order %s: %w", r.ID, in.OrderID, err)
		}
		if d.SuppressedBy == SuppressedNotWorthIt {
			mem[r.waitKey] = RuleMemory{Active: true}
		}
		out = append(out, d)
	}
	if err := p.recordScore(b, in, len(out) > first); err != nil {
		return out, err
	}
	return out, nil
}

// Queued reports whether the decision put a command into the outbox.
func (d *Decision) Queued() bool { return d.Status == StatusQueued }

func (c *Condition) holds(in *Input) bool {
	if c.Risk != nil && !c.Risk.holds(in.Risk) {
		return false
	}
	for i := range c.classes {
		cr := &c.classes[i]
		v, ok := in.Classes[cr.name]
		if !ok || !cr.r.holds(v) {
			return false
		}
	}
	for _, f := range c.feats {
		if !f.r.holds(float64(in.Features[f.idx])) {
			return false
		}
	}
	m, s := &c.Order, in.State
	return allows(m.Warehouse, s.Warehouse) && allows(m.Customer, s.CustomerID) &&
		allows(m.CustomerTier, s.CustomerTier) && allows(m.Channel, s.Channel) && allows(m.Carrier, s.Carrier)
}

func allows(set Set, v string) bool {
	if len(set) == 0 {
		return true
	}
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}

func (p *Policy) decision(r *Rule, in *Input, episode int) Decision {
	key := IdempotencyKey(in.OrderID, r.ID, p.Version, episode)
	fv := make(map[string]float32, features.NumFeatures)
	for i, name := range features.Names {
		fv[name] = in.Features[i]
	}
	scores := make(map[string]float64, 1+len(in.Classes))
	scores["cutoff_risk"] = in.Risk
	for c, v := range in.Classes {
		scores[classScoreKey(c)] = v
	}
	s := in.State
	attrs := make(map[string]string, 5)
	for _, a := range [...]struct{ k, v string }{{"warehouse", s.Warehouse}, {"customer", s.CustomerID},
		{"customer_tier", s.CustomerTier}, {"channel", s.Channel}, {"carrier", s.Carrier}} {
		if a.v != "" {
			attrs[a.k] = a.v
		}
	}
	var classModel *ModelRef
	if in.Classes != nil {
		cm := in.ClassModel
		classModel = &cm
	}
	d := Decision{
		ID:             decisionID(in.At, key),
		OrderID:        in.OrderID,
		At:             in.At,
		TriggerEvent:   in.TriggerEvent,
		TriggerType:    in.TriggerType,
		FeatureSpec:    features.SpecVersion,
		Features:       fv,
		Attributes:     attrs,
		Model:          in.Model,
		ClassModel:     classModel,
		Scores:         scores,
		ShadowScores:   in.Shadow,
		Degraded:       in.Degraded,
		PolicyVersion:  p.Version,
		RuleID:         r.ID,
		Action:         r.Action,
		Mode:           r.Mode,
		Episode:        episode,
		IdempotencyKey: key,
		RequireAck:     r.RequireAck,
		Escalation:     r.Escalation,
		Cost:           p.estimate(r, in),
	}
	if l := p.Escalation[r.Escalation]; len(l) > 0 {
		d.Team = l[0].Team
	}
	return d
}

// govern sets the decision's status: shadow, suppressed (and why) or, when it may
// fire, queued or pending approval, taking its place in the cooldown and the rate
// windows. A rate window counts this member's times, from b, and the other
// members' (UseRateShare).
func (p *Policy) govern(b *store.Batch, r *Rule, in *Input, d *Decision) error {
	if r.Mode == ModeShadow {
		d.Status = StatusShadow
		if r.Action == ActionReroute {
			d.Target, _ = p.rerouteTarget(in)
		}
		return nil
	}
	suppress := func(reason, format string, a ...any) {
		d.Status, d.SuppressedBy, d.SuppressedNote = StatusSuppressed, reason, fmt.Sprintf(format, a...)
	}
	var why string
	if r.Action == ActionReroute {
		d.Target, why = p.rerouteTarget(in)
	}
	if halted, reason := p.Halted(); halted {
		if reason == SuppressedKillSwitchPolicy {
			suppress(reason, "the policy's settings.kill_switch is on")
		} else {
			ks := p.kill.State()
			suppress(reason, "kill switch turned on by %s at %s: %s", ks.By, ks.At.Format(time.RFC3339), ks.Reason)
		}
		return nil
	}
	if no, why := notWorth(r, d); no {
		suppress(SuppressedNotWorthIt, "%s", why)
		return nil
	}
	if p.Settings.DryRun {
		would := StatusQueued
		if r.Mode == ModeApproval {
			would = StatusPendingApproval
		}
		suppress(SuppressedDryRun, "dry run: would have been %s", would)
		return nil
	}
	if r.Action == ActionReroute && d.Target == "" {
		suppress(SuppressedNoAlternative, "%s", why)
		return nil
	}
	order, action := in.OrderID, r.Action
	if r.Cooldown > 0 {
		last, err := b.LastFired(order, action)
		if err != nil {
			return err
		}
		if since := absDur(in.At.Sub(last)); !last.IsZero() && since < r.Cooldown.D() {
			suppress(SuppressedCooldown, "%s fired for this order at %s, within the cooldown of %s", action, last.Format(time.RFC3339), r.Cooldown.D())
			return nil
		}
	}
	type window struct {
		scope, value string
		limit        int
		times        []int64
	}
	var buf [3]window
	windows := buf[:0]
	s := in.State
	for _, w := range [...]window{
		{ScopeWarehouse, s.Warehouse, r.Limits.Warehouse, nil},
		{ScopeCustomer, s.CustomerID, r.Limits.Customer, nil},
		{ScopeCarrier, s.Carrier, r.Limits.Carrier, nil},
	} {
		if w.limit == 0 || w.value == "" {
			continue
		}
		times, err := b.RateWindow(action, w.scope, w.value)
		if err != nil {
			return err
		}
		w.times = inWindow(times, in.At)
		// The other members' decisions count too (UseRateShare).
		others := p.rates.count(action, w.scope, w.value, in.At.Add(-rateWindow).UnixNano())
		if n := len(w.times) + others; n >= w.limit {
			suppress("rate_limit:"+w.scope, "%s %s had %d %s decisions in the hour before %s (%d by other members), the limit is %d",
				w.scope, w.value, n, action, in.At.Format(time.RFC3339), others, w.limit)
			return nil
		}
		windows = append(windows, w)
	}
	// It fires: take its place in the windows and the cooldown.
	for _, w := range windows {
		if err := b.PutRateWindow(action, w.scope, w.value, append(w.times, in.At.UnixNano()), 2*rateWindow); err != nil {
			return err
		}
		p.rates.changed(action, w.scope, w.value, in.At.UnixNano())
	}
	if keep := p.keep[action]; keep > 0 {
		if err := b.PutLastFired(order, action, in.At, keep+time.Hour); err != nil {
			return err
		}
	}
	if r.Mode == ModeApproval {
		d.Status = StatusPendingApproval
	} else {
		d.Status = StatusQueued
	}
	return nil
}

// inWindow keeps the times within the rate window before at (and any at or after
// it), in order, in place.
func inWindow(times []int64, at time.Time) []int64 {
	from := at.Add(-rateWindow).UnixNano()
	out := times[:0]
	for _, t := range times {
		if t > from {
			out = append(out, t)
		}
	}
	return out
}

// rerouteTarget picks the listed alternative with the least backlog below
// reroute.max_load_ratio and no outage, or says why there is none.
func (p *Policy) rerouteTarget(in *Input) (string, string) {
	from := in.State.Warehouse
	alts := p.Reroute.Alternatives[from]
	if len(alts) == 0 {
		return "", fmt.Sprintf("reroute.alternatives lists no alternative for warehouse %q", from)
	}
	best, bestRatio := "", 0.0
	var notes []string
	for _, a := range alts {
		var w *features.Warehouse
		if in.Context != nil {
			w = in.Context.Warehouses[a]
		}
		switch {
		case w == nil || w.Capacity <= 0:
			notes = append(notes, a+": no load report")
		case w.Outage:
			notes = append(notes, a+": outage")
		case w.Queue/w.Capacity >= p.Reroute.MaxLoadRatio:
			notes = append(notes, fmt.Sprintf("%s: backlog %.2f h, at or above %.2f", a, w.Queue/w.Capacity, p.Reroute.MaxLoadRatio))
		case best == "" || w.Queue/w.Capacity < bestRatio:
			best, bestRatio = a, w.Queue/w.Capacity
		}
	}
	if best != "" {
		return best, ""
	}
	return "", fmt.Sprintf("no alternative to %s can take the order: %v", from, notes)
}

// Record writes a decision Decide returned, and what it starts, into the batch:
// the decision record; for a queued one its outbox entries (the JetStream command,
// and the webhook delivery when the action has one) and, with require_ack, the wait
// for an acknowledgement; for one pending approval its open item and escalation
// timer; for a suppressed one the count of its reason. A wait starts at the
// decision's moment (see RecordSince).
func (p *Policy) Record(b *store.Batch, d *Decision) error { return p.RecordSince(b, d, d.At) }

// RecordSince is Record with the wait for a person (approval, acknowledgement)
// starting at since, its SLA running from then: a decision made on history being
// caught up on (the demo's backlog) is dated when its events happened, but people
// see it only now.
func (p *Policy) RecordSince(b *store.Batch, d *Decision, since time.Time) error {
	buf := p.buffer()
	raw, err := d.appendJSON((*buf)[:0])
	if err != nil {
		p.release(buf, raw)
		return fmt.Errorf("encode decision for order %s: %w", d.OrderID, err)
	}
	rec := bytes.Clone(raw)
	p.release(buf, raw)
	if err := b.PutDecision(d.ID, d.OrderID, rec); err != nil {
		return err
	}
	b.Add(store.CounterDecisions, 1)
	ladder := p.Escalation[d.Escalation]
	switch d.Status {
	case StatusSuppressed:
		b.Add(counterSuppressed+d.SuppressedBy, 1)
	case StatusQueued:
		cmd := d.Command()
		if err := p.enqueue(b, d.ID, &cmd, d.IdempotencyKey); err != nil {
			return err
		}
		if d.RequireAck {
			return openItem(b, d, OpenAck, ladder, since)
		}
	case StatusPendingApproval:
		return openItem(b, d, OpenApproval, ladder, since)
	}
	return nil
}

// enqueue puts a command into the outbox under entry, for JetStream, and for the
// action's webhook when the policy has one.
func (p *Policy) enqueue(b *store.Batch, entry string, cmd *Command, msgID string) error {
	buf := p.buffer()
	body, err := cmd.appendJSON((*buf)[:0])
	if err != nil {
		p.release(buf, body)
		return fmt.Errorf("encode command for order %s: %w", cmd.OrderID, err)
	}
	_, webhook := p.Webhooks[cmd.Action]
	// The outbox entries go after the command in the scratch buffer, each cloned
	// to its own exact allocation for the batch to keep.
	j := job{Target: TargetNATS, Action: cmd.Action, MsgID: msgID, Command: body}
	nats := j.appendJSON(body[len(body):])
	v := bytes.Clone(nats)
	var hook []byte
	if webhook {
		j.Target = TargetWebhook
		all := j.appendJSON(nats[len(nats):])
		hook = bytes.Clone(all)
		nats = all
	}
	p.release(buf, nats)
	if err := b.Enqueue(entry, v); err != nil {
		return err
	}
	if !webhook {
		return nil
	}
	return b.Enqueue(entry+entryWebhook, hook)
}

// recordScore adds the order's score point to its history, in its binary form,
// when the scoring decided something (decided) or says what in.Last, the point
// written before, did not (ScoreMark.says); then in.Last is the new point. A
// point for every scoring was the largest share of what the pipeline wrote
// after the events themselves (issue 20); the order record keeps the latest
// risk whether or not a point is written.
func (p *Policy) recordScore(b *store.Batch, in *Input, decided bool) error {
	var top string
	if in.Last != nil {
		top = topClass(in.Classes)
		if !decided && !in.Last.says(in, top) {
			return nil
		}
	}
	pt := ScorePoint{At: in.At, Trigger: in.TriggerType, Event: in.TriggerEvent, Risk: in.Risk,
		Classes: in.Classes, Shadow: in.Shadow, Degraded: in.Degraded}
	buf := p.buffer()
	v, err := pt.appendBinary((*buf)[:0], &in.Model) // Model: name@version
	if err == nil {
		err = b.AppendScore(in.OrderID, in.At, v, scoreKeep) // copies v
	} else {
		err = fmt.Errorf("encode score of order %s: %w", in.OrderID, err)
	}
	p.release(buf, v)
	if err == nil && in.Last != nil {
		in.Last.set(in, top)
	}
	return err
}

// IdempotencyKey is the deterministic key of the action a rule takes for an order in
// one episode under one policy version. It is the Nats-Msg-Id of the command.
func IdempotencyKey(order, rule, policyVersion string, episode int) string {
	return hashKey(order, rule, policyVersion, strconv.Itoa(episode))
}

// escalationKey is the idempotency key of a decision's escalation to a tier.
func escalationKey(decisionKey string, tier int) string {
	return hashKey(decisionKey, ActionEscalate, strconv.Itoa(tier))
}

func hashKey(parts ...string) string {
	var in [192]byte
	b := in[:0]
	for _, s := range parts {
		b = append(b, s...)
		b = append(b, 0)
	}
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// decisionID is the id of the decision with the idempotency key taken at t: the
// store's time prefix, '-' and the key's first 8 digits.
func decisionID(t time.Time, key string) string {
	var buf [32]byte
	b := store.AppendDecisionIDPrefix(buf[:0], t)
	b = append(b, '-')
	return string(append(b, key[:8]...))
}

// classScoreKeys are the decision score names of the exception classes.
var classScoreKeys = func() map[string]string {
	m := make(map[string]string, len(features.ExceptionClasses))
	for _, c := range features.ExceptionClasses {
		m[c] = "exception_class:" + c
	}
	return m
}()

// classScoreKey names the score of an exception class in a decision.
func classScoreKey(class string) string {
	if k, ok := classScoreKeys[class]; ok {
		return k
	}
	return "exception_class:" + class
}

// Command is the message an executor publishes (and posts to a webhook) for a
// decision. Consumers deduplicate by IdempotencyKey.
type Command struct {
	DecisionID     string             `json:"decision_id"`
	OrderID        string             `json:"order_id"`
	Action         string             `json:"action"`
	RuleID         string             `json:"rule_id"`
	PolicyVersion  string             `json:"policy_version"`
	Risk           float64            `json:"risk"`
	Classes        map[string]float64 `json:"classes,omitempty"`
	Reasons        []string           `json:"reasons,omitempty"`
	Degraded       bool               `json:"degraded"`
	IdempotencyKey string             `json:"idempotency_key"`
	DecidedAt      time.Time          `json:"decided_at"`
	Warehouse      string             `json:"warehouse,omitempty"`
	Customer       string             `json:"customer,omitempty"`
	Carrier        string             `json:"carrier,omitempty"`
	Target         string             `json:"target,omitempty"` // reroute_warehouse: move the order here
	Team           string             `json:"team,omitempty"`   // who owns it (escalate: the new tier's team)
	ApprovedBy     string             `json:"approved_by,omitempty"`
	ApprovalReason string             `json:"approval_reason,omitempty"`
	ApprovedAt     time.Time          `json:"approved_at,omitzero"`
	// Escalate commands: the decision's action, the tier it moved to, and what it
	// waits for ("approval" or "ack") since when.
	Escalates    string    `json:"escalates,omitempty"`
	Tier         int       `json:"tier,omitempty"`
	Waiting      string    `json:"waiting,omitempty"`
	WaitingSince time.Time `json:"waiting_since,omitzero"`
}

// Command returns the command that executes d.
func (d *Decision) Command() Command {
	classes := map[string]float64{}
	for k, v := range d.Scores {
		if c, ok := strings.CutPrefix(k, "exception_class:"); ok {
			classes[c] = v
		}
	}
	if len(classes) == 0 {
		classes = nil
	}
	return Command{
		DecisionID: d.ID, OrderID: d.OrderID, Action: d.Action, RuleID: d.RuleID,
		PolicyVersion: d.PolicyVersion, Risk: d.Scores["cutoff_risk"], Classes: classes, Reasons: d.Reasons, Degraded: d.Degraded,
		IdempotencyKey: d.IdempotencyKey, DecidedAt: d.At, Warehouse: d.Attributes["warehouse"],
		Customer: d.Attributes["customer"], Carrier: d.Attributes["carrier"], Target: d.Target, Team: d.Team,
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Subject is the JetStream subject of an action type's commands.
func Subject(action string) string { return "orderwatch.actions." + action }
