package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestEnsureStreamsReplicatesOnACluster: on a three-node JetStream cluster the
// streams are created with the replicas asked for, and a stream that exists with
// fewer is left alone with a warning that says how to raise them. A single server
// refuses three replicas, and the error names the stream and the replicas.
func TestEnsureStreamsReplicatesOnACluster(t *testing.T) {
	js := natstest.JetStream(t, natstest.URLs(natstest.Cluster(t, 3)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An operator created ACTIONS before, with one replica.
	actions := pipeline.StreamConfigs(0)[2]
	if actions.Name != pipeline.StreamActions {
		t.Fatalf("StreamConfigs(0)[2] is %s", actions.Name)
	}
	actions.Duplicates = pipeline.DuplicateWindowActions
	if _, err := js.CreateStream(ctx, actions); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	_, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Replicas: 3, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{pipeline.StreamOrders: 3, pipeline.StreamDLQ: 3, pipeline.StreamActions: 1} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != want {
			t.Errorf("%s: %d replicas, want %d", name, info.Config.Replicas, want)
		}
	}
	for _, w := range []string{"stream=ACTIONS", "replicas=1", "asked=3", `"nats stream edit ACTIONS --replicas 3"`} {
		if !strings.Contains(logged.String(), w) {
			t.Errorf("log %q lacks %s", logged.String(), w)
		}
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want 1 (for ACTIONS): %s", n, logged.String())
	}

	_, err = pipeline.EnsureStreams(ctx, natstest.JetStream(t, startSingle(t)), pipeline.StreamOptions{Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "create stream ORDERS") || !strings.Contains(err.Error(), "3 replicas") {
		t.Errorf("R3 on a single server: error %v, want one naming ORDERS and 3 replicas", err)
	}
}

func startSingle(t *testing.T) string {
	t.Helper()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:-1", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// TestEnsureStreamsSaysWhenJetStreamIsOff: a server without JetStream is named as
// such, with what to do, not as a bare "no responders".
func TestEnsureStreamsSaysWhenJetStreamIsOff(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, func(o *server.Options) { o.JetStream = false }).ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{})
	if err == nil || !strings.Contains(err.Error(), "has no JetStream for this user's account") {
		t.Errorf("EnsureStreams on a server without JetStream: %v, want it named", err)
	}
}

// TestEnsureStreamsRefusesAStreamWithoutOurSubjects: an ORDERS an operator created
// on other subjects would take none of the events published to orders.<type>;
// EnsureStreams refuses it and says how to fix it, and accepts one that has
// orderwatch's subjects and transform among others.
func TestEnsureStreamsRefusesAStreamWithoutOurSubjects(t *testing.T) {
	js := natstest.JetStream(t, startSingle(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamOrders, Subjects: []string{"erp.orders.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{})
	if !errors.Is(err, pipeline.ErrNotPartitioned) || !strings.Contains(err.Error(), "subjects orders.*.*,orders.*.*.* and the transform") {
		t.Fatalf("EnsureStreams with ORDERS on erp.orders.>: %v, want a refusal that says which subjects and transform to give it", err)
	}
	cfg := jetstream.StreamConfig{Name: pipeline.StreamOrders, Subjects: []string{"erp.orders.>", "orders.*.*.*"}, SubjectTransform: pipeline.OrdersTransform(16)}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{})
	if err == nil || !strings.Contains(err.Error(), "without orders.*.*") || !strings.Contains(err.Error(), "--subjects erp.orders.>,orders.*.*.*,orders.*.*") {
		t.Fatalf("EnsureStreams with ORDERS without orders.*.*: %v, want a refusal that says how to add it", err)
	}
	cfg.Subjects = append(cfg.Subjects, "orders.*.*")
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if n, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil || n != 16 {
		t.Errorf("EnsureStreams with ORDERS on erp.orders.> and orderwatch's subjects: %d partitions, %v", n, err)
	}
}

// TestEnsureStreamsSetsRetention: ORDERS and ACTIONS are created with the age
// limit asked for (30 days when none is), so the events that Badger keeps a copy
// of do not also pile up in JetStream for ever; ORDERS_DLQ keeps its messages
// until someone has looked. An ORDERS that exists with no limit at all is left as
// it is, with a warning that says how to give it one; one with any limit is not
// warned about.
func TestEnsureStreamsSetsRetention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	maxAges := func(js jetstream.JetStream) map[string]time.Duration {
		t.Helper()
		out := map[string]time.Duration{}
		for _, name := range []string{pipeline.StreamOrders, pipeline.StreamDLQ, pipeline.StreamActions} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = s.CachedInfo().Config.MaxAge
		}
		return out
	}
	for _, c := range []struct {
		asked, want time.Duration
	}{{0, 30 * 24 * time.Hour}, {48 * time.Hour, 48 * time.Hour}} {
		js := natstest.JetStream(t, startSingle(t))
		if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{OrdersMaxAge: c.asked}); err != nil {
			t.Fatal(err)
		}
		got := maxAges(js)
		want := map[string]time.Duration{pipeline.StreamOrders: c.want, pipeline.StreamActions: c.want, pipeline.StreamDLQ: 0}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("OrdersMaxAge %v: %s created with MaxAge %v, want %v", c.asked, name, got[name], w)
			}
		}
	}

	for _, c := range []struct {
		name string
		cfg  jetstream.StreamConfig
		warn bool
	}{
		{"no limit", jetstream.StreamConfig{}, true},
		{"max bytes", jetstream.StreamConfig{MaxBytes: 1 << 30}, false},
		{"max msgs", jetstream.StreamConfig{MaxMsgs: 1e6}, false},
		{"max age", jetstream.StreamConfig{MaxAge: 7 * 24 * time.Hour}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			js := natstest.JetStream(t, startSingle(t))
			cfg := c.cfg
			orders := pipeline.StreamConfigs(0)[0]
			cfg.Name, cfg.Subjects, cfg.SubjectTransform = orders.Name, orders.Subjects, orders.SubjectTransform
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{OrdersMaxAge: 72 * time.Hour, Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
				t.Fatal(err)
			}
			if got := maxAges(js)[pipeline.StreamOrders]; got != c.cfg.MaxAge {
				t.Errorf("existing ORDERS edited: MaxAge %v, want %v as it was", got, c.cfg.MaxAge)
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), "stream=ORDERS")
			if warned != c.warn {
				t.Errorf("warned %v, want %v: %s", warned, c.warn, logged.String())
			}
			if c.warn && !strings.Contains(logged.String(), `"nats stream edit ORDERS --max-age=72h"`) {
				t.Errorf("the warning does not say how to set the limit: %s", logged.String())
			}
		})
	}
}

// TestOrdersPartitionsAsFeaturesSays: on the real server, ORDERS as EnsureStreams
// creates it stores an order event published to orders.<type>.<order_token> as
// orders.<p>.<type>.<order_token>, p = features.Partition(token, n), for
// thousands of random ids (escaped ones too) and two partition counts; a
// context event on orders.<type> is stored unchanged; the stored form
// orders.<p>.<type>.<token>, the old orders.x and 4-token subjects other than
// orders.<type>.<token> are taken by no stream; a consumer filtered on
// features.PartitionSubject(p) sees exactly partition p.
func TestOrdersPartitionsAsFeaturesSays(t *testing.T) {
	for _, n := range []int{0, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			js := natstest.JetStream(t, startSingle(t))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			got, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: n})
			want := n
			if n == 0 {
				want = pipeline.DefaultPartitions
			}
			if err != nil || got != want {
				t.Fatalf("EnsureStreams(Partitions %d) = %d, %v; want %d", n, got, err, want)
			}
			r := rand.New(rand.NewPCG(uint64(n), 9))
			const ids = 2500
			tokens := make([]string, ids)
			perPartition := make([]uint64, want)
			escaped := 0
			for i := range tokens {
				id := randomOrderID(r)
				tokens[i] = features.OrderToken(id)
				if strings.HasPrefix(tokens[i], "~") {
					escaped++
				}
				perPartition[features.Partition(tokens[i], want)]++
				if _, err := js.PublishAsync(features.Subject(features.TypeNoteAdded, id), []byte("{}")); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishes not acked within 2 minutes")
			}
			if escaped < ids/10 {
				t.Fatalf("only %d of %d ids escaped: the test draws too few unsafe ids", escaped, ids)
			}
			if _, err := js.Publish(ctx, features.Subject(features.TypeWarehouseLoad, ""), []byte("{}")); err != nil {
				t.Fatal(err)
			}
			for _, subj := range []string{"orders.3.note.added.SO-1", "orders.x", "orders.a.b.c.d", "orders.note.added.SO-1.x"} {
				if ack, err := js.Publish(ctx, subj, []byte("{}")); err == nil {
					t.Errorf("publish to %s stored as %d in %s, want no stream to take it", subj, ack.Sequence, ack.Stream)
				}
			}
			s, err := js.Stream(ctx, pipeline.StreamOrders)
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= ids+1; seq++ {
				m, err := s.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				p, typ, tok, ok := features.ParseStoredSubject(m.Subject)
				if seq == ids+1 {
					if m.Subject != "orders.warehouse.load" || !ok || p != -1 || typ != features.TypeWarehouseLoad {
						t.Errorf("context event stored as %q (%d, %q, %v), want orders.warehouse.load unchanged", m.Subject, p, typ, ok)
					}
					continue
				}
				want := features.Partition(tokens[seq-1], want)
				if !ok || p != want || typ != features.TypeNoteAdded || tok != tokens[seq-1] {
					t.Fatalf("message %d stored as %q, parsed (%d, %q, %q, %v); want partition %d of token %q",
						seq, m.Subject, p, typ, tok, ok, want, tokens[seq-1])
				}
			}
			for p := range want {
				c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: fmt.Sprint("p", p), FilterSubject: features.PartitionSubject(p)})
				if err != nil {
					t.Fatalf("consumer on %s: %v", features.PartitionSubject(p), err)
				}
				if pending := c.CachedInfo().NumPending; pending != perPartition[p] {
					t.Errorf("consumer on %s: %d pending, want %d", features.PartitionSubject(p), pending, perPartition[p])
				}
			}
			c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "context", FilterSubject: features.ContextSubject})
			if err != nil || c.CachedInfo().NumPending != 1 {
				t.Errorf("consumer on %s: %v, %v; want the one context event", features.ContextSubject, c, err)
			}
		})
	}
}

// randomOrderID draws an order id of 1..128 bytes: safe ones, and a third with
// bytes a subject token cannot hold ('.', '*', '>', spaces, UTF-8, '~' first).
func randomOrderID(r *rand.Rand) string {
	const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:"
	const unsafe = ".*> ~/é\t$"
	n := 1 + r.IntN(12)
	if r.IntN(5) == 0 {
		n = 1 + r.IntN(128)
	}
	var b strings.Builder
	bad := r.IntN(3) == 0
	for b.Len() < n {
		if bad && r.IntN(3) == 0 {
			b.WriteByte(unsafe[r.IntN(len(unsafe))])
		} else {
			b.WriteByte(safe[r.IntN(len(safe))])
		}
	}
	return b.String()
}

// TestEnsureStreamsReadsPartitionsBack: the partitions of an existing ORDERS are
// read back from its transform; asking for the same or for none gives them,
// asking for another number is refused with how to change it; an ORDERS made
// by an orderwatch before partitions (orders.>, no transform) is refused with
// the steps to move on, and left as it is.
func TestEnsureStreamsReadsPartitionsBack(t *testing.T) {
	js := natstest.JetStream(t, startSingle(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: 8}); err != nil || n != 8 {
		t.Fatalf("create with 8 partitions: %d, %v", n, err)
	}
	for _, asked := range []int{0, 8} {
		if n, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: asked}); err != nil || n != 8 {
			t.Errorf("existing ORDERS of 8, %d asked: %d, %v; want 8", asked, n, err)
		}
	}
	_, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: 16})
	for _, w := range []string{"has 8 partitions, 16 asked", "--partitions 8", "nats stream rm ORDERS", "nats kv rm orderwatch_<group>"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("existing ORDERS of 8, 16 asked: %v; want an error saying %q", err, w)
		}
	}
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: pipeline.MaxPartitions + 1}); err == nil {
		t.Errorf("%d partitions accepted", pipeline.MaxPartitions+1)
	}

	old := natstest.JetStream(t, startSingle(t))
	before := jetstream.StreamConfig{Name: pipeline.StreamOrders, Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}
	if _, err := old.CreateStream(ctx, before); err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.EnsureStreams(ctx, old, pipeline.StreamOptions{})
	if !errors.Is(err, pipeline.ErrNotPartitioned) {
		t.Fatalf("ORDERS on orders.> without a transform: %v, want ErrNotPartitioned", err)
	}
	for _, w := range []string{"before partitions", "nats stream rm ORDERS", "orders.<type>.<order_id>"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("ORDERS on orders.>: %v; want the error to say %q", err, w)
		}
	}
	s, err := old.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.SubjectTransform != nil || !slices.Equal(cfg.Subjects, before.Subjects) {
		t.Errorf("the old ORDERS was changed: %v, %+v", cfg.Subjects, cfg.SubjectTransform)
	}
}

func TestStreamPartitions(t *testing.T) {
	for _, c := range []struct {
		tr   *jetstream.SubjectTransformConfig
		want int
	}{
		{pipeline.OrdersTransform(16), 16},
		{pipeline.OrdersTransform(1), 1},
		{nil, 0},
		{&jetstream.SubjectTransformConfig{Source: "orders.*.*.*", Destination: "orders.{{partition(16,1)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"}, 0},
		{&jetstream.SubjectTransformConfig{Source: "orders.>", Destination: "orders.{{partition(16,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"}, 0},
		{&jetstream.SubjectTransformConfig{Source: "orders.*.*.*", Destination: "orders.{{partition(x,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"}, 0},
		{&jetstream.SubjectTransformConfig{Source: "orders.*.*.*", Destination: "orders.{{partition(0,3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"}, 0},
	} {
		n, err := pipeline.StreamPartitions(jetstream.StreamConfig{Name: "ORDERS", SubjectTransform: c.tr})
		if n != c.want || (err == nil) != (c.want > 0) || err != nil && !errors.Is(err, pipeline.ErrNotPartitioned) {
			t.Errorf("StreamPartitions(%+v) = %d, %v; want %d", c.tr, n, err, c.want)
		}
	}
}

// TestActionsRemembersIdempotencyKeysADay: ACTIONS is created with a 24 h
// Nats-Msg-Id window, so a moved partition that decides again hours later
// executes nothing twice; an existing ACTIONS with a shorter window is left as
// it is, with a warning that says how to raise it.
func TestActionsRemembersIdempotencyKeysADay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := natstest.JetStream(t, startSingle(t))
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, pipeline.StreamActions)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.CachedInfo().Config.Duplicates; d != 24*time.Hour {
		t.Errorf("ACTIONS created with a duplicate window of %v, want 24h", d)
	}

	js = natstest.JetStream(t, startSingle(t))
	cfg := pipeline.StreamConfigs(0)[2]
	cfg.Duplicates = 2 * time.Minute
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Logger: slog.New(slog.NewTextHandler(&logged, nil))}); err != nil {
		t.Fatal(err)
	}
	if s, err = js.Stream(ctx, pipeline.StreamActions); err != nil || s.CachedInfo().Config.Duplicates != 2*time.Minute {
		t.Errorf("existing ACTIONS edited: %v", err)
	}
	if !strings.Contains(logged.String(), "stream=ACTIONS") || !strings.Contains(logged.String(), `"nats stream edit ACTIONS --dupe-window 24h"`) {
		t.Errorf("no warning that says how to raise the window: %s", logged.String())
	}
}

// TestOrdersTakesAConsumerPerPartition: nats-server allows 1,000 consumers per
// stream unless the stream says otherwise, and a group of 1,024 partitions needs
// one per partition and more while partitions move: `run --partitions 1024`
// failed on "maximum consumers limit reached" after 998 partitions. ORDERS is
// created (or raised) to take them, and 1,100 consumers can be made on it.
func TestOrdersTakesAConsumerPerPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	js := natstest.JetStream(t, startSingle(t))
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: pipeline.MaxPartitions}); err != nil {
		t.Fatal(err)
	}
	for i := range 1100 {
		name := fmt.Sprintf("c%04d", i)
		if _, err := js.CreateOrUpdateConsumer(ctx, pipeline.StreamOrders, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy,
			InactiveThreshold: time.Minute}); err != nil {
			t.Fatalf("consumer %d of ORDERS with %d partitions: %v", i+1, pipeline.MaxPartitions, err)
		}
	}

	// An ORDERS made with the server's default limit is raised.
	js = natstest.JetStream(t, startSingle(t))
	cfg := pipeline.StreamConfigs(pipeline.MaxPartitions)[0]
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().Config.MaxConsumers; n < 2*pipeline.MaxPartitions {
		t.Errorf("existing ORDERS of %d partitions allows %d consumers after EnsureStreams", pipeline.MaxPartitions, n)
	}
}
