package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
)

// TestPoisonRecordIsDeadLetteredAndTheRestApplied: a stored order record that
// does not decode (damaged, or written by a newer orderwatch) makes the event of
// its order impossible to apply. That event, and only it, is dead-lettered with
// the reason poison and the error as detail; the events batched with it are
// applied, every message is counted once and the pipeline stays ready.
func TestPoisonRecordIsDeadLetteredAndTheRestApplied(t *testing.T) {
	r := newRig(t, pipeline.EmbeddedOptions{Sync: "1s"})
	r.start(func(o *pipeline.Options) { o.BatchSize = 64 })
	// The damaged record of SO-BAD, written under the running pipeline.
	b := r.st.NewBatch()
	if err := b.PutOrder("SO-BAD", []byte{0x7f, 1, 2, 3}, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	const good = 40
	for i := range good {
		id := fmt.Sprintf("g-%d", i)
		r.publish(features.Subject("order.created", fmt.Sprintf("SO-G%d", i)), id, created(id, fmt.Sprintf("SO-G%d", i), now, now.Add(4*time.Hour)))
		if i == good/2 {
			r.publish(features.Subject("note.added", "SO-BAD"), "bad-1", event("bad-1", "note.added", "SO-BAD", now, `{"text":"hello"}`))
		}
	}
	st := r.drained(30 * time.Second)
	if st.EventsApplied != good || st.DeadLettered != 1 || st.Duplicates != 0 {
		t.Errorf("stats %+v, want %d applied and the poison dead-lettered", st, good)
	}
	if ok, why := r.p.Ready(); !ok {
		t.Errorf("not ready after the poison was isolated: %s", why)
	}
	if n := metricSum(t, r.reg, "orderwatch_dlq_total", "reason", process.ReasonPoison); n != 1 {
		t.Errorf("orderwatch_dlq_total{reason=poison} = %v, want 1", n)
	}
	cons, err := r.js.OrderedConsumer(context.Background(), pipeline.StreamDLQ, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter in %s: %v", pipeline.StreamDLQ, err)
	}
	h := m.Headers()
	if h.Get(pipeline.HeaderReason) != process.ReasonPoison || h.Get(pipeline.HeaderOriginalMsgID) != "bad-1" || h.Get(pipeline.HeaderDetail) == "" {
		t.Errorf("dead letter %s with reason %q, original id %q, detail %q; want bad-1 as poison with the error",
			m.Subject(), h.Get(pipeline.HeaderReason), h.Get(pipeline.HeaderOriginalMsgID), h.Get(pipeline.HeaderDetail))
	}
	r.waitAcked(10 * time.Second)
}
