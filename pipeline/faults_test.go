package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// rig is the real thing in parts: an embedded nats-server on a data dir and Badger
// beside it at once, the pipeline with the shipped model when the test says (after
// it queued messages or took the store's space, say).
type rig struct {
	t    *testing.T
	dir  string
	ns   *pipeline.Embedded
	nc   *nats.Conn
	js   jetstream.JetStream
	st   *store.Store
	reg  *prometheus.Registry
	p    *pipeline.Pipeline
	stop func()
}

func newRig(t *testing.T, eo pipeline.EmbeddedOptions) *rig {
	t.Helper()
	if eo.DataDir == "" {
		eo.DataDir = t.TempDir()
	}
	if eo.Listen == "" {
		eo.Listen = "127.0.0.1:0"
	}
	r := &rig{t: t, dir: eo.DataDir, reg: prometheus.NewRegistry()}
	var err error
	if r.ns, err = pipeline.StartEmbedded(eo); err != nil {
		t.Fatal(err)
	}
	r.nc, err = nats.Connect(r.ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.EnsureStreams(context.Background(), r.js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	if r.st, err = store.Open(store.Options{Dir: r.dir + "/badger"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
		}
		r.nc.Close()
		r.ns.Shutdown()
		r.ns.WaitForShutdown()
		if err := r.st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return r
}

// start runs the pipeline (with the shipped model and a new metrics registry)
// until the test ends or calls stop.
func (r *rig) start(mods ...func(*pipeline.Options)) {
	r.t.Helper()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		r.t.Fatal(err)
	}
	model := openShippedModel(r.t)
	r.reg = prometheus.NewRegistry()
	opts := pipeline.Options{JetStream: r.js, Store: r.st, Policy: actions.NewLive(policy), Scorer: riskScorer{model}, Registerer: r.reg}
	for _, mod := range mods {
		mod(&opts)
	}
	if r.p, err = pipeline.New(opts); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.p.Run(ctx) }()
	r.stop = func() {
		r.stop = nil
		cancel()
		select {
		case err := <-done:
			if err != nil {
				r.t.Errorf("pipeline.Run returned %v on shutdown, want nil", err)
			}
		case <-time.After(15 * time.Second):
			r.t.Error("pipeline did not stop within 15s")
		}
		model.Close()
	}
	// Every partition's consumer is up before the test goes on (not ready
	// meanwhile, which some tests check for other reasons).
	waitFor(r.t, "every partition read", func() bool { return len(r.p.Consumers()) >= r.p.Partitions()+1 })
}

func (r *rig) publish(subject, msgID string, data []byte) {
	r.t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := r.js.PublishMsg(context.Background(), msg); err != nil {
		r.t.Fatalf("publish to %s: %v", subject, err)
	}
}

// drained waits until every message of ORDERS is counted in the durable stats.
func (r *rig) drained(within time.Duration) store.Stats {
	r.t.Helper()
	h := &harness{t: r.t, js: r.js, nc: r.nc, st: r.st, reg: r.reg}
	deadline := time.Now().Add(within)
	for {
		info, err := streamInfo(r.js, pipeline.StreamOrders)
		if err == nil {
			st := h.stats()
			if st.EventsApplied+st.Duplicates+st.DeadLettered == int64(info.State.Msgs) {
				return st
			}
			if time.Now().After(deadline) {
				ready, why := r.p.Ready()
				r.t.Fatalf("not drained within %v: ORDERS holds %d messages, stats %+v; ready %v %s", within, info.State.Msgs, st, ready, why)
			}
		} else if time.Now().After(deadline) {
			r.t.Fatalf("not drained within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streamInfo(js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// TestHugeTextsBurstThroughJetStream: valid events with texts near the event size
// limit, queued before the pipeline starts so that they arrive in one full batch
// (more than Badger takes in one commit), are all applied and acked: the batch is
// split, not retried forever.
func TestHugeTextsBurstThroughJetStream(t *testing.T) {
	r := newRig(t, pipeline.EmbeddedOptions{Sync: "1s"})
	now := time.Now()
	text := strings.Repeat("carrier EDI 214 dump segment AT7*X6*NS ", (features.MaxEventBytes-1024)/40)
	const orders, notes = 3, 180
	for i := range orders {
		id := fmt.Sprintf("h-c-%d", i)
		r.publish(features.Subject("order.created", fmt.Sprintf("SO-H%d", i)), id, created(id, fmt.Sprintf("SO-H%d", i), now, now.Add(5*time.Hour)))
	}
	for i := range notes {
		id := "h-n-" + strconv.Itoa(i)
		r.publish(features.Subject("carrier.status", fmt.Sprintf("SO-H%d", i%orders)), id, event(id, "carrier.status", fmt.Sprintf("SO-H%d", i%orders), now.Add(time.Duration(i)*time.Second),
			fmt.Sprintf(`{"text":%q}`, text)))
	}
	r.start(func(o *pipeline.Options) { o.BatchSize = 256 })
	st := r.drained(30 * time.Second)
	if st.EventsApplied != orders+notes || st.DeadLettered != 0 {
		t.Errorf("stats %+v, want %d applied", st, orders+notes)
	}
	if n := metricSum(t, r.reg, "orderwatch_batch_failures_total"); n != 0 {
		t.Errorf("%v batch failures, want none: the big batch is split before it fails", n)
	}
	r.waitAcked(10 * time.Second)
}

// waitAcked waits until the consumer has acked every message of ORDERS.
func (r *rig) waitAcked(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		pending, ackPending, err := consumersProgress(ctx, r.js, true)
		cancel()
		if err == nil {
			if pending == 0 && ackPending == 0 {
				return
			}
			err = fmt.Errorf("%d pending, %d ack pending", pending, ackPending)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("consumer not fully acked within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poisonCase is a message a producer got wrong and the dead-letter reason it must
// get.
type poisonCase struct {
	name, subject string
	data          []byte
	reason        string
}

// poisonCases: every kind of bad input we know of.
func poisonCases(now time.Time) []poisonCase {
	at := now.UTC().Format(time.RFC3339Nano)
	good := func(id string) []byte {
		return created(id, "SO-P", now, now.Add(3*time.Hour))
	}
	with := func(b []byte, old, repl string) []byte { return bytes.Replace(b, []byte(old), []byte(repl), 1) }
	note := func(id, data string) []byte { return event(id, "note.added", "SO-P", now, data) }
	nested := func(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }
	return []poisonCase{
		{"truncated json", "orders.order.created", good("p-1")[:40], features.ReasonBadJSON},
		{"trailing garbage", "orders.order.created", append(good("p-2"), " tail"...), features.ReasonBadJSON},
		{"json array", "orders.order.created", []byte("[" + string(good("p-3")) + "]"), features.ReasonBadJSON},
		{"json string", "orders.order.created", []byte(`"order.created"`), features.ReasonBadJSON},
		{"json number", "orders.order.created", []byte(`42`), features.ReasonBadJSON},
		{"json null", "orders.order.created", []byte(`null`), features.ReasonWrongSchema},
		{"empty body", "orders.order.created", nil, features.ReasonBadJSON},
		{"whitespace body", "orders.order.created", []byte(" \n\t "), features.ReasonBadJSON},
		{"byte order mark", "orders.order.created", append([]byte("\ufeff"), good("p-9")...), features.ReasonBadJSON},
		{"deeply nested", "orders.note.added", note("p-10", `{"x":`+nested(20000)+`}`), features.ReasonBadJSON},
		{"deeply nested array", "orders.note.added", []byte(nested(30000)), features.ReasonBadJSON},
		{"number overflow", "orders.order.created", with(good("p-12"), `"lines":3`, `"lines":1e400`), features.ReasonBadJSON},
		{"wrong field type", "orders.order.created", with(good("p-13"), `"lines":3`, `"lines":"three"`), features.ReasonBadJSON},
		{"raw control char in string", "orders.note.added", note("p-14", "{\"text\":\"a\x01b\"}"), features.ReasonBadJSON},
		{"unknown type", "orders.order.teleported", with(good("p-15"), `"order.created"`, `"order.teleported"`), features.ReasonUnknownType},
		{"empty type", "orders.x.y", with(good("p-16"), `"order.created"`, `""`), features.ReasonUnknownType},
		{"missing id", "orders.order.created", with(good("p-17"), `"id":"p-17",`, ``), features.ReasonMissingID},
		{"missing occurred_at", "orders.order.created", with(good("p-18"), `"occurred_at":"`+at+`",`, ``), features.ReasonMissingTime},
		{"missing order_id", "orders.pick.confirmed", event("p-19", "pick.confirmed", "", now, `{}`), features.ReasonMissingOrderID},
		{"missing warehouse", "orders.order.created", with(good("p-20"), `"warehouse":"DAL",`, ``), features.ReasonMissingField},
		{"missing ship_cutoff", "orders.order.created", event("p-21", "order.created", "SO-P", now, `{"warehouse":"DAL"}`), features.ReasonMissingField},
		{"context without warehouse", "orders.warehouse.load", event("p-22", "warehouse.load", "", now, `{"queue":3}`), features.ReasonMissingField},
		{"oversize", "orders.note.added", note("p-23", fmt.Sprintf(`{"text":%q}`, strings.Repeat("z", features.MaxEventBytes))), features.ReasonOversize},
		{"invalid utf8 in a string", "orders.note.added", note("p-24", "{\"text\":\"caf\xe9 \xff\"}"), features.ReasonInvalidUTF8},
		{"invalid utf8 outside strings", "orders.note.added", append(note("p-25", `{}`), 0xc3), features.ReasonInvalidUTF8},
		{"epoch timestamp", "orders.note.added", with(note("p-26", `{}`), at, "1970-01-01T00:00:00Z"), features.ReasonAbsurdTime},
		{"far future timestamp", "orders.note.added", with(note("p-27", `{}`), at, "2999-12-31T23:59:59Z"), features.ReasonAbsurdTime},
		{"five digit year", "orders.note.added", with(note("p-28", `{}`), at, "+10000-01-01T00:00:00Z"), features.ReasonBadJSON},
		{"month 13", "orders.note.added", with(note("p-29", `{}`), at, "2026-13-01T00:00:00Z"), features.ReasonBadJSON},
		{"absurd ship_cutoff", "orders.order.created", event("p-30", "order.created", "SO-P", now, `{"warehouse":"DAL","ship_cutoff":"0001-01-01T00:00:00Z"}`), features.ReasonAbsurdTime},
		{"schema 2", "orders.order.created", with(good("p-31"), `"schema":1`, `"schema":2`), features.ReasonWrongSchema},
		{"schema missing", "orders.order.created", with(good("p-32"), `"schema":1,`, ``), features.ReasonWrongSchema},
		{"schema as string", "orders.order.created", with(good("p-33"), `"schema":1`, `"schema":"1"`), features.ReasonBadJSON},
		{"NUL in id", "orders.order.created", with(good("p-34"), `"id":"p-34"`, `"id":"p-34\u0000"`), features.ReasonBadID},
		{"newline in order_id", "orders.order.created", with(good("p-35"), `"order_id":"SO-P"`, `"order_id":"SO-\nP"`), features.ReasonBadID},
		{"DEL in order_id", "orders.order.created", with(good("p-36"), `"order_id":"SO-P"`, `"order_id":"SO-\u007fP"`), features.ReasonBadID},
		{"id of 200 bytes", "orders.order.created", with(good("p-37"), `"id":"p-37"`, `"id":"`+strings.Repeat("7", 200)+`"`), features.ReasonBadID},
	}
}

// TestPoisonOfEveryKindNeverStopsTheStream interleaves every kind of bad input with
// good events: each bad message lands in ORDERS_DLQ with its reason, detail,
// original bytes, subject and message id; every good event around it is applied;
// no batch fails; the pipeline stays ready.
func TestPoisonOfEveryKindNeverStopsTheStream(t *testing.T) {
	h := newHarness(t, true)
	now := time.Now()
	cases := poisonCases(now)
	var good int
	for i, c := range cases {
		id := fmt.Sprintf("ok-%d", i)
		h.publish(features.Subject("order.created", fmt.Sprintf("SO-OK%d", i)), id, created(id, fmt.Sprintf("SO-OK%d", i), now, now.Add(4*time.Hour)))
		h.publish(c.subject, fmt.Sprintf("poison-%d", i), c.data)
		id = fmt.Sprintf("ok-%d-note", i)
		h.publish(features.Subject("note.added", fmt.Sprintf("SO-OK%d", i)), id, event(id, "note.added", fmt.Sprintf("SO-OK%d", i), now.Add(time.Second), `{"text":"still here"}`))
		good += 2
	}
	st := h.drained()
	if st.DeadLettered != int64(len(cases)) || st.EventsApplied != int64(good) || st.Duplicates != 0 {
		t.Errorf("stats %+v, want %d dead-lettered and %d applied", st, len(cases), good)
	}
	for i := range cases {
		if v, ok := h.order(fmt.Sprintf("SO-OK%d", i)); !ok || v.Record.State.Events != 2 {
			t.Errorf("SO-OK%d around poison %q: %d events applied, want 2", i, cases[i].name, v.Record.State.Events)
		}
	}
	if n := metricSum(t, h.reg, "orderwatch_batch_failures_total"); n != 0 {
		t.Errorf("%v batch failures: poison must be dead-lettered, never fail a batch", n)
	}

	cons, err := h.js.OrderedConsumer(context.Background(), pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(cases)+1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]jetstream.Msg{}
	for m := range batch.Messages() {
		got[m.Headers().Get(pipeline.HeaderOriginalMsgID)] = m
	}
	if len(got) != len(cases) {
		t.Errorf("ORDERS_DLQ holds %d messages, want %d", len(got), len(cases))
	}
	reasons := map[string]float64{}
	for i, c := range cases {
		reasons[c.reason]++
		m, ok := got[fmt.Sprintf("poison-%d", i)]
		if !ok {
			t.Errorf("%s: not in ORDERS_DLQ", c.name)
			continue
		}
		hd := m.Headers()
		if hd.Get(pipeline.HeaderReason) != c.reason || m.Subject() != "orderwatch.dlq."+c.reason {
			t.Errorf("%s: reason %q on %s, want %q", c.name, hd.Get(pipeline.HeaderReason), m.Subject(), c.reason)
		}
		if hd.Get(pipeline.HeaderDetail) == "" || len(hd.Get(pipeline.HeaderDetail)) > 512 {
			t.Errorf("%s: detail header of %d bytes, want a short explanation", c.name, len(hd.Get(pipeline.HeaderDetail)))
		}
		if !bytes.Equal(m.Data(), c.data) || hd.Get(pipeline.HeaderOriginalSubject) != c.subject {
			t.Errorf("%s: the original bytes or subject were not kept", c.name)
		}
	}
	for reason, n := range reasons {
		if got := metricSum(t, h.reg, "orderwatch_dlq_total", "reason", reason); got != n {
			t.Errorf("orderwatch_dlq_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
}

// TestJetStreamStoreFullReportsAndRecovers: JetStream's store is full (the
// embedded server's MaxStore, taken by another stream) when poison arrives, so its
// dead-letter publish fails: the batch is neither committed nor acked, the pipeline
// is not ready for as long as it lasts, with the reason, even while rescoring
// timers commit beside it, and orderwatch_batch_failures_total{stage="dlq_publish"}
// counts the retries. When space returns the batch goes through, each message
// counted once.
func TestJetStreamStoreFullReportsAndRecovers(t *testing.T) {
	r := newRig(t, pipeline.EmbeddedOptions{MaxStore: 4 << 20, Sync: "1s"})
	ctx := context.Background()
	// An open order whose first rescoring falls due an hour from now.
	now := time.Now()
	r.publish(features.Subject("order.created", "SO-T"), "t-1", created("t-1", "SO-T", now, now.Add(5*time.Hour)))
	r.start()
	r.drained(10 * time.Second)
	r.stop()

	filler, err := r.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	cases := poisonCases(now)[:5]
	for i, c := range cases {
		id := fmt.Sprintf("ok-%d", i)
		r.publish(features.Subject("order.created", fmt.Sprintf("SO-F%d", i)), id, created(id, fmt.Sprintf("SO-F%d", i), now, now.Add(4*time.Hour)))
		r.publish(c.subject, fmt.Sprintf("poison-%d", i), c.data)
	}
	block := make([]byte, 32<<10)
	var fullErr error
	for i := 0; fullErr == nil; i++ {
		if i > 1000 {
			t.Fatal("JetStream took 32 MB into a 4 MB store")
		}
		_, fullErr = r.js.Publish(ctx, "filler.x", block)
	}
	t.Logf("JetStream store full: %v", fullErr)

	// Restarted an hour later (by its clock): SO-T's timer is due at the first tick.
	r.start(func(o *pipeline.Options) { o.Clock = func() time.Time { return time.Now().Add(time.Hour) } })
	var failing string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		ok, why := r.p.Ready()
		switch {
		case failing == "" && !ok && strings.Contains(why, pipeline.StreamDLQ):
			failing = why
			t.Logf("not ready: %s", why)
		case failing != "" && (ok || !strings.Contains(why, pipeline.StreamDLQ)):
			t.Fatalf("ready=%v (%s) while JetStream is still full: want not ready, naming %s", ok, why, pipeline.StreamDLQ)
		}
		if failing != "" && metricSum(t, r.reg, "orderwatch_batch_failures_total", "stage", "dlq_publish") >= 3 &&
			metricSum(t, r.reg, "orderwatch_rescores_total") >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: ready=%v (%s), %v dead-letter failures, %v rescores; want not ready, 3 failures and a rescoring",
				ok, why, metricSum(t, r.reg, "orderwatch_batch_failures_total", "stage", "dlq_publish"), metricSum(t, r.reg, "orderwatch_rescores_total"))
		}
	}
	// No poison message is committed while its dead letter cannot be stored (good
	// events redelivered in a batch of their own may be), and nothing uncommitted
	// is acked: the consumer's acks, read first, never exceed the commits.
	pending, ackPending, err := consumersProgress(ctx, r.js, false)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, js: r.js, st: r.st}
	st := h.stats()
	if st.DeadLettered != 0 {
		t.Errorf("stats %+v while the dead letters cannot be stored: want none dead-lettered", st)
	}
	total := uint64(1 + 2*len(cases))
	if acked := total - pending - ackPending; acked > uint64(st.EventsApplied+st.Duplicates) {
		t.Errorf("%d messages acked (%d in the stream, %d undelivered, %d awaiting ack) while %d are committed",
			acked, total, pending, ackPending, st.EventsApplied+st.Duplicates)
	}
	if ok, why := r.p.Ready(); ok {
		t.Errorf("ready after a good event committed, while the poison still cannot be dead-lettered (%s)", why)
	}

	if err := filler.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	st = r.drained(30 * time.Second)
	if st.EventsApplied != int64(1+len(cases)) || st.DeadLettered != int64(len(cases)) {
		t.Errorf("stats %+v after the space returned, want %d applied and %d dead-lettered", st, 1+len(cases), len(cases))
	}
	waitFor(t, "ready again", func() bool { ok, _ := r.p.Ready(); return ok })
	r.waitAcked(10 * time.Second)
	if info, err := streamInfo(r.js, pipeline.StreamDLQ); err != nil || info.State.Msgs != uint64(len(cases)) {
		t.Errorf("ORDERS_DLQ: %v, %v; want %d messages", info, err, len(cases))
	}
}

// metricSum adds up the series of a counter or gauge whose labels match; a vector
// with no series yet is 0.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// consumersProgress sums what the pipeline's consumers of ORDERS have not yet
// delivered and not yet had acked: with follow, the context followers too (each
// reads the context subjects again); without, each message is counted once.
func consumersProgress(ctx context.Context, js jetstream.JetStream, follow bool) (pending, ackPending uint64, err error) {
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		return 0, 0, err
	}
	lister := s.ListConsumers(ctx)
	n := 0
	for ci := range lister.Info() {
		if ci.Config.Durable == "" || (!follow && strings.Contains(ci.Name, "-follow-")) {
			continue
		}
		n++
		pending += ci.NumPending
		ackPending += uint64(ci.NumAckPending)
	}
	if err := lister.Err(); err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, errors.New("no consumer on ORDERS yet")
	}
	return pending, ackPending, nil
}
