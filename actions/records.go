package actions

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// Delivery targets of outbox entries.
const (
	TargetNATS    = "nats"    // a JetStream command on orderwatch.actions.<action>
	TargetWebhook = "webhook" // an HTTP POST to the action's webhook
)

// entryWebhook suffixes an outbox entry id for the webhook delivery of the same
// command (see store/keys.go).
const entryWebhook = "~webhook"

func escalationEntry(decision string, tier int) string {
	return decision + "~esc" + strconv.Itoa(tier)
}

// job is an outbox entry's value: one delivery of one command.
type job struct {
	Target  string          `json:"target"`
	Action  string          `json:"action"`
	MsgID   string          `json:"msg_id"`
	Command json.RawMessage `json:"command"`
}

// decodeJob reads an outbox entry; a bare Command (as the first releases wrote) is
// a JetStream delivery.
func decodeJob(v []byte) (job, error) {
	var j job
	if err := json.Unmarshal(v, &j); err != nil {
		return j, err
	}
	if j.Command != nil {
		return j, nil
	}
	var c Command
	if err := json.Unmarshal(v, &c); err != nil {
		return j, err
	}
	if c.Action == "" || c.IdempotencyKey == "" {
		return j, fmt.Errorf("neither a delivery nor a command")
	}
	return job{Target: TargetNATS, Action: c.Action, MsgID: c.IdempotencyKey, Command: v}, nil
}

// What an open item waits for.
const (
	OpenApproval = "approval" // a person to approve or reject the decision
	OpenAck      = "ack"      // a person to acknowledge the executed action
)

// OpenItem is a decision waiting for a person, with its place on the escalation
// ladder. The ladder is copied from the policy when the wait starts, so a changed
// policy does not change a running escalation.
type OpenItem struct {
	Kind           string    `json:"kind"`
	DecisionID     string    `json:"decision_id"`
	OrderID        string    `json:"order_id"`
	Action         string    `json:"action"`
	RuleID         string    `json:"rule_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	Since          time.Time `json:"since"`
	Tier           int       `json:"tier"`
	Team           string    `json:"team,omitempty"`
	Due            time.Time `json:"due,omitzero"` // the current tier's SLA ends; zero when no escalation is left
	Ladder         Ladder    `json:"ladder,omitempty"`
	RequireAck     bool      `json:"require_ack,omitempty"`
}

// openItem starts a wait for a person: the open item, and the timer of the first
// tier when there is a ladder.
func openItem(b *store.Batch, d *Decision, kind string, ladder Ladder, since time.Time) error {
	it := OpenItem{Kind: kind, DecisionID: d.ID, OrderID: d.OrderID, Action: d.Action, RuleID: d.RuleID,
		IdempotencyKey: d.IdempotencyKey, Since: since, Ladder: ladder, RequireAck: d.RequireAck}
	if len(ladder) > 0 {
		it.Team, it.Due = ladder[0].Team, since.Add(ladder[0].SLA.D())
		if err := b.PutTimer(it.Due, d.ID, []byte(kind)); err != nil {
			return err
		}
	}
	return putOpen(b, &it)
}

func putOpen(b *store.Batch, it *OpenItem) error {
	v, err := it.appendJSON(make([]byte, 0, 512)) // a three-tier ladder fits
	if err != nil {
		return fmt.Errorf("encode open item of %s: %w", it.DecisionID, err)
	}
	return b.PutOpen(it.DecisionID, v)
}

// Kinds of trail records.
const (
	TrailApproved     = "approved"
	TrailRejected     = "rejected"
	TrailAcknowledged = "acknowledged"
	TrailEscalated    = "escalated"        // the next tier owns the wait
	TrailExhausted    = "ladder_exhausted" // the last tier's SLA passed too; the wait goes on
)

// TrailRecord is one entry of a decision's trail: who did what and why.
type TrailRecord struct {
	At         time.Time `json:"at"`
	Kind       string    `json:"kind"`
	DecisionID string    `json:"decision_id"`
	By         string    `json:"by,omitempty"`
	OnBehalfOf string    `json:"on_behalf_of,omitempty"` // a machine client's declared person, unverified
	Reason     string    `json:"reason,omitempty"`
	Waiting    string    `json:"waiting,omitempty"` // escalations: approval or ack
	Tier       int       `json:"tier,omitempty"`
	Team       string    `json:"team,omitempty"`
	FromTeam   string    `json:"from_team,omitempty"`
}

func appendTrail(b *store.Batch, r *TrailRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode trail record of %s: %w", r.DecisionID, err)
	}
	return b.AppendTrail(r.DecisionID, r.At, r.Kind, v)
}

// Attempt is one try to deliver an outbox entry.
type Attempt struct {
	At         time.Time `json:"at"`
	Entry      string    `json:"entry"`
	Target     string    `json:"target"`
	N          int       `json:"attempt"`
	OK         bool      `json:"ok"`
	HTTPStatus int       `json:"http_status,omitempty"`
	Error      string    `json:"error,omitempty"`
	Seconds    float64   `json:"duration_seconds"`
}

// Final statuses of an outbox entry.
const (
	OutcomePublished = "published" // the JetStream command is in ACTIONS
	OutcomeDelivered = "delivered" // the webhook answered 2xx
	OutcomeFailed    = "failed"    // the webhook refused it or every attempt failed
)

// Outcome is stored once an outbox entry is done.
type Outcome struct {
	Entry    string    `json:"entry"`
	Target   string    `json:"target"`
	Status   string    `json:"status"`
	Subject  string    `json:"subject,omitempty"`
	URL      string    `json:"url,omitempty"`
	At       time.Time `json:"at"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
	// Deduplicated: JetStream had the command already, from an earlier publish
	// with its Nats-Msg-Id (as after a takeover), and dropped this one.
	Deduplicated bool `json:"deduplicated,omitempty"`
}
