package actions

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// View is a decision with everything that happened to it since, and its state
// now. It is what the API serves and the CLI prints.
type View struct {
	Decision Decision      `json:"decision"`
	State    string        `json:"state"`
	Waiting  *Waiting      `json:"waiting,omitempty"`
	Trail    []TrailRecord `json:"trail"`
	Attempts []Attempt     `json:"attempts"`
	Outcomes []Outcome     `json:"outcomes"`
	Queued   []string      `json:"queued,omitempty"` // deliveries still in the outbox
}

// Waiting is an open item with its age.
type Waiting struct {
	OpenItem
	AgeSeconds float64 `json:"age_seconds"`
}

// States of a decision, derived from its records.
const (
	StateShadow      = "shadow"
	StateSuppressed  = "suppressed"
	StatePending     = "pending_approval"
	StateRejected    = "rejected"
	StateQueued      = "queued"       // to be published
	StatePublished   = "published"    // the command is in ACTIONS
	StateAwaitingAck = "awaiting_ack" // executed, waits for someone to acknowledge it
	StateAcked       = "acknowledged"
)

// NewView reads a decision's records into a View at now.
func NewView(dv store.DecisionView, now time.Time) (View, error) {
	var v View
	if err := json.Unmarshal(dv.Record, &v.Decision); err != nil {
		return v, fmt.Errorf("actions: decode decision %s: %w", dv.ID, err)
	}
	v.Trail, v.Attempts, v.Outcomes = []TrailRecord{}, []Attempt{}, []Outcome{}
	for _, raw := range dv.Trail {
		var r TrailRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return v, fmt.Errorf("actions: decode trail of %s: %w", dv.ID, err)
		}
		v.Trail = append(v.Trail, r)
	}
	for _, raw := range dv.Attempts {
		var a Attempt
		if err := json.Unmarshal(raw, &a); err != nil {
			return v, fmt.Errorf("actions: decode attempt of %s: %w", dv.ID, err)
		}
		v.Attempts = append(v.Attempts, a)
	}
	for _, suffix := range sortedKeys(dv.Outcomes) {
		var o Outcome
		if err := json.Unmarshal(dv.Outcomes[suffix], &o); err != nil {
			return v, fmt.Errorf("actions: decode outcome of %s%s: %w", dv.ID, suffix, err)
		}
		if o.Entry == "" {
			o.Entry = dv.ID + suffix
		}
		v.Outcomes = append(v.Outcomes, o)
	}
	sort.SliceStable(v.Outcomes, func(i, j int) bool { return v.Outcomes[i].At.Before(v.Outcomes[j].At) })
	for _, q := range dv.Queued {
		v.Queued = append(v.Queued, dv.ID+q)
	}
	if dv.Open != nil {
		var it OpenItem
		if err := json.Unmarshal(dv.Open, &it); err != nil {
			return v, fmt.Errorf("actions: decode open item of %s: %w", dv.ID, err)
		}
		v.Waiting = &Waiting{OpenItem: it, AgeSeconds: max(0, now.Sub(it.Since).Seconds())}
	}
	v.State = v.state(dv)
	return v, nil
}

func (v *View) state(dv store.DecisionView) string {
	switch v.Decision.Status {
	case StatusShadow:
		return StateShadow
	case StatusSuppressed:
		return StateSuppressed
	}
	if v.Waiting != nil && v.Waiting.Kind == OpenApproval {
		return StatePending
	}
	has := func(kind string) bool {
		return slices.ContainsFunc(v.Trail, func(r TrailRecord) bool { return r.Kind == kind })
	}
	switch {
	case has(TrailRejected):
		return StateRejected
	case has(TrailAcknowledged):
		return StateAcked
	case v.Waiting != nil && v.Waiting.Kind == OpenAck:
		return StateAwaitingAck
	case dv.Outcomes[""] != nil:
		return StatePublished
	case v.Decision.Status == StatusPendingApproval && !has(TrailApproved):
		return StatePending // an open item lost: should not happen
	}
	return StateQueued
}

// StateOf is the state NewView gives a decision whose record has status, with
// the open item it waits on (nil when none), read from dv's open item and
// trail alone: for a list that shows a decision's state without decoding the
// rest of its record (dv.Record is not read).
func StateOf(status string, dv store.DecisionView, now time.Time) (string, *Waiting, error) {
	v := View{Decision: Decision{ID: dv.ID, Status: status}}
	for _, raw := range dv.Trail {
		var r TrailRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return "", nil, fmt.Errorf("actions: decode trail of %s: %w", dv.ID, err)
		}
		v.Trail = append(v.Trail, r)
	}
	if dv.Open != nil {
		var it OpenItem
		if err := json.Unmarshal(dv.Open, &it); err != nil {
			return "", nil, fmt.Errorf("actions: decode open item of %s: %w", dv.ID, err)
		}
		v.Waiting = &Waiting{OpenItem: it, AgeSeconds: max(0, now.Sub(it.Since).Seconds())}
	}
	return v.state(dv), v.Waiting, nil
}
