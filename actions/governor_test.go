package actions_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

const ladderPolicy = `version: ladder-1
escalation:
  finance:
    - {team: credit-desk, sla: 10m}
    - {team: finance-controller, sla: 30m}
    - {team: cfo-office, sla: 1h}
rules:
- {id: flag, action: flag_finance, mode: approval, escalation: finance, when: {risk: {gte: 0}}}
`

// waitingItem returns the open item of the only decision of order, or nil.
func waitingItem(t *testing.T, d *daemon, order string) (actions.View, bool) {
	t.Helper()
	dvs, err := d.st.FindDecisions(storeQuery(order))
	if err != nil {
		t.Fatal(err)
	}
	if len(dvs) != 1 {
		return actions.View{}, false
	}
	v, err := actions.NewView(dvs[0], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestEscalationMovesUpTheLadderAndSurvivesRestart: an approval nobody acts on
// moves to the next tier when its SLA ends, publishing an escalate command with the
// tier and team; its timer is in Badger, so after a restart the next tier follows
// on time; approving ends the escalation.
func TestEscalationMovesUpTheLadderAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := &manualClock{t: time.Now()}
	d, err := startDaemon(dir, daemonOptions{policy: ladderPolicy, clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := d.createOrder("e-1", "SO-1", now, now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var v actions.View
	waitFor(t, "a pending approval", func() bool { v, _ = waitingItem(t, d, "SO-1"); return v.Waiting != nil })
	if v.State != actions.StatePending || v.Waiting.Tier != 0 || v.Waiting.Team != "credit-desk" {
		t.Fatalf("decision %s waiting %+v, want pending at tier 0 with credit-desk", v.State, v.Waiting)
	}
	decided := v.Decision.At
	escalateSubject := actions.Subject(actions.ActionEscalate)

	clock.Set(decided.Add(9 * time.Minute))
	if n, err := d.gov.EscalateDue(); err != nil || n != 0 {
		t.Fatalf("EscalateDue within the SLA moved %d, %v; want 0", n, err)
	}
	clock.Set(decided.Add(10*time.Minute + time.Second))
	waitFor(t, "the escalation to tier 1 published", func() bool { return len(d.actionsMsgs(t, escalateSubject)) == 1 })
	v, _ = waitingItem(t, d, "SO-1")
	if v.Waiting.Tier != 1 || v.Waiting.Team != "finance-controller" || len(v.Trail) != 1 || v.Trail[0].Kind != actions.TrailEscalated {
		t.Fatalf("after the SLA: waiting %+v trail %+v, want tier 1 finance-controller and one escalation record", v.Waiting, v.Trail)
	}
	var cmd actions.Command
	if err := json.Unmarshal(d.actionsMsgs(t, escalateSubject)[0].Data, &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.Tier != 1 || cmd.Team != "finance-controller" || cmd.Escalates != actions.ActionFlagFinance || cmd.Waiting != actions.OpenApproval || cmd.OrderID != "SO-1" {
		t.Errorf("escalate command = %+v, want tier 1 to finance-controller about flag_finance waiting for approval", cmd)
	}
	// An approver of the tier the wait left is refused in the commit, and the
	// decision still waits.
	creditDesk := actions.Answerer{By: "amy", May: func(team string) bool { return team == "credit-desk" }}
	err = d.gov.Approve(v.Decision.ID, creditDesk, "released the hold")
	if !errors.Is(err, actions.ErrForbidden) || !strings.Contains(err.Error(), "finance-controller") {
		t.Fatalf("approve by credit-desk after the escalation = %v, want ErrForbidden naming finance-controller", err)
	}
	if v, _ = waitingItem(t, d, "SO-1"); v.State != actions.StatePending || len(v.Trail) != 1 {
		t.Fatalf("after the refused approval: state %s trail %+v, want still pending, nothing recorded", v.State, v.Trail)
	}
	due := v.Waiting.Due
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart: the timer of tier 1 is still there.
	d, err = startDaemon(dir, daemonOptions{policy: ladderPolicy, clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	v, _ = waitingItem(t, d, "SO-1")
	if v.Waiting == nil || v.Waiting.Tier != 1 || !v.Waiting.Due.Equal(due) {
		t.Fatalf("after restart waiting %+v, want tier 1 due %s", v.Waiting, due)
	}
	clock.Set(due.Add(time.Second))
	waitFor(t, "the escalation to tier 2 published", func() bool { return len(d.actionsMsgs(t, escalateSubject)) == 2 })
	v, _ = waitingItem(t, d, "SO-1")
	if v.Waiting.Tier != 2 || v.Waiting.Team != "cfo-office" {
		t.Errorf("waiting %+v, want tier 2 cfo-office", v.Waiting)
	}
	// The last tier's SLA passes: recorded, no tier to move to, still waiting.
	clock.Set(v.Waiting.Due.Add(time.Second))
	waitFor(t, "the ladder exhausted", func() bool {
		v, _ = waitingItem(t, d, "SO-1")
		return len(v.Trail) == 3
	})
	if v.Trail[2].Kind != actions.TrailExhausted || v.State != actions.StatePending || !v.Waiting.Due.IsZero() {
		t.Errorf("after the last SLA: state %s trail %+v, want ladder_exhausted and still pending", v.State, v.Trail[2])
	}

	if err := d.gov.Approve(v.Decision.ID, actions.Answerer{By: "cfo"}, "customer prepaid by wire"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the approved command published", func() bool {
		return len(d.actionsMsgs(t, actions.Subject(actions.ActionFlagFinance))) == 1
	})
	if err := json.Unmarshal(d.actionsMsgs(t, actions.Subject(actions.ActionFlagFinance))[0].Data, &cmd); err != nil {
		t.Fatal(err)
	}
	if cmd.ApprovedBy != "cfo" || cmd.ApprovalReason != "customer prepaid by wire" {
		t.Errorf("command = %+v, want the approver and reason", cmd)
	}
	clock.Set(clock.Now().Add(24 * time.Hour))
	if n, err := d.gov.EscalateDue(); err != nil || n != 0 {
		t.Errorf("after approval EscalateDue moved %d, %v; want nothing left to escalate", n, err)
	}
	if n := len(d.actionsMsgs(t, escalateSubject)); n != 2 {
		t.Errorf("%d escalate commands, want 2", n)
	}
}

// TestAnswersAreExclusive: a decision is answered once; a second answer says who
// answered first; nothing is approved while a kill switch is on; an executed
// action with require_ack waits for its acknowledgement.
func TestAnswersAreExclusive(t *testing.T) {
	policy := `version: answers-1
escalation:
  floor: [{team: floor-lead, sla: 15m}]
rules:
- {id: flag, action: flag_finance, mode: approval, escalation: floor, require_ack: true, when: {risk: {gte: 0}}}
`
	d, err := startDaemon(t.TempDir(), daemonOptions{policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer d.stop()
	now := time.Now()
	for i, order := range []string{"SO-1", "SO-2"} {
		if err := d.createOrder("e-"+order, order, now, now.Add(time.Duration(i+2)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]string{}
	waitFor(t, "two pending approvals", func() bool {
		for _, o := range []string{"SO-1", "SO-2"} {
			if v, ok := waitingItem(t, d, o); ok {
				ids[o] = v.Decision.ID
			}
		}
		return len(ids) == 2
	})
	one, two := ids["SO-1"], ids["SO-2"]

	if err := d.gov.Approve("0000000000000000-nothere", actions.Answerer{By: "amy"}, "x"); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("approve unknown = %v, want ErrNotFound", err)
	}
	if err := d.gov.Ack(one, actions.Answerer{By: "amy"}, ""); !errors.Is(err, actions.ErrNotWaiting) {
		t.Errorf("ack before approval = %v, want ErrNotWaiting", err)
	}
	if err := d.gov.Approve(one, actions.Answerer{By: "amy"}, "looks right"); err != nil {
		t.Fatal(err)
	}
	err = d.gov.Reject(one, actions.Answerer{By: "bob"}, "too late")
	if !errors.Is(err, actions.ErrNotWaiting) || !strings.Contains(err.Error(), "amy") {
		t.Errorf("reject after approve = %v, want ErrNotWaiting naming amy", err)
	}
	if v, _ := waitingItem(t, d, "SO-1"); v.State != actions.StateAwaitingAck || v.Waiting.Team != "floor-lead" {
		t.Errorf("approved decision with require_ack: state %s waiting %+v, want awaiting_ack by floor-lead", v.State, v.Waiting)
	}
	if err := d.gov.Ack(one, actions.Answerer{By: "floor-lead-jo"}, "picked first"); err != nil {
		t.Fatal(err)
	}
	if v, _ := waitingItem(t, d, "SO-1"); v.State != actions.StateAcked || v.Waiting != nil {
		t.Errorf("after ack: state %s waiting %+v, want acknowledged", v.State, v.Waiting)
	}

	if _, err := d.gov.SetKillSwitch(t.Context(), true, actions.Answerer{By: "ops"}, "incident 42"); err != nil {
		t.Fatal(err)
	}
	if err := d.gov.Approve(two, actions.Answerer{By: "amy"}, "fine"); !errors.Is(err, actions.ErrHalted) {
		t.Errorf("approve under the kill switch = %v, want ErrHalted", err)
	}
	// A machine client of the shared token answers as the service; whom it
	// says it acts for is kept apart.
	service := actions.Answerer{By: actions.ServiceAnswerer, OnBehalfOf: "amy"}
	if err := d.gov.Reject(two, service, "customer cancelled"); err != nil {
		t.Errorf("reject under the kill switch = %v, want allowed", err)
	}
	if v, _ := waitingItem(t, d, "SO-2"); v.State != actions.StateRejected || v.Trail[0].By != "service" || v.Trail[0].OnBehalfOf != "amy" {
		t.Errorf("rejected decision: state %s trail %+v", v.State, v.Trail)
	}
	waiting, total, err := d.gov.Waiting("", 10)
	if err != nil || len(waiting) != 0 || total != 0 {
		t.Errorf("waiting = %d of %d, %v; want none", len(waiting), total, err)
	}
}

// TestKillSwitchHoldsTheOutbox: while the runtime kill switch is on, what is in
// the outbox stays there (here an escalation command); turned off, it goes out.
func TestKillSwitchHoldsTheOutbox(t *testing.T) {
	clock := &manualClock{t: time.Now()}
	d := startWithOrder(t, daemonOptions{policy: ladderPolicy, clock: clock.Now})
	var v actions.View
	waitFor(t, "a pending approval", func() bool { v, _ = waitingItem(t, d, "SO-1"); return v.Waiting != nil })
	if _, err := d.gov.SetKillSwitch(t.Context(), true, actions.Answerer{By: "ops"}, "incident 42"); err != nil {
		t.Fatal(err)
	}
	clock.Set(v.Decision.At.Add(11 * time.Minute))
	waitFor(t, "the escalation recorded", func() bool { v, _ = waitingItem(t, d, "SO-1"); return len(v.Trail) == 1 })
	time.Sleep(100 * time.Millisecond) // several executor passes
	subject := actions.Subject(actions.ActionEscalate)
	if n := len(d.actionsMsgs(t, subject)); n != 0 || len(v.Queued) != 1 {
		t.Fatalf("under the kill switch: %d escalate commands published, %v queued; want 0 and 1", n, v.Queued)
	}
	if _, err := d.gov.SetKillSwitch(t.Context(), false, actions.Answerer{By: "ops"}, "incident 42 resolved"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held command published", func() bool { return len(d.actionsMsgs(t, subject)) == 1 })
}
