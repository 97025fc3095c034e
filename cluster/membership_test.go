package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/internal/natstest"
)

// Short durations so that expiry shows within seconds; Renew < LeaseTTL-Guard.
const (
	testTTL      = 1500 * time.Millisecond
	testRenew    = 300 * time.Millisecond
	testGuard    = 500 * time.Millisecond
	testHandoff  = 500 * time.Millisecond
	testParts    = 16
	testDeadline = 20 * time.Second // for any convergence in these tests
)

// member is a running Membership with a reader of its Changes that hands every
// partition off as soon as it is told to stop acting on it.
type member struct {
	t      *testing.T
	m      *Membership
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	read   chan struct{} // closed when Changes was closed
	// noHandoff: the reader never calls Handoff (a user that hangs); set for a
	// member started with API "hang".
	noHandoff bool

	stopOnce sync.Once

	mu      sync.Mutex
	changes []Change
}

func startMember(t *testing.T, js jetstream.JetStream, id string, with ...func(*Options)) *member {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := Options{JetStream: js, Member: id, Partitions: testParts, API: "http://" + id,
		LeaseTTL: testTTL, Renew: testRenew, Guard: testGuard, HandoffWait: testHandoff,
		Registerer: reg, Stats: func() json.RawMessage { return json.RawMessage(`{"lag":0}`) }}
	for _, w := range with {
		w(&opts)
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mb := &member{t: t, m: m, reg: reg, cancel: cancel, done: make(chan error, 1), read: make(chan struct{}), noHandoff: opts.API == "hang"}
	go func() {
		defer close(mb.read)
		for c := range m.Changes() {
			mb.mu.Lock()
			mb.changes = append(mb.changes, c)
			mb.mu.Unlock()
			if !c.Owned && !mb.noHandoff {
				m.Handoff(c.Partition)
			}
		}
	}()
	go func() { mb.done <- m.Run(ctx) }()
	t.Cleanup(mb.stop)
	return mb
}

// stop cancels Run and waits, boundedly, for it and the reader to end.
func (mb *member) stop() { mb.stopOnce.Do(mb.stopNow) }

func (mb *member) stopNow() {
	mb.cancel()
	timeout := time.After(testHandoff + testTTL + 10*time.Second)
	select {
	case <-mb.read:
	case <-timeout:
		mb.t.Fatalf("member %s: Changes not closed after Run was cancelled", mb.m.Member())
	}
	select {
	case err := <-mb.done:
		if err != nil {
			mb.t.Errorf("member %s: Run: %v", mb.m.Member(), err)
		}
	case <-timeout:
		mb.t.Fatalf("member %s: Run did not return after its context was cancelled", mb.m.Member())
	}
}

func (mb *member) changesSince(n int) []Change {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return slices.Clone(mb.changes[n:])
}

func (mb *member) nchanges() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return len(mb.changes)
}

func (mb *member) metric(name string, labels ...string) float64 {
	mb.t.Helper()
	mfs, err := mb.reg.Gather()
	if err != nil {
		mb.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	mb.t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// waitFor polls cond every 10ms until it holds, or fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}

// settled reports whether every member's reader has got the changes that led
// to what it owns now.
func settled(ms ...*member) bool {
	for _, mb := range ms {
		owned := map[int]bool{}
		for _, c := range mb.changesSince(0) {
			owned[c.Partition] = c.Owned
		}
		for _, p := range mb.m.Owned() {
			if !owned[p] {
				return false
			}
			delete(owned, p)
		}
		for _, o := range owned {
			if o {
				return false
			}
		}
	}
	return true
}

// converge waits until the members own want partitions each and their readers
// got the changes that say so.
func converge(t *testing.T, want []int, ms ...*member) {
	t.Helper()
	waitFor(t, testDeadline, fmt.Sprintf("members own %v", want), func() bool {
		return slices.Equal(counts(ms...), want) && settled(ms...)
	})
}

// counts returns how many partitions each member owns now.
func counts(ms ...*member) []int {
	n := make([]int, len(ms))
	for i, mb := range ms {
		n[i] = len(mb.m.Owned())
	}
	return n
}

// exclusivity samples every member's Owns for every partition every few
// milliseconds until stopped, and counts the partitions seen owned by two
// members at once: member i is counted as owning p over [t1, t3] when Owns was
// true at both samples t1 and t3 of one round and j's sample t2 lies between.
type exclusivity struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu         sync.Mutex
	members    []*member
	violations []string
	samples    int
}

func watchExclusivity(t *testing.T, ms ...*member) *exclusivity {
	e := &exclusivity{stop: make(chan struct{}), done: make(chan struct{}), members: ms}
	go func() {
		defer close(e.done)
		for {
			select {
			case <-e.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			e.sample()
		}
	}()
	t.Cleanup(func() { e.end(t) })
	return e
}

func (e *exclusivity) add(mb *member) {
	e.mu.Lock()
	e.members = append(e.members, mb)
	e.mu.Unlock()
}

func (e *exclusivity) sample() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for p := range testParts {
		first := make([]bool, len(e.members))
		for i, mb := range e.members {
			first[i] = mb.m.Owns(p)
		}
		var owners []string
		for i, mb := range e.members {
			if first[i] && mb.m.Owns(p) {
				owners = append(owners, mb.m.Member())
			}
		}
		if len(owners) > 1 {
			e.violations = append(e.violations, fmt.Sprintf("partition %d owned by %v at once", p, owners))
		}
	}
	e.samples++
}

// end stops sampling and fails the test if any partition had two owners.
func (e *exclusivity) end(t *testing.T) {
	t.Helper()
	e.once.Do(func() { e.report(t) })
}

func (e *exclusivity) report(t *testing.T) {
	t.Helper()
	close(e.stop)
	<-e.done
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.violations) > 0 {
		t.Errorf("exclusivity broken in %d of %d samples, first: %s", len(e.violations), e.samples, e.violations[0])
	}
	if e.samples == 0 {
		t.Errorf("exclusivity was never sampled")
	}
}

func all() []int {
	p := make([]int, testParts)
	for i := range p {
		p[i] = i
	}
	return p
}

func TestOneMemberOwnsAll(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	a := startMember(t, js, "a")
	converge(t, []int{testParts}, a)
	if got := a.m.Owned(); !slices.Equal(got, all()) {
		t.Fatalf("Owned() = %v, want all", got)
	}
	for p := range testParts {
		if !a.m.ValidUntil(p).After(time.Now()) {
			t.Errorf("ValidUntil(%d) = %v, want in the future", p, a.m.ValidUntil(p))
		}
	}
	for _, c := range a.changesSince(0) {
		if !c.Owned || c.Reason != ReasonFree || c.Epoch != 1 || c.Resume || c.PrevEpoch != 0 {
			t.Errorf("change %+v, want owned, free, epoch 1", c)
		}
	}
	// The gauges are set at every tick.
	waitFor(t, testDeadline, "metrics show 16 owned, 1 member, none unowned", func() bool {
		return a.metric("orderwatch_cluster_partitions_owned") == testParts &&
			a.metric("orderwatch_cluster_members") == 1 &&
			a.metric("orderwatch_cluster_partitions_unowned") == 0 &&
			a.metric("orderwatch_cluster_partition_unowned_seconds") == 0
	})
	if got := a.metric("orderwatch_cluster_takeovers_total"); got != 0 {
		t.Errorf("takeovers = %v, want 0 (all were free)", got)
	}
	st := a.m.Status()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"group"`, `"member"`, `"partitions"`, `"members"`, `"leases"`, `"api"`, `"alive"`, `"seen_ago_seconds"`, `"stats":{"lag":0}`, `"partition"`, `"holder"`, `"epoch"`, `"revision"`, `"unowned_seconds"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("Status JSON has no %s: %s", key, b)
		}
	}
	if st.Group != DefaultGroup || st.Member != "a" || st.Partitions != testParts || len(st.Leases) != testParts {
		t.Fatalf("Status() = %+v", st)
	}
	for _, l := range st.Leases {
		if l.Holder != "a" || !l.Alive || l.Epoch != 1 || l.Revision == 0 {
			t.Errorf("lease %+v, want held by a and alive", l)
		}
	}
	if len(st.Members) != 1 || st.Members[0].API != "http://a" || !st.Members[0].Alive || len(st.Members[0].Partitions) != testParts {
		t.Errorf("members %+v, want a alone with 16 partitions", st.Members)
	}
}

func TestTwoMembersSplitEvenly(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	a := startMember(t, js, "a")
	b := startMember(t, js, "b")
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	// Stay a few ticks: no thrash, still exclusive.
	n := a.nchanges() + b.nchanges()
	time.Sleep(5 * testRenew)
	if got := counts(a, b); !slices.Equal(got, []int{8, 8}) {
		t.Errorf("after converging, counts = %v, want [8 8]", got)
	}
	if m := a.nchanges() + b.nchanges(); m != n {
		t.Errorf("%d changes after converging, want none (thrash)", m-n)
	}
	ex.end(t)
	st := b.m.Status()
	if len(st.Members) != 2 || !st.Members[0].Alive || !st.Members[1].Alive {
		t.Errorf("b's Status members = %+v, want a and b alive", st.Members)
	}
}

func TestGracefulReleaseAndResume(t *testing.T) {
	t.Run("the other takes the released leases", func(t *testing.T) {
		js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
		a := startMember(t, js, "a")
		b := startMember(t, js, "b")
		ex := watchExclusivity(t, a, b)
		converge(t, []int{8, 8}, a, b)
		had := a.m.Owned()
		na, nb := a.nchanges(), b.nchanges()
		a.stop()
		for _, c := range a.changesSince(na) {
			if c.Owned || c.Reason != ReasonShutdown {
				t.Errorf("a's change at shutdown %+v, want not owned, shutdown", c)
			}
		}
		if got := len(a.changesSince(na)); got != len(had) {
			t.Errorf("a sent %d changes at shutdown, want %d", got, len(had))
		}
		converge(t, []int{testParts}, b)
		ex.end(t)
		took := map[int]Change{}
		for _, c := range b.changesSince(nb) {
			took[c.Partition] = c
		}
		for _, p := range had {
			c := took[p]
			if !c.Owned || c.Reason != ReasonReleased || c.Previous != "a" || c.Resume {
				t.Errorf("b's change for a's partition %d: %+v, want owned, released by a, no resume", p, c)
			}
		}
		if got := b.metric("orderwatch_cluster_takeovers_total"); got < float64(len(had)) {
			t.Errorf("b's takeovers = %v, want >= %d", got, len(had))
		}
		kv, err := js.KeyValue(context.Background(), "orderwatch_orderwatch")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(context.Background(), "member.a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("member.a after a's shutdown: err %v, want deleted", err)
		}
	})
	t.Run("a restarted member resumes its own leases", func(t *testing.T) {
		js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
		a := startMember(t, js, "a")
		converge(t, []int{testParts}, a)
		a.stop()
		epochs := map[int]uint64{}
		for _, c := range a.changesSince(0) {
			epochs[c.Partition] = c.Epoch
		}
		a2 := startMember(t, js, "a")
		converge(t, []int{testParts}, a2)
		for _, c := range a2.changesSince(0) {
			if !c.Owned || c.Reason != ReasonReleased || !c.Resume || c.Previous != "a" || c.PrevEpoch != epochs[c.Partition] || c.Epoch != c.PrevEpoch+1 {
				t.Errorf("restarted a's change %+v, want owned, released, resume, prev epoch %d", c, epochs[c.Partition])
			}
		}
		if got := a2.metric("orderwatch_cluster_takeovers_total"); got != 0 {
			t.Errorf("takeovers = %v, want 0 (its own releases)", got)
		}
	})
	t.Run("a restarted member does not resume what another held since", func(t *testing.T) {
		js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
		a := startMember(t, js, "a")
		b := startMember(t, js, "b")
		converge(t, []int{8, 8}, a, b)
		a.stop()
		converge(t, []int{testParts}, b)
		a2 := startMember(t, js, "a")
		ex := watchExclusivity(t, a2, b)
		converge(t, []int{8, 8}, a2, b)
		ex.end(t)
		for _, c := range a2.changesSince(0) {
			if !c.Owned || c.Reason != ReasonReleased || c.Resume || c.Previous != "b" {
				t.Errorf("restarted a's change %+v, want owned, released by b, no resume", c)
			}
		}
		if got := a2.metric("orderwatch_cluster_takeovers_total"); got != 8 {
			t.Errorf("takeovers = %v, want 8 (released by b)", got)
		}
		// Renewals keep the previous holder the take wrote.
		p := a2.m.Owned()[0]
		kv, err := js.KeyValue(context.Background(), "orderwatch_orderwatch")
		if err != nil {
			t.Fatal(err)
		}
		first, err := kv.Get(context.Background(), newKeys(testParts).lease(p))
		if err != nil {
			t.Fatal(err)
		}
		var rec leaseRecord
		waitFor(t, testDeadline, "a renewed its lease", func() bool {
			e, err := kv.Get(context.Background(), newKeys(testParts).lease(p))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				t.Fatal(err)
			}
			return e.Revision() > first.Revision()
		})
		if rec.Holder != "a" || rec.Previous != "b" {
			t.Errorf("lease %d after renewals: %+v, want holder a, previous b", p, rec)
		}
	})
}

func TestKilledMemberExpires(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ajs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a := startMember(t, ajs, "a")
	b := startMember(t, js, "b")
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	had := a.m.Owned()
	nb := b.nchanges()
	nc.Close() // a can neither renew nor release
	killed := time.Now()
	converge(t, []int{testParts}, b)
	// Not a wall-clock assertion: a bound on how long the group waits that the
	// test can state, LeaseTTL after the last renewal plus a generous margin.
	if took := time.Since(killed); took > testTTL+10*testRenew+5*time.Second {
		t.Errorf("b took over after %s, want within LeaseTTL and a few ticks", took)
	}
	ex.end(t)
	took := map[int]Change{}
	for _, c := range b.changesSince(nb) {
		took[c.Partition] = c
	}
	for _, p := range had {
		if c := took[p]; !c.Owned || c.Reason != ReasonExpired || c.Previous != "a" || c.Resume {
			t.Errorf("b's change for a's partition %d: %+v, want owned, expired from a", p, c)
		}
	}
	if got := b.metric("orderwatch_cluster_takeovers_total"); got < float64(len(had)) {
		t.Errorf("b's takeovers = %v, want >= %d", got, len(had))
	}
	waitFor(t, testDeadline, "a's lease losses counted as expired", func() bool {
		return a.metric("orderwatch_cluster_lease_losses_total", "reason", "expired") == float64(len(had))
	})
	if len(a.m.Owned()) != 0 {
		t.Errorf("a still owns %v", a.m.Owned())
	}
	a.stop() // returns although a cannot reach NATS to release (stop fails the test if not)
}

func TestCutOffMemberStopsBeforeTakeover(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
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
	a := startMember(t, ajs, "a")
	b := startMember(t, js, "b")
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	had := a.m.Owned()
	na, nb := a.nchanges(), b.nchanges()

	px.Sever()
	// One clock, the test's: when a stopped owning each of its partitions and
	// when b started; every a-stop must come before every b-start.
	aStopped, bStarted := map[int]time.Time{}, map[int]time.Time{}
	for deadline := time.Now().Add(testDeadline); len(bStarted) < len(had); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b took %d of a's %d partitions within %s", len(bStarted), len(had), testDeadline)
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
	}
	var lastStop, firstStart time.Time
	for _, p := range had {
		if aStopped[p].After(lastStop) {
			lastStop = aStopped[p]
		}
		if firstStart.IsZero() || bStarted[p].Before(firstStart) {
			firstStart = bStarted[p]
		}
		if aStopped[p].IsZero() {
			t.Errorf("a never stopped owning partition %d", p)
		}
	}
	if !lastStop.Before(firstStart) {
		t.Errorf("a stopped owning its last partition at %s, after b started owning one at %s",
			lastStop.Format(time.StampMicro), firstStart.Format(time.StampMicro))
	}
	waitFor(t, testDeadline, "a reports every partition lost", func() bool { return len(a.changesSince(na)) >= len(had) })
	for _, c := range a.changesSince(na)[:len(had)] {
		if c.Owned || (c.Reason != ReasonLostExpired && c.Reason != ReasonLostTaken) {
			t.Errorf("a's change while cut off %+v, want lost-*", c)
		}
	}
	for _, c := range b.changesSince(nb) {
		if !c.Owned || c.Reason != ReasonExpired {
			t.Errorf("b's change while a is cut off %+v, want owned, expired", c)
		}
	}

	px.Restore()
	converge(t, []int{8, 8}, a, b)
	ex.end(t)
	for _, c := range a.changesSince(na + len(had)) {
		if c.Owned && c.Reason != ReasonReleased && c.Reason != ReasonOwn {
			t.Errorf("a after reconnecting took %+v, want only what b released", c)
		}
	}
}

func TestThirdMemberJoins(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	a := startMember(t, js, "a")
	b := startMember(t, js, "b")
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	c := startMember(t, js, "c")
	ex.add(c)
	converge(t, []int{6, 5, 5}, a, b, c)
	ex.end(t)
	seen := map[int]bool{}
	for _, mb := range []*member{a, b, c} {
		for _, p := range mb.m.Owned() {
			if seen[p] {
				t.Errorf("partition %d owned twice", p)
			}
			seen[p] = true
		}
		waitFor(t, testDeadline, "3 members in "+mb.m.Member()+"'s metric", func() bool {
			return mb.metric("orderwatch_cluster_members") == 3
		})
	}
}

// TestReplicatedBucket runs two members on an R3 JetStream cluster, each on
// another server, with the bucket replicated three times.
func TestReplicatedBucket(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	r3 := func(o *Options) { o.Replicas = 3 }
	js := natstest.JetStream(t, servers[0].ClientURL())
	a := startMember(t, js, "a", r3)
	b := startMember(t, natstest.JetStream(t, servers[1].ClientURL()), "b", r3)
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	ex.end(t)
	s, err := js.Stream(t.Context(), "KV_orderwatch_orderwatch")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("bucket replicas = %d, want 3", r)
	}
}

// TestCrashedMemberRestarts restarts a member with the same id while the old
// process, cut off, may still think it owns its partitions: the new one waits
// for the leases to expire, then resumes them as its own.
func TestCrashedMemberRestarts(t *testing.T) {
	ns := natstest.Start(t, nil)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	ajs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	a := startMember(t, ajs, "a")
	converge(t, []int{testParts}, a)
	epochs := map[int]uint64{}
	for _, c := range a.changesSince(0) {
		epochs[c.Partition] = c.Epoch
	}
	nc.Close() // crashed: no release
	a2 := startMember(t, natstest.JetStream(t, ns.ClientURL()), "a")
	ex := watchExclusivity(t, a, a2)
	converge(t, []int{testParts}, a2)
	ex.end(t)
	for _, c := range a2.changesSince(0) {
		if !c.Owned || c.Reason != ReasonOwn || !c.Resume || c.PrevEpoch != epochs[c.Partition] || c.Previous != "a" {
			t.Errorf("restarted a's change %+v, want owned, own, resume from epoch %d", c, epochs[c.Partition])
		}
	}
}

// TestReleaseWithoutHandoff: a member whose user never hands a partition off
// releases it after HandoffWait, having stopped owning it first.
func TestReleaseWithoutHandoff(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	a := startMember(t, js, "a", func(o *Options) { o.API = "hang" })
	converge(t, []int{testParts}, a)
	b := startMember(t, js, "b")
	ex := watchExclusivity(t, a, b)
	converge(t, []int{8, 8}, a, b)
	ex.end(t)
	var given []int
	for _, c := range a.changesSince(testParts) {
		if c.Owned || c.Reason != ReasonRebalance {
			t.Errorf("a's change %+v, want not owned, rebalance", c)
		}
		given = append(given, c.Partition)
	}
	if want := []int{8, 9, 10, 11, 12, 13, 14, 15}; !slices.Equal(given, want) {
		t.Errorf("a gave up %v, want its highest-numbered %v", given, want)
	}
}
