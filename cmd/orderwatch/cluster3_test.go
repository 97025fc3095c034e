package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestThreeInstancesOnAThreeNodeCluster is the case of the issue at full size:
// three `orderwatch run` on a three-node JetStream cluster, their streams with
// three replicas. A simulated stream with duplicates and poison is published;
// mid-stream one instance is killed with SIGKILL, the two others take its
// partitions over, it is restarted later on its own data, and a fourth joins.
// After the drain the group counts every message of ORDERS once, every order is
// held by one instance with the state one instance computes from the stream,
// ACTIONS holds each command once, and every approval pending before the kill is
// still listed (or decided) by some instance.
func TestThreeInstancesOnAThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster and four orderwatch processes")
	}
	servers := natstest.Cluster(t, 3)
	urls := natstest.URLs(servers)
	js := natstest.JetStream(t, urls)
	policy := writePolicy(t, killPolicy)
	start := func(member, data, addr string) *runChild {
		return startChild(t, addr, "--nats-url", urls, "--nats-replicas", "3", "--data", data, "--member", member,
			"--batch-size", "64", "--policy", policy)
	}
	names := []string{"a", "b", "c", "d"}
	datas := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)}
	kids := make([]*runChild, 4)
	for i := range 3 {
		kids[i] = start(names[i], datas[i], addrs[i])
	}
	waitShare(t, kids[0], 3, 60*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	msgs := simStream(t, 23, 120, 97)
	prod := newProducer(t, urls)
	third := len(msgs) / 3
	firstTwo := prod.publishAll(ctx, msgs[:2*third])

	// Mid-stream, a third published: the instance with the most approvals
	// waiting is killed. What waits on any instance just before is recorded.
	var pending map[string]waiting
	victim := -1
	for deadline := time.Now().Add(60 * time.Second); victim < 0; time.Sleep(100 * time.Millisecond) {
		var err error
		pending, err = pendingApprovals(kids[:3], names)
		if err != nil {
			t.Fatal(err)
		}
		on := map[string]int{}
		for _, w := range pending {
			on[w.who]++
		}
		if prod.sent.Load() >= int64(third) && len(pending) > 0 {
			for i := range 3 {
				if victim < 0 || on[names[i]] > on[names[victim]] {
					victim = i
				}
			}
			t.Logf("before the kill: %d of %d messages published, approvals pending %v", prod.sent.Load(), len(msgs), on)
		}
		if victim < 0 && time.Now().After(deadline) {
			t.Fatalf("no approval pending within 60s (%d published): the stream does not exercise approvals", prod.sent.Load())
		}
	}
	killedAt := time.Now()
	kids[victim].kill()
	var survivors []string
	var a *runChild // a survivor, asked about the group
	for i := range 3 {
		if i != victim {
			survivors = append(survivors, names[i])
			if a == nil {
				a = kids[i]
			}
		}
	}

	// The two others take its partitions once their leases run out, while the
	// stream goes on.
	took := waitOwnedBy(t, a, survivors, 60*time.Second)
	t.Logf("SIGKILL of %s to %v owning every partition: %v (lease TTL 10 s)", names[victim], survivors, took.Sub(killedAt).Round(10*time.Millisecond))
	// While it is dead, the survivors list every approval that waited before
	// the kill, the dead one's too: they came with its partitions from the
	// group's state bucket (or, decided but not yet acked by it, were decided
	// again by their new owner with the same idempotency key).
	var alive []*runChild
	for i := range 3 {
		if i != victim {
			alive = append(alive, kids[i])
		}
	}
	// Owning a lease comes first; the partition's rebuild and the restore of its
	// governance follow within seconds.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if _, missing, err := approvalsKept(pending, survivors, alive...); err == nil && len(missing) == 0 {
			break
		}
	}
	found := checkApprovalsKept(t, pending, survivors, alive...)
	t.Logf("approvals pending before the kill, while %s is dead, through %v: %d of %d, all listed %v after the SIGKILL", names[victim], survivors,
		len(found), len(pending), time.Since(killedAt).Round(10*time.Millisecond))
	if err := <-firstTwo; err != nil {
		t.Fatal(err)
	}
	waitShare(t, a, 2, 60*time.Second)

	// The killed one comes back on its own data, d joins: 16 partitions over 4.
	kids[victim] = start(names[victim], datas[victim], addrs[victim])
	kids[3] = start(names[3], datas[3], addrs[3])
	st := waitShare(t, a, 4, 60*time.Second)
	t.Logf("partitions after %s's restart and d's join: %v", names[victim], ownedCounts(st))
	if err := <-prod.publishAll(ctx, msgs[2*third:]); err != nil {
		t.Fatal(err)
	}

	group, n := waitGroupDrained(t, a, js, 120*time.Second)
	wantEvents, wantDups, wantPoison := counts(msgs)
	t.Logf("ORDERS %d messages; group %+v; published %d events, %d duplicates, %d poison", n, group, wantEvents, wantDups, wantPoison)
	if group.DeadLettered < wantPoison {
		t.Errorf("group dead-lettered %d, want at least the %d poison messages", group.DeadLettered, wantPoison)
	}
	checkOwnedOnce(t, referenceStates(t, js), kids...)
	checkActionsOnce(t, js, names, kids...)
	// The group's counters tell the commands published from the publishes
	// JetStream dropped as duplicates (a command published again after a
	// takeover or a crash): published never exceeds what ACTIONS holds.
	inActions := len(streamMsgs(t, js, pipeline.StreamActions))
	var counted api.GroupStats
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var err error
		if counted, err = a.groupStats(); err == nil && counted.ActionsPublished+counted.ActionsDeduplicated >= int64(inActions) {
			break
		}
	}
	t.Logf("ACTIONS %d commands; group actions_published %d, actions_deduplicated %d", inActions, counted.ActionsPublished, counted.ActionsDeduplicated)
	if counted.ActionsPublished > int64(inActions) || counted.ActionsPublished+counted.ActionsDeduplicated < int64(inActions) {
		t.Errorf("group counts %d published and %d deduplicated for the %d commands in ACTIONS", counted.ActionsPublished, counted.ActionsDeduplicated, inActions)
	}
	// Any instance answers for the group: each, alone, lists (or shows decided)
	// every approval that was pending before the kill.
	for i, c := range kids {
		found := checkApprovalsKept(t, pending, names[i:i+1], c)
		t.Logf("approvals pending before the kill, after the drain, through %s: %v", names[i], found)
	}
	logTakeovers(t, names, kids...)
	for _, c := range kids {
		c.stop()
	}
}

// waitOwnedBy waits until every partition has a live lease held by one of
// members, as c sees the group, and returns when it saw that.
func waitOwnedBy(t *testing.T, c *runChild, members []string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := c.clusterStatus()
		now := time.Now()
		if err == nil && len(st.Leases) == st.Partitions && st.Partitions > 0 &&
			!slices.ContainsFunc(st.Leases, func(l cluster.LeaseStatus) bool { return !l.Alive || !slices.Contains(members, l.Holder) }) {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("partitions not all owned by %v within %v: %+v (%v)", members, within, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownedCounts says how many partitions each holder has a lease on.
func ownedCounts(st cluster.Status) map[string]int {
	out := map[string]int{}
	for _, l := range st.Leases {
		out[l.Holder]++
	}
	return out
}

// waiting is an approval listed by an instance: who listed it first and its
// idempotency key.
type waiting struct{ who, key string }

// pendingApprovals asks every instance for the decisions waiting for approval
// and returns each decision id with the instance that listed it and its key.
func pendingApprovals(children []*runChild, names []string) (map[string]waiting, error) {
	out := map[string]waiting{}
	for i, c := range children {
		vs, err := listApprovals(c.base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", names[i], err)
		}
		for _, v := range vs {
			if _, ok := out[v.Decision.ID]; !ok {
				out[v.Decision.ID] = waiting{who: names[i], key: v.Decision.IdempotencyKey}
			}
		}
	}
	return out, nil
}

// listApprovals pages through GET /api/v1/approvals of one instance.
func listApprovals(base string) ([]actions.View, error) {
	var all []actions.View
	cursor := ""
	for range 1000 {
		code, body := get(base + "/api/v1/approvals?waiting=approval&limit=500&cursor=" + url.QueryEscape(cursor))
		if code != 200 {
			return nil, fmt.Errorf("GET /api/v1/approvals: %d %.300s", code, body)
		}
		var page struct {
			Approvals []actions.View
			Next      string
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			return nil, fmt.Errorf("decode approvals: %w: %.300s", err, body)
		}
		all = append(all, page.Approvals...)
		if cursor = page.Next; cursor == "" {
			return all, nil
		}
	}
	return nil, fmt.Errorf("GET /api/v1/approvals: more than 1000 pages")
}

// checkApprovalsKept checks that every decision of pending is listed in GET
// /api/v1/approvals by some instance now, or the same approval (its
// idempotency key: decided again by the next owner of an order whose previous
// owner died before it acked the event) is, or it was answered: GET
// /api/v1/decisions/{id} of some instance shows it in a state other than
// pending_approval. It asks every instance and returns, for each id, who
// listed it ("b", "b: rejected" when decided, "b as <id>" when decided again);
// ids that nobody lists are errors. Once any instance answers for all, the
// first one will do.
func checkApprovalsKept(t *testing.T, pending map[string]waiting, names []string, children ...*runChild) map[string]string {
	t.Helper()
	out, missing, err := approvalsKept(pending, names, children...)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range missing {
		t.Errorf("decision %s waited for approval on %s before the kill; after it no instance of %v lists it or shows it decided", id, pending[id].who, names)
	}
	return out
}

// approvalsKept is checkApprovalsKept's finding: who holds each approval of
// pending, and the ids nobody holds.
func approvalsKept(pending map[string]waiting, names []string, children ...*runChild) (map[string]string, []string, error) {
	listed := map[string]string{}
	keyed := map[string]string{} // idempotency key: who lists it, as which id
	for i, c := range children {
		vs, err := listApprovals(c.base)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", names[i], err)
		}
		for _, v := range vs {
			if _, ok := listed[v.Decision.ID]; !ok {
				listed[v.Decision.ID] = names[i]
			}
			if _, ok := keyed[v.Decision.IdempotencyKey]; !ok {
				keyed[v.Decision.IdempotencyKey] = names[i] + " as " + v.Decision.ID
			}
		}
	}
	out := map[string]string{}
	var missing []string
	ids := make([]string, 0, len(pending))
	for id := range pending {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if who, ok := listed[id]; ok {
			out[id] = who
			continue
		}
		if who, ok := keyed[pending[id].key]; ok {
			out[id] = who
			continue
		}
		for i, c := range children {
			code, body := get(c.base + "/api/v1/decisions/" + url.PathEscape(id))
			if code != 200 {
				continue
			}
			var v actions.View
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				return nil, nil, fmt.Errorf("%s: decision %s: %w", names[i], id, err)
			}
			if v.State != actions.StatePending {
				out[id] = names[i] + ": " + v.State
				break
			}
		}
		if _, ok := out[id]; !ok {
			missing = append(missing, id)
		}
	}
	return out, missing, nil
}

// checkActionsOnce waits until every instance's outbox is empty, then reads
// ACTIONS and checks that no two commands have one Nats-Msg-Id (nor one
// idempotency key), that each command's Nats-Msg-Id is its idempotency key, that
// a decision of some instance is behind each command, and that every decision
// an instance executed has its command there.
func checkActionsOnce(t *testing.T, js jetstream.JetStream, names []string, children ...*runChild) {
	t.Helper()
	for i, c := range children {
		waitFor(t, names[i]+"'s outbox empty", func() bool { return c.metric("orderwatch_outbox_depth", "") == 0 })
	}
	cmds := streamMsgs(t, js, pipeline.StreamActions)
	byMsgID, byKey := map[string]int{}, map[string]int{}
	for _, m := range cmds {
		id := m.Header.Get(jetstream.MsgIDHeader)
		byMsgID[id]++
		var c actions.Command
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Fatalf("command %d: %v", m.Sequence, err)
		}
		byKey[c.IdempotencyKey]++
		if c.IdempotencyKey != id {
			t.Errorf("command %d: idempotency key %q, Nats-Msg-Id %q", m.Sequence, c.IdempotencyKey, id)
		}
	}
	for id, n := range byMsgID {
		if n > 1 {
			t.Errorf("ACTIONS holds %d commands with Nats-Msg-Id %q: a command was published twice", n, id)
		}
	}
	if len(byKey) != len(cmds) {
		t.Errorf("ACTIONS holds %d commands with %d distinct idempotency keys", len(cmds), len(byKey))
	}
	decided := map[string]bool{}
	executed, decisions := 0, 0
	for i, c := range children {
		vs, err := allDecisions(c.base)
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		decisions += len(vs)
		for _, v := range vs {
			d := v.Decision
			decided[d.IdempotencyKey] = true
			switch v.State {
			case actions.StatePublished, actions.StateAwaitingAck, actions.StateAcked:
				executed++
				if byKey[d.IdempotencyKey] != 1 {
					t.Errorf("decision %s on %s (%s, %s) is %s, but ACTIONS holds %d commands with its key", d.ID, names[i], d.Action, d.Mode, v.State, byKey[d.IdempotencyKey])
				}
			case actions.StateQueued:
				t.Errorf("decision %s on %s still queued after the outbox emptied", d.ID, names[i])
			}
		}
	}
	for key := range byKey {
		if !decided[key] {
			t.Errorf("ACTIONS holds a command with key %s that no instance's decision has", key)
		}
	}
	if executed == 0 {
		t.Error("no decision executed: the stream did not exercise the outbox")
	}
	t.Logf("ACTIONS: %d commands; %d decisions over the group, %d executed", len(cmds), decisions, executed)
}

// logTakeovers logs each instance's orderwatch_partition_takeover_seconds and
// the group's histogram (each process's since it started).
func logTakeovers(t *testing.T, names []string, children ...*runChild) {
	t.Helper()
	bucket := regexp.MustCompile(`^orderwatch_partition_takeover_seconds_bucket\{le="([^"]+)"\} ([0-9.e+-]+)$`)
	group := map[string]float64{}
	var les []string
	var sum, count float64
	var per []string
	for i, c := range children {
		_, m := get(c.base + "/metrics")
		s := metricSum(m, "orderwatch_partition_takeover_seconds_sum", "")
		n := metricSum(m, "orderwatch_partition_takeover_seconds_count", "")
		sum, count = sum+s, count+n
		per = append(per, fmt.Sprintf("%s %d in %.3fs", names[i], int(n), s))
		for _, line := range strings.Split(m, "\n") {
			if b := bucket.FindStringSubmatch(line); b != nil {
				v, _ := strconv.ParseFloat(b[2], 64)
				if _, ok := group[b[1]]; !ok {
					les = append(les, b[1])
				}
				group[b[1]] += v
			}
		}
	}
	var hist []string
	prev := 0.0
	for _, le := range les {
		if n := group[le] - prev; n > 0 {
			hist = append(hist, fmt.Sprintf("le %s: %d", le, int(n)))
		}
		prev = group[le]
	}
	mean := 0.0
	if count > 0 {
		mean = sum / count
	}
	t.Logf("takeovers (orderwatch_partition_takeover_seconds): %s; group %d, mean %.3fs, per bucket %s", strings.Join(per, ", "), int(count), mean, strings.Join(hist, ", "))
}
