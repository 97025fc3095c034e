package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// The fault tests run `orderwatch run` in a child process, as actions/crash_test.go
// does with its daemon: this test binary re-executed with childArgsEnv set is the
// real command (runCmd, signals included), so it can be killed with SIGKILL at any
// instruction and restarted on the same data dir.
const childArgsEnv = "ORDERWATCH_TEST_RUN_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, "child: bad", childArgsEnv, err)
			os.Exit(2)
		}
		if err := runCmd(args); err != nil {
			fmt.Fprintln(os.Stderr, "orderwatch run:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if raw := os.Getenv(cliArgsEnv); raw != "" { // the CLI itself (console_test.go)
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, "cli: bad", cliArgsEnv, err)
			os.Exit(2)
		}
		os.Args = append([]string{"orderwatch"}, args...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild is one `orderwatch run` process.
type runChild struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string // http://addr
	log  string // its stderr
	done chan struct{}
	err  error // Wait's result, set when done is closed
}

// startChild starts `orderwatch run args...` in a child process and waits until it
// serves /readyz with 200.
func startChild(t *testing.T, httpAddr string, args ...string) *runChild {
	t.Helper()
	args = append([]string{"--http", httpAddr, "--log-format", "json", "--log-level", "info"}, args...)
	raw, _ := json.Marshal(args)
	logf, err := os.CreateTemp(t.TempDir(), "child-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &runChild{t: t, cmd: cmd, base: "http://" + httpAddr, log: logf.Name(), done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		if c.running() {
			c.kill()
		}
		if t.Failed() {
			c.dumpLog()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get(c.base + "/readyz"); code == 200 {
			return c
		}
		if !c.running() {
			c.dumpLog()
			t.Fatalf("orderwatch run exited before it was ready: %v", c.err)
		}
		if time.Now().After(deadline) {
			_, body := get(c.base + "/readyz")
			t.Fatalf("orderwatch run not ready within 30s: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *runChild) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL: no deferred close, no flush, no graceful anything.
func (c *runChild) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// stop sends SIGTERM and expects a clean exit within 20s.
func (c *runChild) stop() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		c.kill()
		c.t.Fatal("orderwatch run did not stop within 20s of SIGTERM")
	}
	if c.err != nil {
		c.t.Errorf("orderwatch run exited with %v after SIGTERM, want 0", c.err)
	}
}

// dumpLog shows the end of the child's log, or where it crashed.
func (c *runChild) dumpLog() {
	b, _ := os.ReadFile(c.log)
	if i := bytes.Index(b, []byte("fatal error")); i >= 0 {
		b = b[max(0, i-2000):min(len(b), i+3000)]
	} else if i := bytes.Index(b, []byte("panic:")); i >= 0 {
		b = b[max(0, i-2000):min(len(b), i+3000)]
	} else if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	c.t.Logf("orderwatch run pid %d (%v) log:\n%s", c.cmd.Process.Pid, c.err, b)
}

// alive fails the test when the child has exited.
func (c *runChild) alive() bool {
	c.t.Helper()
	if !c.running() {
		c.t.Fatalf("orderwatch run exited: %v", c.err)
	}
	return true
}

func (c *runChild) stats() (store.Stats, error) {
	code, body := get(c.base + "/api/v1/stats")
	var st store.Stats
	if code != 200 {
		return st, fmt.Errorf("GET /api/v1/stats: %d %s", code, body)
	}
	return st, json.Unmarshal([]byte(body), &st)
}

func (c *runChild) metric(name, match string) float64 {
	_, m := get(c.base + "/metrics")
	return metricSum(m, name, match)
}

// faultMsg is one message a producer puts into ORDERS.
type faultMsg struct {
	subject, msgID string
	data           []byte
	kind           string // "event", "duplicate" (an event id seen before) or "poison"
	reason         string // a poison message's dead-letter reason
}

// poisonMsgs are messages a producer gets wrong, with the dead-letter reason each
// must get (pipeline/faults_test.go holds every kind; these few ride in streams).
func poisonMsgs() []faultMsg {
	at := time.Now().UTC().Format(time.RFC3339)
	ev := func(id, typ, order, data string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`, id, typ, order, at, data)
	}
	poison := func(subject string, data []byte, reason string) faultMsg {
		return faultMsg{subject: subject, data: data, kind: "poison", reason: reason}
	}
	return []faultMsg{
		poison("orders.order.created", []byte(`{"id":"x-1","type":"order.created",`), "bad_json"),
		poison("orders.order.teleported.SO-X", ev("x-2", "order.teleported", "SO-X", `{}`), "unknown_type"),
		poison("orders.order.created.SO-X", ev("x-3", "order.created", "SO-X", `{"warehouse":"DAL"}`), "missing_field"),
		poison("orders.pick.confirmed", ev("x-4", "pick.confirmed", "", `{}`), "missing_order_id"),
		poison("orders.note.added.SO-X", ev("x-5", "note.added", "SO-X", `{"text":"`+strings.Repeat("y", 70<<10)+`"}`), "oversize"),
		poison("orders.note.added", ev("x-6", "note.added", "SO-X", "{\"text\":\"caf\xe9\"}"), "invalid_utf8"),
		poison("orders.note.added", bytes.Replace(ev("x-7", "note.added", "SO-X", `{}`), []byte(at), []byte("1970-01-01T00:00:00Z"), 1), "absurd_occurred_at"),
		poison("orders.note.added", bytes.Replace(ev("x-8", "note.added", "SO-X", `{}`), []byte(`"schema":1`), []byte(`"schema":3`), 1), "wrong_schema"),
		poison("orders.note.added", bytes.Replace(ev("x-9", "note.added", "SO-X", `{}`), []byte(`"x-9"`), []byte(`"x-9\u0007"`), 1), "bad_id"),
		poison("orders.note.added.SO-X", nil, "bad_json"),
		poison("orders.note.added", ev("x-10", "note.added", "SO-X", `{}`), "unpartitioned"),
		poison("orders.note.added.SO-Y", ev("x-11", "note.added", "SO-X", `{}`), "subject_mismatch"),
	}
}

// simStream is a realistic stream from the simulator (duplicates, out-of-order and
// late deliveries), its start near now, with a poison message every poisonEvery
// messages. A duplicate delivery goes out under its own Nats-Msg-Id, as a producer
// replaying beyond JetStream's two-minute dedupe window would send it, so that
// orderwatch's own event-id check is what catches it.
func simStream(t *testing.T, seed uint64, orders int64, poisonEvery int) []faultMsg {
	t.Helper()
	s, err := sim.New(sim.Options{Seed: seed, Orders: orders, Start: time.Now().Add(-6 * time.Hour).Truncate(time.Second),
		Faults: sim.Faults{Duplicates: 0.03, OutOfOrder: 0.05, Late: 0.02}})
	if err != nil {
		t.Fatal(err)
	}
	poison := poisonMsgs()
	seen := map[string]int{}
	var out []faultMsg
	err = s.Run(context.Background(), func(ev *sim.Emitted) error {
		id := ev.ID()
		seen[id]++
		m := faultMsg{subject: ev.Subject(), msgID: id, data: bytes.Clone(ev.Data), kind: "event"}
		if n := seen[id]; n > 1 {
			m.msgID, m.kind = fmt.Sprintf("%s#%d", id, n), "duplicate"
		}
		out = append(out, m)
		if poisonEvery > 0 && len(out)%poisonEvery == 0 {
			p := poison[(len(out)/poisonEvery)%len(poison)]
			p.msgID = fmt.Sprintf("poison-%d", len(out))
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// counts says how many messages of each kind a stream holds.
func counts(msgs []faultMsg) (events, duplicates, poison int64) {
	for _, m := range msgs {
		switch m.kind {
		case "event":
			events++
		case "duplicate":
			duplicates++
		case "poison":
			poison++
		}
	}
	return
}

// producer publishes to ORDERS through whatever happens to the server: every
// message is retried under its Nats-Msg-Id until JetStream acknowledges it, so a
// retry after a lost ack is deduplicated by the server.
type producer struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	sent atomic.Int64
}

func newProducer(t *testing.T, url string) *producer {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &producer{nc: nc, js: js}
}

func (p *producer) publish(ctx context.Context, m faultMsg) error {
	msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{jetstream.MsgIDHeader: {m.msgID}}}
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := p.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			p.sent.Add(1)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w (last error %v)", m.msgID, ctx.Err(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAll publishes msgs in the background, in windows of asynchronous
// publishes; a message whose ack does not come (the server is down or restarting)
// is published again, synchronously, under the same Nats-Msg-Id. The returned
// channel gets the result.
func (p *producer) publishAll(ctx context.Context, msgs []faultMsg) <-chan error {
	done := make(chan error, 1)
	go func() {
		const window = 128
		for len(msgs) > 0 {
			chunk := msgs[:min(window, len(msgs))]
			msgs = msgs[len(chunk):]
			futures := make([]jetstream.PubAckFuture, len(chunk))
			for i, m := range chunk {
				msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{jetstream.MsgIDHeader: {m.msgID}}}
				futures[i], _ = p.js.PublishMsgAsync(msg)
			}
			// One deadline for the window: once it has passed, an ack that has
			// not come is not waited for (a timer channel would fire only for
			// the first of them).
			deadline := time.Now().Add(3 * time.Second)
			for i, f := range futures {
				if f != nil {
					select {
					case <-f.Ok():
						p.sent.Add(1)
						continue
					case <-f.Err():
					case <-time.After(time.Until(deadline)):
					}
				}
				if err := p.publish(ctx, chunk[i]); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	return done
}

// streamInfo reads a stream's state from the server, retrying while it restarts.
func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	var last error
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, name)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = s.Info(ctx); err == nil {
				cancel()
				return info
			}
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("stream %s info: %v", name, last)
	return nil
}

// consumersState sums the pipeline's consumers of ORDERS, its partitions' and
// the context account's (each message is in exactly one of them; the context
// followers read the context subjects again and are left out).
type consumersState struct {
	NumPending, Acked uint64
	NumAckPending     int
	// FollowBehind is what the context followers have not yet read or acked.
	FollowBehind uint64
}

func consumerInfo(js jetstream.JetStream) (*consumersState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var cs consumersState
	n := 0
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			continue // a rebuild's ordered reader, gone with it
		}
		if strings.Contains(ci.Name, "-follow-") {
			cs.FollowBehind += ci.NumPending + uint64(ci.NumAckPending)
			continue
		}
		n++
		cs.NumPending += ci.NumPending
		cs.NumAckPending += ci.NumAckPending
	}
	if err := lister.Err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("no consumer on ORDERS yet")
	}
	cs.Acked = info.State.Msgs - min(info.State.Msgs, cs.NumPending+uint64(cs.NumAckPending))
	return &cs, nil
}

// waitDrained waits until every message of ORDERS is counted once in the durable
// stats and nothing is pending or in flight, and returns the stats.
func waitDrained(t *testing.T, c *runChild, js jetstream.JetStream, within time.Duration) (store.Stats, uint64) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msgs := streamInfo(t, js, pipeline.StreamOrders).State.Msgs
		st, err := c.stats()
		ci, cerr := consumerInfo(js)
		if err == nil && cerr == nil && uint64(st.EventsApplied+st.Duplicates+st.DeadLettered) == msgs && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.FollowBehind == 0 {
			return st, msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained within %v: ORDERS holds %d, stats %+v (%v), consumer %+v (%v)", within, msgs, st, err, ci, cerr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// streamMsgs reads every message of a stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if uint64(len(out)) != info.State.Msgs {
		t.Fatalf("read %d messages of %s, its info says %d", len(out), name, info.State.Msgs)
	}
	return out
}

const killPolicy = `version: kill-1
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
- {id: credit-hold, action: flag_finance, mode: approval, when: {features: {on_credit_hold: {eq: 1}}}}
- {id: risky-shadow, action: request_warehouse_reprioritisation, mode: shadow, when: {risk: {gte: 0.3}}}
`

// TestKillNineMidStream kills `orderwatch run` with SIGKILL at random moments while
// a simulated stream (with duplicates, late and out-of-order events and poison) is
// published and processed, restarts it on the same data dir, and checks after the
// drain that every message of ORDERS was counted exactly once, that every decision
// is readable and its command, when it executed, is in ACTIONS once, and that no
// command was published twice.
func TestKillNineMidStream(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 9))
	t.Logf("kill schedule seed %d", seed)
	data, httpAddr, natsAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	// A policy that decides for every order, so that the outbox carries a command for
	// most orders, with decisions that wait for approval or are shadow only beside.
	args := []string{"--data", data, "--nats-listen", natsAddr, "--batch-size", "64", "--policy", writePolicy(t, killPolicy)}

	msgs := simStream(t, 11, 60, 97)
	wantEvents, wantDups, wantPoison := counts(msgs)
	t.Logf("stream: %d messages: %d events, %d duplicate deliveries, %d poison", len(msgs), wantEvents, wantDups, wantPoison)

	t0 := time.Now()
	child := startChild(t, httpAddr, args...)
	prod := newProducer(t, "nats://"+natsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	published := prod.publishAll(ctx, msgs)

	// Three kills: at a random point of the first half of the stream, a moment
	// after the restart that follows (while it recovers: consumer, redeliveries,
	// outbox), and at a random point of the second half.
	var pubErr error
	pubDone := false
	waitSent := func(frac float64) {
		for at := int64(frac * float64(len(msgs))); prod.sent.Load() < at && !pubDone; {
			select {
			case pubErr = <-published:
				pubDone = true
			case <-time.After(10 * time.Millisecond):
			}
		}
		if pubErr != nil {
			t.Fatal(pubErr)
		}
	}
	for kill := 1; kill <= 3; kill++ {
		switch kill {
		case 1:
			waitSent(0.05 + 0.4*r.Float64())
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
		case 2:
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
		case 3:
			waitSent(0.55 + 0.4*r.Float64())
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond)
		}
		st, _ := child.stats()
		child.kill()
		t.Logf("%v kill %d: SIGKILL with %d messages published, %d counted", time.Since(t0).Round(time.Millisecond), kill, prod.sent.Load(), st.EventsApplied+st.Duplicates+st.DeadLettered)
		child = startChild(t, httpAddr, args...)
	}
	if !pubDone {
		if pubErr = <-published; pubErr != nil {
			t.Fatal(pubErr)
		}
	}

	st, total := waitDrained(t, child, prod.js, 45*time.Second)
	if total != uint64(len(msgs)) {
		t.Fatalf("ORDERS holds %d messages, %d were published once each: JetStream lost or doubled a publish", total, len(msgs))
	}
	if st.EventsApplied != wantEvents || st.Duplicates != wantDups || st.DeadLettered != wantPoison {
		t.Errorf("stats %+v, want %d applied, %d duplicates, %d dead-lettered: a message was applied twice or lost", st, wantEvents, wantDups, wantPoison)
	}
	// Each poison message is in ORDERS_DLQ once, with its reason, whatever crash
	// came between its dead-letter publish and its commit.
	reasons := map[string]string{}
	for _, m := range msgs {
		if m.kind == "poison" {
			reasons[m.msgID] = m.reason
		}
	}
	dead := map[string]int{}
	for _, m := range streamMsgs(t, prod.js, pipeline.StreamDLQ) {
		id := m.Header.Get(pipeline.HeaderOriginalMsgID)
		dead[id]++
		if got := m.Header.Get(pipeline.HeaderReason); got != reasons[id] {
			t.Errorf("dead letter of %q has reason %q, want %q", id, got, reasons[id])
		}
	}
	for id := range reasons {
		if dead[id] != 1 {
			t.Errorf("poison message %s is %d times in ORDERS_DLQ, want once", id, dead[id])
		}
	}
	if len(dead) != len(reasons) {
		t.Errorf("ORDERS_DLQ holds dead letters of %d messages, %d poison messages were sent", len(dead), len(reasons))
	}

	decisions, executed, commands := commandsOnce(t, child, prod)
	st, _ = child.stats()
	_, m := get(child.base + "/metrics")
	t.Logf("%v drained: %+v; %d decisions, %d executed, ACTIONS %d; redelivered after the last restart %v",
		time.Since(t0).Round(time.Millisecond), st, decisions, executed, commands, metricSum(m, "orderwatch_events_total", `result="redelivered"`))
	child.stop()
}

// commandsOnce waits for the outbox to empty, then checks that every decision is
// readable, that each executed one has its command in ACTIONS once, that nothing
// else is there, and that at least one executed. It returns the counts.
func commandsOnce(t *testing.T, child *runChild, prod *producer) (decisions, executed, commands int) {
	t.Helper()
	waitFor(t, "the outbox empty", func() bool { return child.metric("orderwatch_outbox_depth", "") == 0 })
	var list struct{ Decisions []actions.View }
	var err error
	if list.Decisions, err = allDecisions(child.base); err != nil {
		t.Fatal(err)
	}
	st, _ := child.stats()
	if int64(len(list.Decisions)) != st.Decisions || st.Decisions == 0 {
		t.Fatalf("%d decision records readable, stats count %d decisions (want equal and > 0)", len(list.Decisions), st.Decisions)
	}
	cmds := streamMsgs(t, prod.js, pipeline.StreamActions)
	byMsgID, byKey := map[string]int{}, map[string]int{}
	for _, m := range cmds {
		byMsgID[m.Header.Get(jetstream.MsgIDHeader)]++
		var c actions.Command
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Fatalf("command %d: %v", m.Sequence, err)
		}
		byKey[c.IdempotencyKey]++
		if c.IdempotencyKey != m.Header.Get(jetstream.MsgIDHeader) {
			t.Errorf("command %d: idempotency key %q, Nats-Msg-Id %q", m.Sequence, c.IdempotencyKey, m.Header.Get(jetstream.MsgIDHeader))
		}
	}
	if len(byMsgID) != len(cmds) || len(byKey) != len(cmds) {
		t.Errorf("ACTIONS holds %d commands with %d distinct Nats-Msg-Ids and %d distinct idempotency keys: a command was published twice", len(cmds), len(byMsgID), len(byKey))
	}
	// A command published again after a SIGKILL between its publish and its
	// record is acked by JetStream as a duplicate and counted deduplicated.
	if st.ActionsPublished > int64(len(cmds)) || st.ActionsPublished+st.ActionsDeduplicated < int64(len(cmds)) {
		t.Errorf("stats count %d actions published and %d deduplicated, ACTIONS holds %d", st.ActionsPublished, st.ActionsDeduplicated, len(cmds))
	}
	decided := map[string]bool{}
	executed = 0
	for _, v := range list.Decisions {
		d := v.Decision
		if decided[d.IdempotencyKey] {
			t.Errorf("two decisions with idempotency key %s (order %s, rule %s): a batch was decided twice", d.IdempotencyKey, d.OrderID, d.RuleID)
		}
		decided[d.IdempotencyKey] = true
		switch v.State {
		case actions.StatePublished, actions.StateAwaitingAck, actions.StateAcked:
			executed++
			if byKey[d.IdempotencyKey] != 1 {
				t.Errorf("decision %s (%s, %s) is %s, but ACTIONS holds %d commands with its key", d.ID, d.Action, d.Mode, v.State, byKey[d.IdempotencyKey])
			}
		case actions.StateQueued:
			t.Errorf("decision %s still queued after the outbox emptied", d.ID)
		default:
			if byKey[d.IdempotencyKey] != 0 {
				t.Errorf("decision %s is %s, but its command is in ACTIONS", d.ID, v.State)
			}
		}
	}
	for key := range byKey {
		if !decided[key] {
			t.Errorf("ACTIONS holds a command with key %s that no stored decision has", key)
		}
	}
	if executed == 0 {
		t.Error("no decision executed: the stream did not exercise the outbox")
	}
	return len(list.Decisions), executed, len(cmds)
}

// startRunWith runs the wiring of `orderwatch run` in this process with args, and
// stops it when the test ends.
func startRunWith(t *testing.T, args ...string) (base string) {
	t.Helper()
	httpAddr := freeAddr(t)
	cfg, err := parseRunFlags(append([]string{"--http", httpAddr}, args...))
	if err != nil {
		t.Fatal(err)
	}
	startParsed(t, cfg)
	base = "http://" + httpAddr
	waitFor(t, "/readyz 200", func() bool { code, _ := get(base + "/readyz"); return code == 200 })
	return base
}

// startParsed runs `orderwatch run` with cfg in this process, and stops it when
// the test ends, expecting a clean return.
func startParsed(t *testing.T, cfg runConfig) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v on shutdown, want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("run did not stop within 20s")
		}
	})
}

// TestNATSRestartMidStream: the NATS server orderwatch uses (external here: its
// own store, started by the test on a fixed port) goes away mid-stream and comes
// back on the same port and store. Meanwhile /readyz says 503 naming NATS; after it
// orderwatch reconnects by itself and every message is counted exactly once.
func TestNATSRestartMidStream(t *testing.T) {
	natsDir, natsAddr := t.TempDir(), freeAddr(t)
	eo := pipeline.EmbeddedOptions{Listen: natsAddr, DataDir: natsDir}
	ns, err := pipeline.StartEmbedded(eo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	base := startRunWith(t, "--data", t.TempDir(), "--nats-url", "nats://"+natsAddr, "--batch-size", "64")

	msgs := simStream(t, 12, 30, 53)
	wantEvents, wantDups, wantPoison := counts(msgs)
	prod := newProducer(t, "nats://"+natsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	published := prod.publishAll(ctx, msgs)
	waitFor(t, "a third of the stream published", func() bool { return prod.sent.Load() > int64(len(msgs)/3) })

	ns.Shutdown()
	ns.WaitForShutdown()
	down := time.Now()
	var body string
	waitFor(t, "/readyz 503 naming nats", func() bool {
		var code int
		code, body = get(base + "/readyz")
		return code == 503 && strings.Contains(body, `"nats"`)
	})
	t.Logf("%v after the shutdown: %s", time.Since(down).Round(time.Millisecond), strings.Join(strings.Fields(body), " "))
	time.Sleep(time.Second) // stay away a while
	ns, err = pipeline.StartEmbedded(eo)
	if err != nil {
		t.Fatalf("restart nats-server on %s: %v", natsAddr, err)
	}
	waitFor(t, "/readyz 200 after the restart", func() bool { code, _ := get(base + "/readyz"); return code == 200 })
	t.Logf("ready again %v after the shutdown (1s away)", time.Since(down).Round(time.Millisecond))
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	// Messages delivered before the shutdown whose acks were lost come back after
	// the consumer's AckWait (30s).
	deadline := time.Now().Add(50 * time.Second)
	var st store.Stats
	for {
		total := streamInfo(t, prod.js, pipeline.StreamOrders).State.Msgs
		_, raw := get(base + "/api/v1/stats")
		st = store.Stats{}
		_ = json.Unmarshal([]byte(raw), &st)
		if uint64(st.EventsApplied+st.Duplicates+st.DeadLettered) == total {
			if total != uint64(len(msgs)) {
				t.Fatalf("ORDERS holds %d messages, %d were published once each", total, len(msgs))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained within 50s: ORDERS holds %d, stats %+v", total, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.EventsApplied != wantEvents || st.Duplicates != wantDups || st.DeadLettered != wantPoison {
		t.Errorf("stats %+v, want %d applied, %d duplicates, %d dead-lettered", st, wantEvents, wantDups, wantPoison)
	}
	_, m := get(base + "/metrics")
	t.Logf("acks lost %v, redelivered %v, batch failures %v", metricSum(m, "orderwatch_ack_failures_total", ""),
		metricSum(m, "orderwatch_events_total", `result="redelivered"`), metricSum(m, "orderwatch_batch_failures_total", ""))
}

// mountTmpfs mounts a tmpfs of size on dir for the test: a small disk the test can
// fill and empty. It needs root (CAP_SYS_ADMIN); without it the test fails and says
// so, it does not skip.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v: %s\nthis test fills a real file system to see a disk-full: it needs root (CAP_SYS_ADMIN) to mount one", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fillDisk takes the free bytes of dir's file system but leave with one file
// (leave 0: every one) and returns a function that deletes it.
func fillDisk(t *testing.T, dir string, leave int64) (release func()) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fill := int64(fs.Bavail)*fs.Bsize - leave
	if fill <= 0 {
		t.Fatalf("%s has %d bytes free, not more than the %d to leave", dir, int64(fs.Bavail)*fs.Bsize, leave)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, fill); err != nil {
		t.Fatalf("fill %s with %d bytes: %v", dir, fill, err)
	}
	// Whatever fallocate left (rounding), a write takes.
	for buf := make([]byte, 4096); leave == 0; {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	t.Logf("disk %s filled: %d bytes free", dir, int64(fs.Bavail)*fs.Bsize)
	return func() {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadgerDiskFull fills the disk under Badger (a tmpfs that is the data dir;
// JetStream runs elsewhere, so only Badger's disk fills) below the space
// orderwatch keeps, while events arrive and commands go out: the batch is not
// committed nor acked, /readyz says 503 with the reason,
// orderwatch_batch_failures_total{stage="commit"} counts the retries, and when the
// space returns the backlog is applied, each message once, and each executed
// decision's command is in ACTIONS once.
func TestBadgerDiskFull(t *testing.T) {
	data := t.TempDir()
	mountTmpfs(t, data, "512m")
	natsDir, natsAddr := t.TempDir(), freeAddr(t)
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: natsAddr, DataDir: natsDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	// The policy of the kill test decides for most orders: the executor publishes
	// commands and records their outcome in Badger while the disk fills.
	child := startChild(t, freeAddr(t), "--data", data, "--nats-url", "nats://"+natsAddr, "--batch-size", "64", "--policy", writePolicy(t, killPolicy))
	prod := newProducer(t, "nats://"+natsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	msgs := simStream(t, 13, 12, 41)
	half := len(msgs) / 2
	if err := <-prod.publishAll(ctx, msgs[:half]); err != nil {
		t.Fatal(err)
	}
	before, _ := waitDrained(t, child, prod.js, 30*time.Second)

	// The disk fills below the space orderwatch keeps for Badger, as a disk fills
	// in production: every writer (pipeline, executor) stops at once, while the
	// executor may still be publishing the commands decided before.
	release := fillDisk(t, data, badgerReserve/4)
	if err := <-prod.publishAll(ctx, msgs[half:]); err != nil {
		t.Fatal(err)
	}
	var body string
	waitFor(t, "/readyz 503 naming the failing commit, and retries counted", func() bool {
		var code int
		code, body = get(child.base + "/readyz")
		return child.alive() && code == 503 && strings.Contains(body, `"consumer": "disk full`) && child.metric("orderwatch_batch_failures_total", `stage="commit"`) >= 2
	})
	t.Logf("while full: %s", strings.Join(strings.Fields(body), " "))
	// It stays reported while the disk stays full, and nothing is committed: not a
	// batch, not a rescoring timer's decision, not the outcome of a command (the
	// executor holds the outbox). What committed between the drain and the moment
	// the disk crossed the reserve (a timer, a command decided before) is in held.
	held, err := child.stats()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if code, body := get(child.base + "/readyz"); code != 503 || !strings.Contains(body, `"consumer"`) {
			t.Fatalf("/readyz %d while the disk is still full, want 503 naming the consumer: %s", code, body)
		}
	}
	st, err := child.stats()
	if err != nil || st != held {
		t.Errorf("stats while the disk is full: %+v (%v), want them unchanged from %+v", st, err, held)
	}
	if st.EventsApplied+st.Duplicates+st.DeadLettered != before.EventsApplied+before.Duplicates+before.DeadLettered {
		t.Errorf("messages counted while the disk is full: %+v, want those of the drain %+v: a batch published after the disk crossed the reserve was committed", st, before)
	}
	ci, err := consumerInfo(prod.js)
	if err != nil {
		t.Fatal(err)
	}
	if counted := uint64(before.EventsApplied + before.Duplicates + before.DeadLettered); ci.Acked != counted {
		t.Errorf("%d messages acked while the disk is full, want the %d counted: a batch published after the disk crossed the reserve was acked", ci.Acked, counted)
	}

	release()
	recovered(t, child, prod, msgs, 30*time.Second)
	decisions, executed, commands := commandsOnce(t, child, prod)
	t.Logf("after the space returned: %d decisions, %d executed, ACTIONS %d", decisions, executed, commands)
	child.stop()
}

// TestJetStreamDiskFull fills the disk under the embedded JetStream store (a tmpfs
// mounted on <data>/jetstream; Badger's disk keeps its space) while events arrive.
// nats-server turns JetStream off at the first write that finds no space; the
// server's own error reaches orderwatch's log, /readyz says 503 and
// orderwatch_embedded_jetstream_writable 0. When the space returns orderwatch turns JetStream back on by itself,
// without a restart, and every event is applied once: those stored before, and
// those the producer kept retrying.
func TestJetStreamDiskFull(t *testing.T) {
	data := t.TempDir()
	jsDir := filepath.Join(data, "jetstream")
	if err := os.MkdirAll(jsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, jsDir, "256m")
	natsAddr := freeAddr(t)
	child := startChild(t, freeAddr(t), "--data", data, "--nats-listen", natsAddr, "--batch-size", "64")
	prod := newProducer(t, "nats://"+natsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	msgs := simStream(t, 17, 12, 41)
	half := len(msgs) / 2
	if err := <-prod.publishAll(ctx, msgs[:half]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, child, prod.js, 30*time.Second)

	release := fillDisk(t, jsDir, 0)
	rest := prod.publishAll(ctx, msgs[half:])
	var body string
	waitFor(t, "/readyz 503 and the writable gauge at 0 while JetStream's disk is full", func() bool {
		var code int
		code, body = get(child.base + "/readyz")
		return child.alive() && code == 503 && strings.Contains(body, `"jetstream"`) &&
			child.metric("orderwatch_embedded_jetstream_writable", "") == 0
	})
	t.Logf("while full: %s", strings.Join(strings.Fields(body), " "))
	log, err := os.ReadFile(child.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "no space left on device") {
		t.Errorf("orderwatch's log does not carry nats-server's out-of-space error")
	}

	release()
	if err := <-rest; err != nil {
		t.Fatalf("publishing after the space returned: %v", err)
	}
	recovered(t, child, prod, msgs, 30*time.Second)
	log, _ = os.ReadFile(child.log)
	if !strings.Contains(string(log), "JetStream back on") {
		t.Errorf("orderwatch's log does not say it turned JetStream back on")
	}
	if v := child.metric("orderwatch_embedded_jetstream_writable", ""); v != 1 {
		t.Errorf("orderwatch_embedded_jetstream_writable = %v after the restart, want 1", v)
	}
	child.stop()
}

// recovered checks, once a disk has space again, that the stream holds every
// message of msgs, that each was counted once, and that /readyz is back to 200.
func recovered(t *testing.T, child *runChild, prod *producer, msgs []faultMsg, within time.Duration) {
	t.Helper()
	st, total := waitDrained(t, child, prod.js, within)
	wantEvents, wantDups, wantPoison := counts(msgs)
	if total != uint64(len(msgs)) || st.EventsApplied != wantEvents || st.Duplicates != wantDups || st.DeadLettered != wantPoison {
		t.Errorf("after the space returned: ORDERS %d, stats %+v; want %d messages: %d applied, %d duplicates, %d dead-lettered",
			total, st, len(msgs), wantEvents, wantDups, wantPoison)
	}
	waitFor(t, "/readyz 200 after the space returned", func() bool { code, _ := get(child.base + "/readyz"); return code == 200 })
}

// procRSS reads a process's resident set size in bytes.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestBurstLagGrowsMemoryBoundedDrains: after a sustained rate that orderwatch
// keeps up with, producers send ten times that rate for a while: the consumer's lag
// grows (JetStream holds the backlog, orderwatch_consumer_pending_messages shows
// it), orderwatch's live Go heap stays within a bound far below the backlog's size
// because it fetches a bounded window, and the backlog drains, each message
// counted once.
//
// The rates follow the machine: the test first measures how fast this orderwatch
// applies a backlog of 6000 messages queued before it started (its capacity C; the
// heap is watched through that drain too), then sustains C/5 and bursts at 2C.
//
// Each message carries 16 KiB of producer headers orderwatch does not read: a
// client that held the backlog in memory would hold them, while the bodies, which
// Badger stores, stay small enough that Badger's own memory does not hide it.
func TestBurstLagGrowsMemoryBoundedDrains(t *testing.T) {
	natsAddr := freeAddr(t)
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: natsAddr, DataDir: t.TempDir(), Sync: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	const batch, heapBound = 64, 32 << 20
	prod := newProducer(t, "nats://"+natsAddr)
	if _, err := pipeline.EnsureStreams(context.Background(), prod.js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	msgs := simStream(t, 14, 1300, 0)
	pad := strings.Repeat("b", 16<<10)
	next := 0
	take := func(n int) []faultMsg {
		t.Helper()
		if next+n > len(msgs) {
			t.Fatalf("the simulator made %d messages, the test needs %d", len(msgs), next+n)
		}
		next += n
		return msgs[next-n : next]
	}
	// publishAt publishes msgs at rate per second (0: at once), in ticks of 10 ms.
	publishAt := func(msgs []faultMsg, rate float64) {
		t.Helper()
		start := time.Now()
		for i := 0; i < len(msgs); {
			due := len(msgs)
			if rate > 0 {
				due = int(time.Since(start).Seconds()*rate) + 1
			}
			for ; i < min(due, len(msgs)); i++ {
				m := msgs[i]
				msg := &nats.Msg{Subject: m.subject, Data: m.data, Header: nats.Header{jetstream.MsgIDHeader: {m.msgID}, "X-Producer-Baggage": {pad}}}
				if _, err := prod.js.PublishMsgAsync(msg); errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					// The server acks slower than this burst goes (the race
					// detector, a loaded machine): wait for it, then go on.
					select {
					case <-prod.js.PublishAsyncComplete():
					case <-time.After(30 * time.Second):
						t.Fatal("publishes not acknowledged within 30s")
					}
					i--
				} else if err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		select {
		case <-prod.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatal("publishes not acknowledged within 30s")
		}
	}

	t0 := time.Now()
	calib := take(6000)
	publishAt(calib, 0)
	child := startChild(t, freeAddr(t), "--data", t.TempDir(), "--nats-url", "nats://"+natsAddr, "--batch-size", strconv.Itoa(batch))
	start := time.Now()

	// The live heap at the last collection: the heap goal over 1+GOGC/100. (The
	// heap in use also holds garbage not yet collected, which a stream of 16 KiB
	// messages makes plenty of.)
	heap := func() float64 {
		_, m := get(child.base + "/metrics")
		return metricSum(m, "go_memstats_next_gc_bytes", "") * 100 / (100 + metricSum(m, "go_gc_gogc_percent", ""))
	}
	var (
		mu                  sync.Mutex
		peakHeap            float64
		peakRSS             int64
		peakPending, peakIn uint64
		peakMetric          float64
	)
	peaks := func() (float64, int64, uint64, uint64, float64) {
		mu.Lock()
		defer mu.Unlock()
		h, r, p, i, m := peakHeap, peakRSS, peakPending, peakIn, peakMetric
		peakHeap, peakRSS, peakPending, peakIn, peakMetric = 0, 0, 0, 0, 0
		return h, r, p, i, m
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			h, rss := heap(), procRSS(child.cmd.Process.Pid)
			ci, err := consumerInfo(prod.js)
			lag := child.metric("orderwatch_consumer_pending_messages", "")
			mu.Lock()
			peakHeap, peakRSS, peakMetric = max(peakHeap, h), max(peakRSS, rss), max(peakMetric, lag)
			if err == nil {
				peakPending, peakIn = max(peakPending, ci.NumPending), max(peakIn, uint64(ci.NumAckPending))
			}
			mu.Unlock()
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-sampled
	}()

	waitDrained(t, child, prod.js, 30*time.Second)
	capacity := float64(len(calib)) / time.Since(start).Seconds()
	calibHeap, _, _, calibIn, _ := peaks()

	rate := capacity / 5
	publishAt(take(min(int(3*rate), 2000)), rate)
	ci, err := consumerInfo(prod.js)
	if err != nil {
		t.Fatal(err)
	}
	if float64(ci.NumPending) > rate {
		t.Errorf("%d messages pending at the end of the sustained rate %.0f/s: orderwatch did not keep up with a fifth of its capacity", ci.NumPending, rate)
	}
	waitDrained(t, child, prod.js, 20*time.Second)
	base, baseRSS := heap(), procRSS(child.cmd.Process.Pid)
	peaks()
	t.Logf("%v capacity %.0f/s (a backlog of %d, %d MiB, drained with a live heap of at most %.0f MiB); sustained %.0f/s kept up: live heap %.0f MiB, RSS %d MiB",
		time.Since(t0).Round(time.Millisecond), capacity, len(calib), len(calib)*len(pad)>>20, calibHeap/(1<<20), rate, base/(1<<20), baseRSS>>20)

	// Ten times the sustained rate for 4 s (at most 12000 messages).
	burst := take(min(int(4*10*rate), 12000))
	publishAt(burst, 10*rate)
	t.Logf("%v burst of %d at %.0f/s published", time.Since(t0).Round(time.Millisecond), len(burst), 10*rate)
	st, total := waitDrained(t, child, prod.js, 40*time.Second)
	burstHeap, burstRSS, burstPending, burstIn, burstMetric := peaks()
	t.Logf("%v drained: peak pending %d (metric %v), peak ack pending %d, peak live heap %.0f MiB, peak RSS %d MiB (+%d, the race detector's shadow memory included)",
		time.Since(t0).Round(time.Millisecond), burstPending, burstMetric, burstIn, burstHeap/(1<<20), burstRSS>>20, (burstRSS-baseRSS)>>20)

	// At twice its capacity the backlog grows by about C a second; half of that
	// leaves room for a producer slowed by the machine's load.
	if float64(burstPending) < capacity/2 || burstMetric == 0 {
		t.Errorf("peak lag %d messages (orderwatch_consumer_pending_messages %v) during a burst of %d at ten times the sustained rate: want the backlog to build in JetStream and show",
			burstPending, burstMetric, len(burst))
	}
	if in := max(calibIn, burstIn); in > 8*batch {
		t.Errorf("peak ack pending %d, above MaxAckPending %d", in, 8*batch)
	}
	for _, c := range []struct {
		what    string
		peak    float64
		backlog int
	}{{"the queued backlog", calibHeap, len(calib)}, {"the burst", burstHeap, int(burstPending)}} {
		if grow := c.peak - base; grow > heapBound {
			t.Errorf("live Go heap %.0f MiB above the steady %.0f MiB while %s of %d messages (%d MiB) drained: want under %d MiB, the pipeline must fetch a bounded window",
				grow/(1<<20), base/(1<<20), c.what, c.backlog, c.backlog*len(pad)>>20, heapBound>>20)
		}
	}
	wantEvents, wantDups, wantPoison := counts(msgs[:next])
	if total != uint64(next) || st.EventsApplied != wantEvents || st.Duplicates != wantDups || st.DeadLettered != wantPoison {
		t.Errorf("ORDERS %d, stats %+v; want %d messages: %d applied, %d duplicates", total, st, next, wantEvents, wantDups)
	}
	child.stop()
}
