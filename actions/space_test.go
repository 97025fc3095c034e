package actions_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

// TestOutboxWaitsWhileTheStoreTakesNoWrites: a command whose outcome cannot be
// recorded would be published again and again, so while the store refuses writes
// (its disk nearly full) the executor publishes nothing; once space returns the
// command goes out, once, and its outcome is recorded.
func TestOutboxWaitsWhileTheStoreTakesNoWrites(t *testing.T) {
	var full atomic.Bool
	var calls atomic.Int32
	d := startWithOrder(t, daemonOptions{
		policy: `version: space-1
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`,
		space: func() error {
			if full.Load() {
				return errors.New("disk full: 3 MiB free")
			}
			return nil
		},
		// The first publish times out after 300 ms, and the disk fills
		// meanwhile: the command stays in the outbox, due again 100 ms later.
		wrap: func(publish actions.PublishFunc) actions.PublishFunc {
			return func(ctx context.Context, subject, msgID string, data []byte) error {
				if calls.Add(1) == 1 {
					full.Store(true)
					time.Sleep(300 * time.Millisecond)
					return errors.New("nats: timeout")
				}
				return publish(ctx, subject, msgID, data)
			}
		},
	})
	waitFor(t, "the first publish", func() bool { return calls.Load() >= 1 })
	time.Sleep(time.Second) // ten retry intervals and more
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d publishes while the store took no writes, want the first one only", n)
	}
	if n := len(d.actionsMsgs(t, actions.Subject(actions.ActionNotifyCS))); n != 0 {
		t.Fatalf("ACTIONS holds %d commands while the store took no writes, want none", n)
	}

	full.Store(false)
	waitFor(t, "the command published and its outcome recorded", func() bool {
		dvs, err := d.st.FindDecisions(storeQuery("SO-1"))
		if err != nil || len(dvs) != 1 {
			return false
		}
		v, err := actions.NewView(dvs[0], time.Now())
		return err == nil && len(v.Queued) == 0 && len(v.Outcomes) == 1 && v.Outcomes[0].Status == actions.OutcomePublished
	})
	if n := len(d.actionsMsgs(t, actions.Subject(actions.ActionNotifyCS))); n != 1 {
		t.Errorf("ACTIONS holds %d commands, want 1", n)
	}
}

// TestOutboxDeliversOnlyOwnedOrders: a member delivers the commands of the
// orders whose partition it owns; one whose partition moved waits for its new
// owner (it has the delivery from the group's state bucket), and goes out from
// here once this member owns the order again.
func TestOutboxDeliversOnlyOwnedOrders(t *testing.T) {
	var owned atomic.Bool
	d := startWithOrder(t, daemonOptions{
		policy: `version: owned-1
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`,
		owns: func(string) bool { return owned.Load() },
	})
	waitFor(t, "the decision queued", func() bool {
		dvs, err := d.st.FindDecisions(storeQuery("SO-1"))
		return err == nil && len(dvs) == 1
	})
	time.Sleep(time.Second) // fifty executor intervals
	if n := len(d.actionsMsgs(t, actions.Subject(actions.ActionNotifyCS))); n != 0 {
		t.Fatalf("ACTIONS holds %d commands of an order this member does not own, want none", n)
	}
	owned.Store(true)
	waitFor(t, "the command published once owned", func() bool {
		return len(d.actionsMsgs(t, actions.Subject(actions.ActionNotifyCS))) == 1
	})
}
