package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// governedPolicy puts every scored order up for approval once per episode, with
// a ladder and a cooldown: what events cannot rebuild.
const governedPolicy = `
version: governed-1
escalation:
  desk:
    - {team: order-desk, sla: 1h}
    - {team: ops-lead, sla: 2h}
rules:
  - id: ask
    action: notify_customer_service
    mode: approval
    escalation: desk
    cooldown: 6h
    when:
      risk: {gte: 0}
`

// governed is an instance whose orders' governance is kept in the group's
// state bucket, with its governor.
type governed struct {
	*instance
	gov     *actions.Governor
	replica *actions.Replica
}

func startGoverned(t *testing.T, js jetstream.JetStream, member string, parts int, dir string) *governed {
	t.Helper()
	return startGovernedWith(t, js, member, parts, dir, nil)
}

// startGovernedWith is startGoverned with the pipeline's options changed by
// with (nil: none).
func startGovernedWith(t *testing.T, js jetstream.JetStream, member string, parts int, dir string, with func(*pipeline.Options)) *governed {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := prometheus.NewRegistry()
	m, err := cluster.New(cluster.Options{JetStream: js, Member: member, Partitions: parts,
		LeaseTTL: 3 * time.Second, Renew: 500 * time.Millisecond, Guard: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := actions.ParsePolicy([]byte(governedPolicy))
	if err != nil {
		t.Fatal(err)
	}
	live := actions.NewLive(policy)
	kv, err := cluster.StateBucket(context.Background(), js, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	partOf := func(order string) int { return features.Partition(features.OrderToken(order), parts) }
	replica, err := actions.NewReplica(actions.ReplicaOptions{KV: kv, JetStream: js, Store: st, Policy: live,
		Partition: partOf, Owns: m.Owns,
		Memory:     func(order string) (actions.Memory, bool, bool, error) { return process.ReadMemory(st, order) },
		Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	gov, err := actions.NewGovernor(actions.GovernorOptions{Store: st, Policy: live, Changed: replica.Changed})
	if err != nil {
		t.Fatal(err)
	}
	opts := pipeline.Options{JetStream: js, Store: st, Policy: live, BatchSize: 64,
		Partitions: parts, Member: member, Ownership: m, Replica: replica, Registerer: reg}
	if with != nil {
		with(&opts)
	}
	p, err := pipeline.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{st: st, reg: reg, m: m, member: member, pDone: make(chan error, 1), mDone: make(chan error, 1)}
	mctx, stopM := context.WithCancel(context.Background())
	pctx, stopP := context.WithCancel(context.Background())
	in.stopM, in.stopP = stopM, stopP
	go func() { in.mDone <- m.Run(mctx) }()
	go func() { replica.Run(pctx) }()
	go func() { in.pDone <- p.Run(pctx) }()
	t.Cleanup(in.stop)
	return &governed{instance: in, gov: gov, replica: replica}
}

// pendingOf lists the decisions of orders that wait for approval in a store.
func pendingOf(t *testing.T, st *store.Store) map[string]string {
	t.Helper()
	items, err := st.OpenItems()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, it := range items {
		out[it.Decision] = string(it.Value)
	}
	return out
}

// TestGovernanceMovesWithThePartition: the approvals waiting on a member, their
// ladders and the orders' rule episodes and cooldowns are with the partition's
// next owner when the member is gone: b lists every approval a left, approves
// one, and the orders' next events start no second episode (no duplicate
// approval). When a comes back it no longer holds what moved.
func TestGovernanceMovesWithThePartition(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	const parts = 1
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	publish := func(ids []string, j int, typ, data string) {
		for _, id := range ids {
			body := fmt.Sprintf(`{"id":"e-%s-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":%s}`,
				id, j, typ, id, now.Add(time.Duration(j)*time.Minute).Format(time.RFC3339Nano), data)
			if _, err := js.PublishAsync(features.Subject(typ, id), []byte(body), jetstream.WithMsgID(fmt.Sprintf("e-%s-%d", id, j))); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged within 30s")
		}
	}
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("SO-%05d", i))
	}
	publish(ids, 0, features.TypeOrderCreated, fmt.Sprintf(`{"warehouse":"W1","customer_id":"C1","ship_cutoff":%q}`, now.Add(72*time.Hour).Format(time.RFC3339)))

	dirA := t.TempDir()
	a := startGoverned(t, js, "a", parts, dirA)
	waitFor(t, "a to put every order up for approval", func() bool { return len(pendingOf(t, a.st)) == len(ids) })
	before := pendingOf(t, a.st)
	a.stop()
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}

	b := startGoverned(t, js, "b", parts, t.TempDir())
	waitFor(t, "b to take the partition over", func() bool { return b.m.Owns(0) && len(pendingOf(t, b.st)) > 0 })
	after := pendingOf(t, b.st)
	if len(after) != len(before) {
		t.Fatalf("b lists %d approvals waiting, a left %d", len(after), len(before))
	}
	for id, item := range before {
		if after[id] != item {
			t.Fatalf("approval %s: b has %q, a left %q", id, after[id], item)
		}
	}
	// The ladder goes on on b: the wait's timer is there.
	timers, err := b.st.DueTimers(now.Add(2*time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(timers) != len(ids) {
		t.Fatalf("b has %d escalation timers, want %d", len(timers), len(ids))
	}
	// Approving on b queues the command there.
	var first string
	for id := range after {
		first = id
		break
	}
	if err := b.gov.Approve(first, actions.Answerer{By: "alice"}, "customer called"); err != nil {
		t.Fatal(err)
	}
	page, err := b.st.OutboxPage("", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 1 || page[0].DecisionID != first {
		t.Fatalf("b's outbox after the approval: %v, want the command of %s", page, first)
	}
	// The orders' next events: the rule's episode goes on, nothing is decided
	// again.
	publish(ids, 1, features.TypeNoteAdded, `{"text":"customer asked for news"}`)
	waitFor(t, "b to apply the next events", func() bool {
		st, _ := b.st.Stats()
		return st.EventsApplied == int64(2*len(ids))
	})
	decided, err := b.st.FindDecisions(store.DecisionsQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(decided) != len(ids) {
		t.Fatalf("b holds %d decisions for %d orders: a takeover decided again what a had decided", len(decided), len(ids))
	}
	// The approval reaches the bucket: a member taking the partition next
	// finds it approved, with its command still to deliver.
	waitFor(t, "the approval to reach the state bucket", func() bool {
		kv, err := cluster.StateBucket(ctx, js, "", 1)
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, actions.GovernanceKey(0, decidedOrder(t, b.st, first)))
		return err == nil && strings.Contains(string(e.Value()), `"approved"`) && strings.Contains(string(e.Value()), `"outbox"`)
	})

	// a comes back on its data: whichever member ends up owning the partition
	// (the group balances it) holds the approvals left and the approved
	// command; the other holds none of them.
	a2 := startGoverned(t, js, "a", parts, dirA)
	outbox := func(st *store.Store) int {
		page, err := st.OutboxPage("", 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(page)
	}
	var owner, other *governed
	waitFor(t, "the group to settle with the governance on the owner", func() bool {
		switch {
		case a2.m.Owns(0) && !b.m.Owns(0):
			owner, other = a2, b
		case b.m.Owns(0) && !a2.m.Owns(0):
			owner, other = b, a2
		default:
			return false
		}
		return len(pendingOf(t, owner.st)) == len(ids)-1 && outbox(owner.st) == 1 &&
			len(pendingOf(t, other.st)) == 0 && outbox(other.st) == 0
	})
	t.Logf("after a came back, %s owns the partition", owner.member)
}

func decidedOrder(t *testing.T, st *store.Store, decision string) string {
	t.Helper()
	v, err := st.Decision(decision)
	if err != nil {
		t.Fatal(err)
	}
	var d actions.Decision
	if err := json.Unmarshal(v.Record, &d); err != nil {
		t.Fatal(err)
	}
	return d.OrderID
}
