// Package whatif replays the same events through a baseline and a candidate
// (another policy, other models, or both), each on its own scratch store, and
// compares what they decide: decisions added, removed and changed, and per run
// the approvals they ask of each team, the suppressions, the lead time before
// the cutoff and the precision and recall of the actions. `orderwatch whatif`
// is its command; nothing else should need it.
package whatif

import (
	"sync"
	"time"
)

// Record is one decision of a run, kept compact: 64 bytes and its order
// id. The strings of a few distinct values (actions, rules, statuses, reasons,
// targets, teams, models) are indices into the run's Names.
type Record struct {
	Order string
	At    int64   // unix nanoseconds, event time
	Key   [8]byte // the idempotency key's first 8 digits: with At, the decision id
	// Episode is the rule's episode for the order (actions.Decision.Episode):
	// the Episode-th time its conditions started to hold, counted from the
	// start of the replay. Order, Action, Rule and Episode are the key that
	// tells the same decision in two runs.
	Episode int32
	Lead    int32   // minutes from the decision to the order's cutoff (the decision's minutes_to_cutoff)
	Risk    float32 // cutoff_risk at the decision
	Value   float32 // the order's value at the decision, for its miss cost
	Tier    uint8   // the customer's tier: 1 + its index in features.CustomerTiers; 0: none known
	Action  uint16
	Rule    uint16
	Status  uint16
	Reason  uint16 // the suppression reason; 0 when not suppressed
	Target  uint16 // a reroute's warehouse; 0 when none
	Team    uint16 // who approves or acknowledges; 0 when none
	Model   uint16 // the risk model, name@version, or rules_fallback
}

// at returns r's time.
func (r *Record) at() time.Time { return time.Unix(0, r.At).UTC() }

// Names interns the few distinct strings of decisions; index 0 is "". Safe for
// concurrent use: both runs of a comparison share one, so that their indices
// compare.
type Names struct {
	mu    sync.Mutex
	index map[string]uint16
	names []string
}

// NewNames returns an empty table.
func NewNames() *Names {
	return &Names{index: map[string]uint16{"": 0}, names: []string{""}}
}

// id returns the index of s, adding it. More than 65,535 distinct values is
// ErrTooManyNames.
func (n *Names) id(s string) (uint16, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i, ok := n.index[s]; ok {
		return i, nil
	}
	if len(n.names) > 0xffff {
		return 0, ErrTooManyNames
	}
	i := uint16(len(n.names))
	n.index[s] = i
	n.names = append(n.names, s)
	return i, nil
}

// Name returns the string of index i.
func (n *Names) Name(i uint16) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.names[i]
}

// all returns the names so far. The table only grows, so the slice stays
// valid without the lock.
func (n *Names) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.names
}
