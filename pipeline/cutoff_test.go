package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

const (
	cutParts    = 16
	cutDeadline = 45 * time.Second
	// cutPolicy decides for every order it scores, in auto mode, so that what
	// an instance acts on shows in its decisions.
	cutPolicy = `version: cutoff-1
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`
)

// commit is one message an instance committed, seen by its OnCommitted.
type commit struct {
	at   time.Time
	part int
	seq  uint64
}

// cutInstance is one orderwatch of the group, in this process: its own Badger,
// its membership and its pipeline; it logs every message it commits.
type cutInstance struct {
	name string
	st   *store.Store
	m    *cluster.Membership
	p    *pipeline.Pipeline
	reg  *prometheus.Registry

	mu      sync.Mutex
	commits []commit
}

func startCutInstance(t *testing.T, js jetstream.JetStream, member string, scorer pipeline.Scorer, policy *actions.Policy) *cutInstance {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m, err := cluster.New(cluster.Options{JetStream: js, Member: member, Partitions: cutParts,
		LeaseTTL: 3 * time.Second, Renew: 500 * time.Millisecond, Guard: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := &cutInstance{name: member, st: st, m: m, reg: prometheus.NewRegistry()}
	in.p, err = pipeline.New(pipeline.Options{JetStream: js, Store: st, Policy: actions.NewLive(policy), Scorer: scorer,
		BatchSize: 64, Partitions: cutParts, Member: member, Ownership: m, OnCommitted: in.committed, Registerer: in.reg})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopM := context.WithCancel(context.Background())
	pctx, stopP := context.WithCancel(context.Background())
	mDone, pDone := make(chan error, 1), make(chan error, 1)
	go func() { mDone <- m.Run(mctx) }()
	go func() { pDone <- in.p.Run(pctx) }()
	t.Cleanup(func() {
		stopP()
		if err := <-pDone; err != nil {
			t.Errorf("pipeline of %s: %v", member, err)
		}
		stopM()
		<-mDone
	})
	return in
}

func (in *cutInstance) committed(msgs []*pipeline.Message) {
	now := time.Now()
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range msgs {
		in.commits = append(in.commits, commit{at: now, part: m.Partition, seq: m.Seq})
	}
}

// commitsFrom returns the messages committed from the i-th on.
func (in *cutInstance) commitsFrom(i int) []commit {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]commit(nil), in.commits[min(i, len(in.commits)):]...)
}

func (in *cutInstance) ncommits() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.commits)
}

// settled reports whether the instance owns n partitions and reads each of
// them (and the context account with partition 0), nothing else.
func (in *cutInstance) settled(n int) bool {
	owned := in.m.Owned()
	want := len(owned)
	if len(owned) > 0 && owned[0] == 0 {
		want++
	}
	return len(owned) == n && len(in.p.Consumers()) == want
}

// decisions reads every decision the instance's store holds.
func (in *cutInstance) decisions(t *testing.T) []actions.Decision {
	t.Helper()
	var out []actions.Decision
	after := ""
	for {
		page, next, err := in.st.DecisionsPage(store.DecisionsQuery{Limit: 500}, after)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			var d actions.Decision
			if err := json.Unmarshal(v.Record, &d); err != nil {
				t.Fatalf("decision %s of %s: %v", v.ID, in.name, err)
			}
			out = append(out, d)
		}
		if next == "" {
			return out
		}
		after = next
	}
}

// cutPublisher publishes orders over every partition until stopped: each step
// creates an order and allocates the one created five steps before.
type cutPublisher struct {
	js     jetstream.JetStream
	steps  atomic.Int64
	stop   chan struct{}
	done   chan struct{}
	err    error
	cutoff time.Time
}

func startCutPublisher(t *testing.T, js jetstream.JetStream) *cutPublisher {
	pub := &cutPublisher{js: js, stop: make(chan struct{}), done: make(chan struct{}), cutoff: time.Now().Add(72 * time.Hour)}
	go pub.run()
	t.Cleanup(pub.halt)
	return pub
}

func (pub *cutPublisher) run() {
	defer close(pub.done)
	const maxSteps = 20000
	for i := 0; i < maxSteps; i++ {
		select {
		case <-pub.stop:
			return
		case <-time.After(4 * time.Millisecond):
		}
		now := time.Now()
		id := fmt.Sprintf("CO-%06d", i)
		if err := pub.send(features.TypeOrderCreated, id, fmt.Sprintf("c-%d", i), created(fmt.Sprintf("c-%d", i), id, now, pub.cutoff)); err != nil {
			pub.err = err
			return
		}
		if i >= 5 {
			prev, eid := fmt.Sprintf("CO-%06d", i-5), fmt.Sprintf("a-%d", i-5)
			if err := pub.send(features.TypeInventoryAllocated, prev, eid, event(eid, features.TypeInventoryAllocated, prev, now, `{}`)); err != nil {
				pub.err = err
				return
			}
		}
		pub.steps.Store(int64(i + 1))
	}
}

func (pub *cutPublisher) send(typ, order, eventID string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pub.js.Publish(ctx, features.Subject(typ, order), data, jetstream.WithMsgID(eventID)); err != nil {
		return fmt.Errorf("publish %s: %w", eventID, err)
	}
	return nil
}

// halt stops publishing and waits for the publisher to return.
func (pub *cutPublisher) halt() {
	select {
	case <-pub.stop:
	default:
		close(pub.stop)
	}
	<-pub.done
}

// cutExclusivity samples both instances' Owns of every partition every few
// milliseconds until stopped, and records a partition seen owned by both at
// once: a's Owns true at two reads with b's true read between them.
type cutExclusivity struct {
	stop, done chan struct{}
	samples    int
	violations []string
}

func watchCutExclusivity(a, b *cutInstance) *cutExclusivity {
	e := &cutExclusivity{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			select {
			case <-e.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			for p := range cutParts {
				if a.m.Owns(p) && b.m.Owns(p) && a.m.Owns(p) {
					e.violations = append(e.violations, fmt.Sprintf("partition %d owned by a and b at once", p))
				}
			}
			e.samples++
		}
	}()
	return e
}

func (e *cutExclusivity) end(t *testing.T) {
	t.Helper()
	close(e.stop)
	<-e.done
	if len(e.violations) > 0 {
		t.Errorf("exclusivity broken in %d of %d samples, first: %s", len(e.violations), e.samples, e.violations[0])
	}
	if e.samples == 0 {
		t.Errorf("exclusivity was never sampled")
	}
}

func cutWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(cutDeadline); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", cutDeadline, what)
		}
	}
}

// TestCutoffInstanceStopsActingAndComesBack cuts instance a off from NATS while
// it owns half the partitions, events still coming, and its run loop held
// across the end of its leases (a pause). a must stop owning every partition
// before b owns any of them, commit and decide nothing of them once its leases
// ended, b must take every partition, and when a comes back the group must
// rebalance and hold every order once, as one instance folds it, its counters
// summing to the stream, with no order decided on the same event by both.
// In "back before its loop" a's connection and its share of the leases come
// back while its loop is still held: what its old consumers delivered before
// the cut must not be acted on under the leases it took anew.
func TestCutoffInstanceStopsActingAndComesBack(t *testing.T) {
	t.Run("released while cut off", func(t *testing.T) { testCutoff(t, false) })
	t.Run("back before its loop", func(t *testing.T) { testCutoff(t, true) })
}

func testCutoff(t *testing.T, backWhileHeld bool) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: cutParts}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(cutPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	policy, err := actions.LoadPolicy(path)
	if err != nil {
		t.Fatal(err)
	}
	scorer := riskScorer{openShippedModel(t)}

	px := natstest.StartProxy(t, ns.Addr().String())
	nc, err := nats.Connect(px.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.IgnoreDiscoveredServers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ajs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// b first: a joins and gets b's highest partitions, which b hands back
	// to a after the cut, so that a leases again the partitions it had.
	b := startCutInstance(t, js, "b", scorer, policy)
	cutWaitFor(t, "b owns and reads every partition", func() bool { return b.settled(cutParts) })
	a := startCutInstance(t, ajs, "a", scorer, policy)
	ex := watchCutExclusivity(a, b)
	pub := startCutPublisher(t, natstest.JetStream(t, ns.ClientURL()))

	cutWaitFor(t, "a and b own and read 8 partitions each", func() bool { return a.settled(8) && b.settled(8) })
	had := a.m.Owned()
	// a acts on its partitions before the cut.
	from := a.ncommits()
	cutWaitFor(t, "a commits messages of its partitions", func() bool {
		for _, c := range a.commitsFrom(from) {
			if c.part >= 0 && c.part < cutParts {
				return true
			}
		}
		return false
	})

	// Hold a's run loop (nothing staged, nothing in flight), then cut it off:
	// its readers keep what was delivered, and its loop takes it up only once
	// its leases have ended.
	held, release, holdDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() { holdDone <- a.p.HoldLoop(ctx, func() { close(held); <-release }) }()
	select {
	case <-held:
	case <-time.After(cutDeadline):
		t.Fatal("a's run loop not held")
	}
	heldAt := a.ncommits()
	decisionsHeld := len(a.decisions(t))
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo()
	// Messages of a's partitions are delivered to it meanwhile, not staged.
	stepsAtHold := pub.steps.Load()
	cutWaitFor(t, "100 orders published while a is held", func() bool { return pub.steps.Load() >= stepsAtHold+100 })
	stepsAtCut := pub.steps.Load()
	px.Sever()

	// One clock, the test's: when a stopped owning each of its partitions and
	// when b started; every a-stop must come before every b-start. Unless a
	// is to come back while held, its loop goes on as soon as its leases
	// ended, before its membership reports them lost: Owns alone must keep
	// it from staging what it holds.
	aStopped, bStarted := map[int]time.Time{}, map[int]time.Time{}
	for deadline := time.Now().Add(cutDeadline); len(bStarted) < len(had); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b took %d of a's %d partitions within %s", len(bStarted), len(had), cutDeadline)
		}
		for _, p := range had {
			aOwns, bOwns := a.m.Owns(p), b.m.Owns(p)
			now := time.Now()
			if _, ok := aStopped[p]; !ok && !aOwns {
				aStopped[p] = now
			}
			if _, ok := bStarted[p]; !ok && bOwns {
				bStarted[p] = now
			}
		}
		if !backWhileHeld && len(aStopped) == len(had) {
			letGo()
		}
	}
	var lastStop, firstStart time.Time
	for _, p := range had {
		if aStopped[p].IsZero() {
			t.Errorf("a never stopped owning partition %d", p)
		}
		if aStopped[p].After(lastStop) {
			lastStop = aStopped[p]
		}
		if firstStart.IsZero() || bStarted[p].Before(firstStart) {
			firstStart = bStarted[p]
		}
	}
	if !lastStop.Before(firstStart) {
		t.Errorf("a stopped owning its last partition at %s, after b started owning one at %s",
			lastStop.Format(time.StampMicro), firstStart.Format(time.StampMicro))
	}
	t.Logf("cut after %d steps; a's leases ended %s after the first, b started %s after a's last",
		stepsAtCut, lastStop.Sub(minTime(aStopped)).Round(time.Millisecond), firstStart.Sub(lastStop).Round(time.Millisecond))

	// b acts on every partition it took, on what was published after the cut.
	fromB := b.ncommits()
	cutWaitFor(t, "b commits messages of every partition it took", func() bool {
		seen := map[int]bool{}
		for _, c := range b.commitsFrom(fromB) {
			seen[c.part] = true
		}
		for _, p := range had {
			if !seen[p] {
				return false
			}
		}
		return true
	})

	var restoreAt time.Time
	if backWhileHeld {
		// a's connection comes back while its loop is held, and with it its
		// share of the partitions, leased anew.
		restoreAt = time.Now()
		px.Restore()
		cutWaitFor(t, "a leases 8 partitions again, its loop held", func() bool { return len(a.m.Owned()) == 8 })
		t.Logf("a had %v before the cut, leased %v again while held", had, a.m.Owned())
		letGo()
		if err := <-holdDone; err != nil {
			t.Fatal(err)
		}
	} else {
		// a's loop went on, still cut off: it must give up what it lost and
		// act on none of it.
		if err := <-holdDone; err != nil {
			t.Fatal(err)
		}
		cutWaitFor(t, "a stops reading every partition it lost", func() bool { return len(a.p.Consumers()) == 0 })
		restoreAt = time.Now()
		var late []commit
		for _, c := range a.commitsFrom(heldAt) {
			if c.part != process.FollowPart {
				late = append(late, c)
			}
		}
		if len(late) > 0 {
			t.Errorf("a committed %d messages of partitions it had lost after its leases ended (cut off), first: partition %d seq %d",
				len(late), late[0].part, late[0].seq)
		}
		if n := len(a.decisions(t)); n != decisionsHeld {
			t.Errorf("a decided %d times after its leases ended (cut off)", n-decisionsHeld)
		}
		px.Restore()
	}

	// a is back: it rejoins, the group rebalances evenly.
	cutWaitFor(t, "a rejoins: a and b own and read 8 partitions each", func() bool { return a.settled(8) && b.settled(8) })
	steps := pub.steps.Load()
	cutWaitFor(t, "100 more orders published after the rebalance", func() bool { return pub.steps.Load() >= steps+100 })
	pub.halt()
	if pub.err != nil {
		t.Fatal(pub.err)
	}
	ex.end(t)

	// Drained: every message of ORDERS counted once, each partition by its
	// current owner.
	var msgs uint64
	cutWaitFor(t, "the group counts every message of ORDERS once", func() bool {
		info, err := streamInfo(js, pipeline.StreamOrders)
		if err != nil {
			return false
		}
		msgs = info.State.Msgs
		total, _ := groupCount(t, a, b)
		return total == int64(msgs)
	})
	_, strays := groupCount(t, a, b)
	for _, s := range strays {
		t.Error(s)
	}

	// Every order is held by exactly one instance, the owner of its partition,
	// with what one instance folds from ORDERS.
	ref := cutReference(t, js)
	holds := []int{0, 0}
	for id, want := range ref {
		part := features.Partition(features.OrderToken(id), cutParts)
		var owners []string
		var got []byte
		for i, in := range []*cutInstance{a, b} {
			if s, ok := recordState(t, in.st, id); ok {
				owners = append(owners, in.name)
				got = s
				holds[i]++
				if !in.m.Owns(part) {
					t.Errorf("order %s of partition %d is held by %s, which does not own it", id, part, in.name)
				}
			}
		}
		if len(owners) != 1 {
			t.Errorf("order %s is held by %v, want exactly one instance", id, owners)
			continue
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !sameState(t, got, wantJSON) {
			t.Errorf("order %s held by %s:\n%s\nwant one instance's fold:\n%s", id, owners[0], got, wantJSON)
		}
	}
	t.Logf("%d messages, %d orders: a holds %d, b %d", msgs, len(ref), holds[0], holds[1])
	for _, in := range []*cutInstance{a, b} {
		t.Logf("%s: %v messages not staged or acked as not owned, %v ack failures", in.name,
			metricSum(t, in.reg, "orderwatch_partition_messages_not_owned_total"), metricSum(t, in.reg, "orderwatch_ack_failures_total"))
	}

	// a never decided on a partition between the end of its lease and its
	// return, nor ever after on one b holds now.
	var wrong []string
	for _, d := range a.decisions(t) {
		part := features.Partition(features.OrderToken(d.OrderID), cutParts)
		stopped, ok := aStopped[part]
		if !ok || d.At.Before(stopped) {
			continue
		}
		if d.At.Before(restoreAt) || b.m.Owns(part) {
			wrong = append(wrong, fmt.Sprintf("%s on order %s of partition %d at %s, its lease ended at %s",
				d.ID, d.OrderID, part, d.At.Format(time.StampMicro), stopped.Format(time.StampMicro)))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("a decided %d times on partitions after its lease ended, first: %s", len(wrong), wrong[0])
	}
	// The same event decided on by both is an action taken twice.
	byTrigger := map[string]actions.Decision{}
	for _, d := range a.decisions(t) {
		byTrigger[d.OrderID+" "+d.RuleID+" "+d.TriggerEvent] = d
	}
	var twice []string
	for _, d := range b.decisions(t) {
		if ad, ok := byTrigger[d.OrderID+" "+d.RuleID+" "+d.TriggerEvent]; ok {
			twice = append(twice, fmt.Sprintf("order %s partition %d, event %s: a at %s, b at %s", d.OrderID,
				features.Partition(features.OrderToken(d.OrderID), cutParts), d.TriggerEvent, ad.At.Format(time.StampMicro), d.At.Format(time.StampMicro)))
		}
	}
	if len(twice) > 0 {
		t.Errorf("%d events decided on by both a and b, first: %s", len(twice), twice[0])
	}
}

func minTime(ts map[int]time.Time) time.Time {
	var first time.Time
	for _, t := range ts {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

// groupCount sums the stream's counters of every partition from its current
// owner (the context account's with partition 0), and names every counter an
// instance keeps of a partition it does not own.
func groupCount(t *testing.T, ins ...*cutInstance) (int64, []string) {
	t.Helper()
	var total int64
	var strays []string
	for _, in := range ins {
		ps, err := in.st.PartitionStats()
		if err != nil {
			t.Fatal(err)
		}
		for part, s := range ps {
			owner := part
			if part == store.ContextPart {
				owner = 0
			}
			n := s.EventsApplied + s.Duplicates + s.DeadLettered
			if in.m.Owns(owner) {
				total += n
			} else if n != 0 || s.OpenOrders != 0 {
				strays = append(strays, fmt.Sprintf("%s keeps counters of partition %d it does not own: %+v", in.name, part, s))
			}
		}
	}
	return total, strays
}

// cutReference folds ORDERS as one instance would: in sequence order, each
// event id once, what the pipeline dead-letters and context events left out.
func cutReference(t *testing.T, js jetstream.JetStream) map[string]*features.OrderState {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*features.OrderState{}
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev features.Event
		if err := features.Decode(m.Data, &ev); err != nil {
			continue
		}
		if reason, _ := features.CheckSubject(m.Subject, &ev); reason != "" || seen[ev.ID] || features.IsContext(ev.Type) {
			continue
		}
		seen[ev.ID] = true
		st := out[ev.OrderID]
		if st == nil {
			st = &features.OrderState{}
			out[ev.OrderID] = st
		}
		st.Apply(&ev)
	}
	return out
}

// sameState compares two order states as JSON objects, without miss_counted
// (set at a wall-clock moment when the order's outcome is counted).
func sameState(t *testing.T, got, want []byte) bool {
	t.Helper()
	var x, y map[string]any
	if err := json.Unmarshal(got, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &y); err != nil {
		t.Fatal(err)
	}
	delete(x, "miss_counted")
	delete(y, "miss_counted")
	gx, _ := json.Marshal(x)
	gy, _ := json.Marshal(y)
	return string(gx) == string(gy)
}
