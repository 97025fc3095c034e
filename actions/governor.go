package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// GovernorOptions configures a Governor.
type GovernorOptions struct {
	Store  *store.Store // required
	Policy *Live        // required; its kill switch (UseKillSwitch) is the one SetKillSwitch turns
	// Wake is called after a change queued commands (the executor's Wake).
	Wake func()
	// Clock gives the time of approvals and escalations; nil means time.Now.
	Clock func() time.Time
	// Interval between scans for escalation timers that are due. Zero means 1s.
	Interval time.Duration
	// Changed is told the order of a decision whose wait changed (answered or
	// escalated), after the commit that marked its governance changed
	// (store.MarkGovernance): the governance replica's Changed. Nil means nobody.
	Changed    func(order string)
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

// Governor applies what people decide about decisions (approve, reject,
// acknowledge, the runtime kill switch) and escalates a decision that waits past
// its tier's SLA to the next team of its ladder. Every change is one Badger commit
// holding the trail record and the commands it queues; two changes racing for the
// same decision conflict and the later one sees the earlier's result. All methods
// are safe for concurrent use; Run blocks.
type Governor struct {
	opts        GovernorOptions
	log         *slog.Logger
	escalations *prometheus.CounterVec
	answers     *prometheus.CounterVec
}

// NewGovernor validates opts and builds a governor. With a Registerer it also
// registers the gauges read from the store at scrape time: pending approvals, the
// oldest one's age, pending acknowledgements, suppressed decisions by reason and
// the kill switch.
func NewGovernor(opts GovernorOptions) (*Governor, error) {
	if opts.Store == nil || opts.Policy == nil {
		return nil, errors.New("actions: GovernorOptions.Store and .Policy are required")
	}
	if opts.Wake == nil {
		opts.Wake = func() {}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Governor{
		opts: opts,
		log:  opts.Logger.With("component", "governor"),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_escalations_total",
			Help: "Waiting decisions moved to a tier of their escalation ladder (tier 1 is the first escalation), by tier and what they wait for.",
		}, []string{"tier", "waiting"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_approval_answers_total",
			Help: "Answers people gave to waiting decisions: approved, rejected, acknowledged.",
		}, []string{"answer"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{g.escalations, g.answers, newStoreCollector(opts.Store, opts.Policy, opts.Clock)} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("actions: register governor metrics: %w", err)
			}
		}
	}
	return g, nil
}

// Run escalates due waits until ctx is done. Waits that fell due while the process
// was down escalate on the first pass.
func (g *Governor) Run(ctx context.Context) error {
	t := time.NewTicker(g.opts.Interval)
	defer t.Stop()
	var failing bool
	for {
		if _, err := g.EscalateDue(); err != nil {
			if !failing {
				g.log.Error("escalation pass failed, will retry", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EscalateDue moves every wait whose tier's SLA has ended by now to its next tier
// and reports how many moved.
func (g *Governor) EscalateDue() (int, error) {
	now := g.opts.Clock().UTC()
	moved := 0
	for range 64 { // bounded: 64 pages of 256 per pass
		timers, err := g.opts.Store.DueTimers(now, 256)
		if err != nil {
			return moved, err
		}
		for _, t := range timers {
			ok, err := g.escalate(t, now)
			if err != nil {
				return moved, fmt.Errorf("escalate decision %s: %w", t.Decision, err)
			}
			if ok {
				moved++
			}
		}
		if len(timers) < 256 {
			break
		}
	}
	if moved > 0 {
		g.opts.Wake()
	}
	return moved, nil
}

func (g *Governor) escalate(t store.Timer, now time.Time) (bool, error) {
	var moved bool
	var order string
	var tier int
	var waiting string
	err := g.update(func(b *store.Batch) error {
		moved = false
		if _, err := b.Timer(t.Due, t.Decision); errors.Is(err, store.ErrNotFound) {
			return nil // answered or moved meanwhile
		} else if err != nil {
			return err
		}
		if err := b.DeleteTimer(t.Due, t.Decision); err != nil {
			return err
		}
		it, err := readOpen(b, t.Decision)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !it.Due.Equal(t.Due)) {
			return nil // a stale timer: drop it
		}
		if err != nil {
			return err
		}
		order = it.OrderID
		if err := g.markChanged(b, order); err != nil {
			return err
		}
		from := it.Team
		rec := TrailRecord{At: now, DecisionID: it.DecisionID, Waiting: it.Kind, FromTeam: from,
			Reason: fmt.Sprintf("waiting for %s since %s; %s's SLA ended at %s", waitingFor(it.Kind),
				it.Since.Format(time.RFC3339), from, it.Due.Format(time.RFC3339))}
		next := it.Tier + 1
		if next >= len(it.Ladder) {
			it.Due = time.Time{}
			rec.Kind, rec.Tier, rec.Team = TrailExhausted, it.Tier, from
			if err := putOpen(b, &it); err != nil {
				return err
			}
			return appendTrail(b, &rec)
		}
		it.Tier, it.Team, it.Due = next, it.Ladder[next].Team, now.Add(it.Ladder[next].SLA.D())
		rec.Kind, rec.Tier, rec.Team = TrailEscalated, next, it.Team
		if err := b.PutTimer(it.Due, it.DecisionID, []byte(it.Kind)); err != nil {
			return err
		}
		if err := putOpen(b, &it); err != nil {
			return err
		}
		if err := appendTrail(b, &rec); err != nil {
			return err
		}
		raw, err := b.Decision(it.DecisionID)
		if err != nil {
			return fmt.Errorf("read decision: %w", err)
		}
		var d Decision
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode decision: %w", err)
		}
		cmd := d.Command()
		cmd.Action, cmd.Escalates, cmd.Tier, cmd.Team = ActionEscalate, d.Action, next, it.Team
		cmd.Waiting, cmd.WaitingSince = it.Kind, it.Since
		cmd.IdempotencyKey = escalationKey(d.IdempotencyKey, next)
		moved, tier, waiting = true, next, it.Kind
		return g.opts.Policy.Policy().enqueue(b, escalationEntry(d.ID, next), &cmd, cmd.IdempotencyKey)
	})
	if err == nil {
		g.changed(order)
	}
	if moved {
		g.escalations.WithLabelValues(strconv.Itoa(tier), waiting).Inc()
	}
	return moved, err
}

func waitingFor(kind string) string {
	if kind == OpenAck {
		return "an acknowledgement"
	}
	return "approval"
}

// Approve approves a decision pending approval: the trail records who and why, and
// the command is queued for the executor in the same commit. With require_ack the
// wait for an acknowledgement starts. It returns ErrNotFound, ErrNotWaiting (with
// the decision's state), ErrForbidden for a wait on a team who may not answer, or
// ErrHalted while a kill switch is on.
func (g *Governor) Approve(id string, who Answerer, reason string) error {
	p := g.opts.Policy.Policy()
	if halted, why := p.Halted(); halted {
		return fmt.Errorf("%w (%s): turn it off before approving", ErrHalted, why)
	}
	return g.answer(id, OpenApproval, TrailApproved, who, reason, func(b *store.Batch, it *OpenItem, d *Decision, now time.Time) error {
		cmd := d.Command()
		cmd.ApprovedBy, cmd.ApprovalReason, cmd.ApprovedAt = who.By, reason, now
		if err := p.enqueue(b, d.ID, &cmd, d.IdempotencyKey); err != nil {
			return err
		}
		if d.RequireAck {
			return openItem(b, d, OpenAck, it.Ladder, now)
		}
		return nil
	})
}

// Reject rejects a decision pending approval; nothing is executed and the trail
// records who and why.
func (g *Governor) Reject(id string, who Answerer, reason string) error {
	return g.answer(id, OpenApproval, TrailRejected, who, reason, nil)
}

// Ack acknowledges an executed decision that waits for it, which ends its
// escalation.
func (g *Governor) Ack(id string, who Answerer, reason string) error {
	return g.answer(id, OpenAck, TrailAcknowledged, who, reason, nil)
}

func (g *Governor) answer(id, kind, trail string, who Answerer, reason string, then func(*store.Batch, *OpenItem, *Decision, time.Time) error) error {
	now := g.opts.Clock().UTC()
	var order string
	err := g.update(func(b *store.Batch) error {
		raw, err := b.Decision(id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		var d Decision
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode decision %s: %w", id, err)
		}
		it, err := readOpen(b, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && it.Kind != kind) {
			return g.notWaiting(id, kind)
		}
		if err != nil {
			return err
		}
		// Checked here, in the commit: the team a wait is on changes with its
		// escalations.
		if !who.mayAnswer(it.Team) {
			return fmt.Errorf("%w: decision %s waits on team %s (tier %d)", ErrForbidden, id, it.Team, it.Tier)
		}
		if err := b.DeleteOpen(id); err != nil {
			return err
		}
		if !it.Due.IsZero() {
			if err := b.DeleteTimer(it.Due, id); err != nil {
				return err
			}
		}
		rec := TrailRecord{At: now, Kind: trail, DecisionID: id, By: who.By, OnBehalfOf: who.OnBehalfOf,
			Reason: reason, Tier: it.Tier, Team: it.Team}
		if err := appendTrail(b, &rec); err != nil {
			return err
		}
		order = d.OrderID
		if err := g.markChanged(b, order); err != nil {
			return err
		}
		if then != nil {
			return then(b, &it, &d, now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	g.changed(order)
	g.answers.WithLabelValues(trail).Inc()
	g.log.Info("decision answered", "decision", id, "answer", trail, "by", who.By, "on_behalf_of", who.OnBehalfOf)
	if trail == TrailApproved {
		g.opts.Wake()
	}
	return nil
}

// notWaiting describes why a decision does not wait for kind.
func (g *Governor) notWaiting(id, kind string) error {
	dv, err := g.opts.Store.Decision(id)
	if err != nil {
		return fmt.Errorf("%w: decision %s does not wait for %s", ErrNotWaiting, id, waitingFor(kind))
	}
	v, err := NewView(dv, g.opts.Clock())
	if err != nil {
		return err
	}
	state := v.State
	if n := len(v.Trail); n > 0 && v.Trail[n-1].By != "" {
		last := v.Trail[n-1]
		by := last.By
		if last.OnBehalfOf != "" {
			by += " for " + last.OnBehalfOf
		}
		state += fmt.Sprintf(" (%s by %s at %s)", last.Kind, by, last.At.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: decision %s is %s, it does not wait for %s", ErrNotWaiting, id, state, waitingFor(kind))
}

// markChanged marks, when the governance is replicated, that an order's
// governance changes in b.
func (g *Governor) markChanged(b *store.Batch, order string) error {
	if g.opts.Changed == nil || order == "" {
		return nil
	}
	return b.MarkGovernance(order, uint64(time.Now().UnixNano()))
}

// changed tells the replica after the commit.
func (g *Governor) changed(order string) {
	if g.opts.Changed != nil && order != "" {
		g.opts.Changed(order)
	}
}

// update runs fn in a batch and commits it, retrying when a concurrent change of
// the same decision conflicts.
func (g *Governor) update(fn func(*store.Batch) error) error {
	for range 5 {
		b := g.opts.Store.NewBatch()
		err := fn(b)
		if err == nil {
			err = b.Commit()
		}
		b.Discard()
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return ErrBusy
}

func readOpen(b *store.Batch, id string) (OpenItem, error) {
	var it OpenItem
	v, err := b.Open(id)
	if err != nil {
		return it, err
	}
	if err := json.Unmarshal(v, &it); err != nil {
		return it, fmt.Errorf("decode open item of %s: %w", id, err)
	}
	return it, nil
}

// Waiting lists up to limit decisions that wait for a person (the oldest decisions
// first), ordered by how long they have waited; kind filters by what they wait for
// (OpenApproval, OpenAck) unless empty. It also returns how many wait in all.
func (g *Governor) Waiting(kind string, limit int) ([]View, int, error) {
	vs, total, _, err := g.WaitingPage(kind, "", limit)
	return vs, total, err
}

// WaitingPage is Waiting from the decision after (the next of the page before;
// "" starts at the oldest): it also returns the next page's after, "" when this
// page is the last.
func (g *Governor) WaitingPage(kind, after string, limit int) (page []View, total int, next string, err error) {
	items, err := g.opts.Store.OpenItems()
	if err != nil {
		return nil, 0, "", err
	}
	now := g.opts.Clock()
	out := []View{}
	last := ""
	for _, oi := range items {
		var it OpenItem
		if err := json.Unmarshal(oi.Value, &it); err != nil {
			return nil, 0, "", fmt.Errorf("decode open item of %s: %w", oi.Decision, err)
		}
		if kind != "" && it.Kind != kind {
			continue
		}
		if total++; oi.Decision <= after {
			continue
		}
		if len(out) >= limit {
			next = last
			continue
		}
		last = oi.Decision
		dv, err := g.opts.Store.Decision(oi.Decision)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, "", err
		}
		v, err := NewView(dv, now)
		if err != nil {
			return nil, 0, "", err
		}
		if v.Waiting != nil {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Waiting.Since.Before(out[j].Waiting.Since) })
	return out, total, next, nil
}

// KillSwitch returns the runtime kill switch's state and whether the policy's
// setting halts actions regardless.
func (g *Governor) KillSwitch() (KillState, bool) {
	p := g.opts.Policy.Policy()
	return p.KillSwitch().State(), p.Settings.KillSwitch
}

// SetKillSwitch turns the runtime kill switch on or off (the group's, once it is
// shared). Turning it off wakes the executor, which resumes draining the outbox.
func (g *Governor) SetKillSwitch(ctx context.Context, on bool, who Answerer, reason string) (KillState, error) {
	k := g.opts.Policy.Policy().KillSwitch()
	if k == nil {
		return KillState{}, errors.New("actions: no runtime kill switch: the policy was not given one (UseKillSwitch)")
	}
	s, err := k.Set(ctx, KillState{On: on, By: who.By, OnBehalfOf: who.OnBehalfOf, Reason: reason, At: g.opts.Clock()})
	if err != nil {
		return s, err
	}
	g.log.Warn("kill switch changed", "on", on, "by", who.By, "on_behalf_of", who.OnBehalfOf, "reason", reason)
	if !on {
		g.opts.Wake()
	}
	return s, nil
}
