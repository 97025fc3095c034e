package actions_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/store"
)

// TestKillSwitchIsTheGroups: the members of a group share one kill switch, kept
// in the group's state bucket. Turned on one member, the others apply it within
// a moment; a member that joins later starts with it on; one that was down while
// it was turned off reads off once it shares it again, whatever its own copy says.
func TestKillSwitchIsTheGroups(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := t.Context()
	kv, err := cluster.StateBucket(ctx, js, "ks-test", 1)
	if err != nil {
		t.Fatal(err)
	}
	// open opens a member's kill switch on its store in dir (a restart when dir
	// was used before) and shares it until ctx is done.
	open := func(ctx context.Context, dir string) (*actions.KillSwitch, *store.Store) {
		t.Helper()
		st, err := store.Open(store.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		k, err := actions.OpenKillSwitch(st)
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		if err := k.Share(ctx, kv, nil); err != nil {
			st.Close()
			t.Fatal(err)
		}
		return k, st
	}
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "c")
	a, stA := open(ctx, dirA)
	defer stA.Close()
	b, stB := open(ctx, dirB)
	defer stB.Close()
	if a.On() || b.On() {
		t.Fatal("a new group's kill switch is on")
	}

	if _, err := a.Set(ctx, actions.KillState{On: true, By: "ops", Reason: "incident 7", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill switch set on A to be on on B", b.On)
	if s := b.State(); s.By != "ops" || s.Reason != "incident 7" {
		t.Errorf("B's kill switch: %+v, want who set it on A and why", s)
	}

	// C joins later, from an empty data dir: it starts on.
	cctx, stopC := context.WithCancel(ctx)
	c, stC := open(cctx, dirC)
	if !c.On() {
		t.Errorf("C, joining while the group's kill switch is on, starts with it off: %+v", c.State())
	}
	// C goes down, with the switch on in its local copy; B turns it off meanwhile.
	stopC()
	if err := stC.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Set(ctx, actions.KillState{On: false, By: "ops", Reason: "incident 7 resolved", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill switch turned off on B to be off on A", func() bool { return !a.On() })

	// C comes back on its data dir: its own copy says on, the group's says off.
	st, err := store.Open(store.Options{Dir: dirC})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err = actions.OpenKillSwitch(st)
	if err != nil {
		t.Fatal(err)
	}
	if !c.On() {
		t.Fatal("C's local copy of the kill switch is off: it should have kept the group's last state it knew (on)")
	}
	if err := c.Share(ctx, kv, nil); err != nil {
		t.Fatal(err)
	}
	if s := c.State(); s.On || s.Reason != "incident 7 resolved" {
		t.Errorf("C back after the switch was turned off without it: %+v, want the group's (off)", s)
	}

	// And on again, through the member that came back.
	if _, err := c.Set(ctx, actions.KillState{On: true, By: "ops", Reason: "incident 8", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill switch set on C to be on on A and B", func() bool { return a.On() && b.On() })
}

// TestKillSwitchOnBeforeTheGroupStaysOn: a member whose own switch was on before
// its group shared one (an upgrade) gives the group's bucket its state, so the
// switch stays on, and a member joining then starts with it on.
func TestKillSwitchOnBeforeTheGroupStaysOn(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := t.Context()
	kv, err := cluster.StateBucket(ctx, js, "ks-upgrade", 1)
	if err != nil {
		t.Fatal(err)
	}
	var ks [2]*actions.KillSwitch
	for i := range ks {
		st, err := store.Open(store.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if ks[i], err = actions.OpenKillSwitch(st); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks[0].Set(ctx, actions.KillState{On: true, By: "ops", Reason: "before the upgrade", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for i, k := range ks {
		if err := k.Share(ctx, kv, nil); err != nil {
			t.Fatal(err)
		}
		if s := k.State(); !s.On || s.Reason != "before the upgrade" {
			t.Errorf("member %d after sharing: %+v, want the switch set before the upgrade, on", i, s)
		}
	}
}
