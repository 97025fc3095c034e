package actions

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// ModelRef names the model behind a score.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
}

// Input is what a decision is based on: one scored order.
type Input struct {
	OrderID      string
	At           time.Time // when the decision is taken (event time in replay)
	TriggerEvent string    // id of the event that caused the scoring
	TriggerType  string
	Risk         float64
	Degraded     bool // scored by the rules fallback, not a model
	Model        ModelRef
	Features     *features.Vector
	State        *features.OrderState
}

// Decision is the durable record of one decision. Records are append-only; execution
// outcomes are stored beside them.
type Decision struct {
	ID             string             `json:"id"`
	OrderID        string             `json:"order_id"`
	At             time.Time          `json:"at"`
	TriggerEvent   string             `json:"trigger_event"`
	TriggerType    string             `json:"trigger_type"`
	FeatureSpec    string             `json:"feature_spec"`
	Features       map[string]float32 `json:"features"`
	Model          ModelRef           `json:"model"`
	Scores         map[string]float64 `json:"scores"`
	Degraded       bool               `json:"degraded"`
	PolicyVersion  string             `json:"policy_version"`
	RuleID         string             `json:"rule_id"`
	Action         string             `json:"action"`
	Mode           string             `json:"mode"`
	Status         string             `json:"status"`
	Episode        int                `json:"episode"`
	IdempotencyKey string             `json:"idempotency_key"`
}

// Decision statuses at the time of recording.
const (
	StatusQueued          = "queued"           // in the outbox, to be executed
	StatusPendingApproval = "pending_approval" // waits for a person
	StatusShadow          = "shadow"           // recorded only
)

// Memory is what the policy remembers of one order between batches: per rule, the
// current episode and whether its conditions hold. It is stored with the order.
type Memory map[string]RuleMemory

// RuleMemory is the episode state of one rule for one order.
type RuleMemory struct {
	Episode int  `json:"e"`
	Active  bool `json:"a"`
}

// Decide evaluates every rule for one scored order and returns the decisions taken
// now. A rule decides once when its conditions start to hold (a new episode) and not
// again until they stopped holding. mem is updated in place; the caller stores it in
// the same commit as the decisions.
func (p *Policy) Decide(in *Input, mem Memory, out []Decision) []Decision {
	for i := range p.Rules {
		r := &p.Rules[i]
		holds := r.When.holds(in)
		m := mem[r.ID]
		if !holds {
			if m.Active {
				m.Active = false
				mem[r.ID] = m
			}
			continue
		}
		if m.Active {
			continue
		}
		m.Active = true
		m.Episode++
		mem[r.ID] = m
		out = append(out, p.decision(r, in, m.Episode))
	}
	return out
}

func (c *Condition) holds(in *Input) bool {
	if c.RiskAtLeast != nil && in.Risk < *c.RiskAtLeast {
		return false
	}
	if c.MinutesToCutoffBelow != nil && float64(in.Features[features.FMinutesToCutoff]) >= *c.MinutesToCutoffBelow {
		return false
	}
	if c.OnCreditHold != nil && in.State.OnCreditHold() != *c.OnCreditHold {
		return false
	}
	if c.AllocationShort != nil && in.State.AllocationShort() != *c.AllocationShort {
		return false
	}
	return true
}

func (p *Policy) decision(r *Rule, in *Input, episode int) Decision {
	key := IdempotencyKey(in.OrderID, r.ID, p.Version, episode)
	fv := make(map[string]float32, features.NumFeatures)
	for i, name := range features.Names {
		fv[name] = in.Features[i]
	}
	d := Decision{
		ID:             fmt.Sprintf("%016x-%s", in.At.UnixNano(), key[:8]),
		OrderID:        in.OrderID,
		At:             in.At,
		TriggerEvent:   in.TriggerEvent,
		TriggerType:    in.TriggerType,
		FeatureSpec:    features.SpecVersion,
		Features:       fv,
		Model:          in.Model,
		Scores:         map[string]float64{"cutoff_risk": in.Risk},
		Degraded:       in.Degraded,
		PolicyVersion:  p.Version,
		RuleID:         r.ID,
		Action:         r.Action,
		Mode:           r.Mode,
		Episode:        episode,
		IdempotencyKey: key,
	}
	switch r.Mode {
	case ModeAuto:
		d.Status = StatusQueued
	case ModeApproval:
		d.Status = StatusPendingApproval
	default:
		d.Status = StatusShadow
	}
	return d
}

// IdempotencyKey is the deterministic key of the action a rule takes for an order in
// one episode under one policy version. It is the Nats-Msg-Id of the command.
func IdempotencyKey(order, rule, policyVersion string, episode int) string {
	h := sha256.New()
	for _, s := range []string{order, rule, policyVersion, strconv.Itoa(episode)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Command is the message an executor publishes for a decision.
type Command struct {
	DecisionID     string    `json:"decision_id"`
	OrderID        string    `json:"order_id"`
	Action         string    `json:"action"`
	RuleID         string    `json:"rule_id"`
	PolicyVersion  string    `json:"policy_version"`
	Risk           float64   `json:"risk"`
	Degraded       bool      `json:"degraded"`
	IdempotencyKey string    `json:"idempotency_key"`
	DecidedAt      time.Time `json:"decided_at"`
}

// Command returns the command to execute for d, or false when d's mode does not
// execute now.
func (d *Decision) Command() (Command, bool) {
	if d.Status != StatusQueued {
		return Command{}, false
	}
	return Command{
		DecisionID: d.ID, OrderID: d.OrderID, Action: d.Action, RuleID: d.RuleID,
		PolicyVersion: d.PolicyVersion, Risk: d.Scores["cutoff_risk"], Degraded: d.Degraded,
		IdempotencyKey: d.IdempotencyKey, DecidedAt: d.At,
	}, true
}

// Subject is the JetStream subject of an action type's commands.
func Subject(action string) string { return "orderwatch.actions." + action }
