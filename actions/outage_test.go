package actions_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

// webhookOutcomes returns the webhook outcomes of the decisions of action over
// orders, by decision, in decision order.
func webhookOutcomes(t *testing.T, d *daemon, action string, orders []string) [][]actions.Outcome {
	t.Helper()
	_, views := keysOf(t, d, action, orders)
	out := make([][]actions.Outcome, len(views))
	for i, v := range views {
		for _, o := range v.Outcomes {
			if o.Target == actions.TargetWebhook {
				out[i] = append(out[i], o)
			}
		}
	}
	return out
}

// failedForMaxOutage says whether outcomes is one failed outcome naming the
// policy's max_outage of 1h.
func failedForMaxOutage(outcomes []actions.Outcome) bool {
	return len(outcomes) == 1 && outcomes[0].Status == actions.OutcomeFailed &&
		strings.Contains(outcomes[0].Error, "settings.max_outage 1h0m0s")
}

// restart stops d and starts the parts again on dir: a new executor on the same
// store, with the same clock.
func restart(t *testing.T, d *daemon, dir string, o daemonOptions) *daemon {
	t.Helper()
	if err := d.stop(); err != nil {
		t.Fatalf("stop before the restart: %v", err)
	}
	d2, err := startDaemon(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.stop() })
	return d2
}

// startOutage starts the parts on a new dir with webhooks a (notify customer
// service) and b (flag finance), a 1 h max_outage and a manual clock at t0, and
// creates an order that makes a decision for each.
func startOutage(t *testing.T, a, b *target) (d *daemon, dir string, o daemonOptions, clock *manualClock, t0 time.Time) {
	t.Helper()
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	t0 = time.Now().UTC().Truncate(time.Second)
	clock = &manualClock{t: t0}
	dir = t.TempDir()
	o = daemonOptions{policy: twoTargetsPolicy(srvA.URL, srvB.URL, "5s"), getenv: hookEnv, clock: clock.Now}
	d, err := startDaemon(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.createOrder("e-1", "SO-1", t0, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return d, dir, o, clock, t0
}

// TestMaxOutageSurvivesRestart: both webhooks answer 503 for 50 minutes of a 1 h
// max_outage, orderwatch restarts, 15 more minutes pass: the deliveries have
// waited 65 minutes since their first failed attempt and are failed for good;
// the restart gives them no new hour. GET /api/v1/targets' oldest_since and
// down_since still say since when, after the restart.
func TestMaxOutageSurvivesRestart(t *testing.T) {
	a, b := newTarget("down"), newTarget("down")
	d, dir, o, clock, t0 := startOutage(t, a, b)
	orders := []string{"SO-1"}
	names := []string{"webhook:" + actions.ActionNotifyCS, "webhook:" + actions.ActionFlagFinance}
	for _, name := range names {
		waitFor(t, name+"'s circuit open", func() bool { return targetState(d, name).State == actions.StateOpen })
	}
	clock.Set(t0.Add(50 * time.Minute))
	na, _ := a.counts()
	nb, _ := b.counts()
	waitFor(t, "both probed after 50 minutes", func() bool { ma, _ := a.counts(); mb, _ := b.counts(); return ma > na && mb > nb })

	d = restart(t, d, dir, o)
	na, _ = a.counts()
	nb, _ = b.counts()
	waitFor(t, "both tried after the restart", func() bool { ma, _ := a.counts(); mb, _ := b.counts(); return ma > na && mb > nb })
	for _, name := range names {
		s := targetState(d, name)
		if s.Queued != 1 {
			t.Fatalf("%s after the restart: %+v, want its delivery waiting", name, s)
		}
		if s.OldestSince.After(t0) || s.DownSince.After(t0) {
			t.Errorf("%s after the restart: oldest_since %s, down_since %s; want both at its first failed attempt, at %s (before the restart)",
				name, s.OldestSince, s.DownSince, t0)
		}
	}

	clock.Set(t0.Add(65 * time.Minute))
	for _, name := range names {
		waitFor(t, name+"'s delivery failed for good, 65 minutes after its first failed attempt", func() bool {
			return targetState(d, name).Queued == 0
		})
	}
	for _, action := range []string{actions.ActionNotifyCS, actions.ActionFlagFinance} {
		for i, hook := range webhookOutcomes(t, d, action, orders) {
			if !failedForMaxOutage(hook) {
				t.Errorf("%s of %s: webhook outcomes %+v, want one failed naming max_outage", action, orders[i], hook)
			}
		}
	}
}

// TestRestartNeverAttemptedStartsFresh: behind the first delivery of a failing
// webhook wait others, never attempted (the target takes its deliveries in
// order). After a restart 50 minutes into a 1 h max_outage the first fails for
// good at 65 minutes, but the others' wait starts at the restart: they are not
// failed at once, only once they too have waited max_outage.
func TestRestartNeverAttemptedStartsFresh(t *testing.T) {
	a, b := newTarget("down"), newTarget("up")
	d, dir, o, clock, t0 := startOutage(t, a, b)
	orders := publishOrders(t, d, 3)
	keysA, _ := keysOf(t, d, actions.ActionNotifyCS, orders)
	name := "webhook:" + actions.ActionNotifyCS
	waitFor(t, "A's circuit open", func() bool { s := targetState(d, name); return s.State == actions.StateOpen && s.Queued == 3 })
	clock.Set(t0.Add(50 * time.Minute))
	n, _ := a.counts()
	waitFor(t, "A probed after 50 minutes", func() bool { m, _ := a.counts(); return m > n })

	d = restart(t, d, dir, o)
	n, _ = a.counts()
	waitFor(t, "A tried after the restart", func() bool { m, _ := a.counts(); return m > n })
	if s := targetState(d, name); s.Queued != 3 || !s.OldestSince.Equal(t0) {
		t.Fatalf("A after the restart: %+v, want 3 deliveries waiting, the oldest since its first failed attempt at %s", s, t0)
	}
	clock.Set(t0.Add(65 * time.Minute))
	waitFor(t, "A's first delivery failed for good", func() bool {
		return failedForMaxOutage(webhookOutcomes(t, d, actions.ActionNotifyCS, orders)[0])
	})
	// The second delivery is now the one tried: it fails, and waits.
	waitFor(t, "A's second delivery tried", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return strings.Count(strings.Join(a.requests, " "), keysA[1]) >= 2
	})
	for i, hook := range webhookOutcomes(t, d, actions.ActionNotifyCS, orders)[1:] {
		if len(hook) != 0 {
			t.Errorf("%s, never attempted before the restart: webhook outcomes %+v at 65 minutes, want it waiting", orders[i+1], hook)
		}
	}
	if s := targetState(d, name); s.Queued != 2 {
		t.Errorf("A at 65 minutes: %+v, want 2 deliveries waiting", s)
	}

	clock.Set(t0.Add(111 * time.Minute)) // an hour and a minute after they were found again
	waitFor(t, "A's other deliveries failed for good", func() bool { return targetState(d, name).Queued == 0 })
	for i, hook := range webhookOutcomes(t, d, actions.ActionNotifyCS, orders) {
		if !failedForMaxOutage(hook) {
			t.Errorf("%s: webhook outcomes %+v, want one failed naming max_outage", orders[i], hook)
		}
	}
}
