package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// TestDeadLetterNearMaxPayload: a message of nearly the server's max_payload
// is oversize; its copy with the dead-letter headers no longer fits in one NATS
// message. It lands in ORDERS_DLQ anyway, truncated, with its original size and
// sha256, and the events batched with it are applied.
func TestDeadLetterNearMaxPayload(t *testing.T) {
	const maxPayload = 128 << 10
	ns := natstest.Start(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	publish := func(subject, id string, data []byte) {
		t.Helper()
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}); err != nil {
			t.Fatalf("publish %s (%d bytes): %v", id, len(data), err)
		}
	}
	// The header the producer sends (Nats-Msg-Id: big-1) takes ~40 bytes.
	big := event("big-1", "note.added", "SO-G0", now, fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", maxPayload)))[:maxPayload-64]
	const good = 10
	for i := range good {
		id := fmt.Sprintf("g-%d", i)
		publish(features.Subject("order.created", fmt.Sprintf("SO-G%d", i)), id, created(id, fmt.Sprintf("SO-G%d", i), now, now.Add(4*time.Hour)))
		if i == good/2 {
			publish(features.Subject("note.added", "SO-G0"), "big-1", big)
		}
	}

	reg := prometheus.NewRegistry()
	p, err := pipeline.New(pipeline.Options{JetStream: js, Store: st, Policy: actions.NewLive(policy), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	h := &harness{t: t, js: js, nc: js.Conn(), st: st, reg: reg}
	var s store.Stats
	deadline := time.Now().Add(20 * time.Second)
	for {
		s = h.stats()
		if s.EventsApplied+s.DeadLettered == good+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s.EventsApplied != good || s.DeadLettered != 1 {
		ok, why := p.Ready()
		t.Fatalf("stats %+v, want %d applied and 1 dead-lettered (ready %v %s)", s, good, ok, why)
	}
	cons, err := js.OrderedConsumer(ctx, pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	hd := m.Headers()
	sum := sha256.Sum256(big)
	if hd.Get(pipeline.HeaderReason) != features.ReasonOversize || hd.Get(pipeline.HeaderOriginalMsgID) != "big-1" {
		t.Errorf("dead letter reason %q, original id %q; want oversize, big-1", hd.Get(pipeline.HeaderReason), hd.Get(pipeline.HeaderOriginalMsgID))
	}
	if hd.Get(pipeline.HeaderTruncated) != "true" || hd.Get(pipeline.HeaderOriginalSize) != strconv.Itoa(len(big)) ||
		hd.Get(pipeline.HeaderOriginalSHA256) != hex.EncodeToString(sum[:]) {
		t.Errorf("truncated %q, size %q, sha256 %q; want true, %d, %x", hd.Get(pipeline.HeaderTruncated),
			hd.Get(pipeline.HeaderOriginalSize), hd.Get(pipeline.HeaderOriginalSHA256), len(big), sum)
	}
	if n := len(m.Data()); n == 0 || n >= len(big) || string(m.Data()) != string(big[:n]) {
		t.Errorf("dead letter body of %d bytes, want a prefix of the %d original bytes", n, len(big))
	}
}
