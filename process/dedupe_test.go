package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// newTestProcessor opens a Processor with the default policy, no model and a
// dead-letter function that only counts, on a Badger store in a temp dir.
func newTestProcessor(t *testing.T, so store.Options, po Options) (*Processor, *store.Store, *int) {
	t.Helper()
	so.Dir = t.TempDir()
	st, err := store.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	var dead int
	po.Store, po.Policy = st, actions.NewLive(policy)
	po.DeadLetter = func(context.Context, *Message, string, string) error { dead++; return nil }
	p, err := New(po)
	if err != nil {
		t.Fatal(err)
	}
	return p, st, &dead
}

// createdMsg is message seq of ORDERS: order.created of order at when, its cutoff
// 8 h later.
func createdMsg(seq int, order string, when time.Time) *Message {
	return &Message{Seq: uint64(seq), Subject: storedSubject("order.created", order), Data: []byte(fmt.Sprintf(
		`{"id":"e-%d","type":"order.created","schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-1","lines":1,"units":1,"value":10}}`,
		seq, when.Format(time.RFC3339), order, when.Add(8*time.Hour).Format(time.RFC3339)))}
}

// TestRedeliveriesAreNotCounted: a message delivered again after its batch
// committed (the ack was lost) changes nothing, whether it was applied, a
// duplicate of an applied event or a dead letter; each message counts once.
func TestRedeliveriesAreNotCounted(t *testing.T) {
	p, st, dead := newTestProcessor(t, store.Options{}, Options{})
	applied := createdMsg(1, "SO-1", time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC))
	duplicate := &Message{Seq: 2, Subject: applied.Subject, Data: applied.Data}
	poison := &Message{Seq: 3, Subject: "orders.order.created", Data: []byte("{not json")}
	want := Result{Applied: 1, Duplicates: 1, DeadLettered: 1}
	res, err := p.Process(context.Background(), []*Message{applied, duplicate, poison})
	if err != nil || res != want {
		t.Fatalf("first delivery: %+v, %v; want %+v", res, err, want)
	}
	for round := range 2 {
		res, err := p.Process(context.Background(), []*Message{poison, duplicate, applied})
		if err != nil || res != (Result{}) {
			t.Fatalf("redelivery %d: %+v, %v; want nothing counted", round+1, res, err)
		}
	}
	stats, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.EventsApplied != 1 || stats.Duplicates != 1 || stats.DeadLettered != 1 || *dead != 1 {
		t.Errorf("stats %+v, %d dead-letter publishes; want 1 applied, 1 duplicate, 1 dead letter published once", stats, *dead)
	}
}

// TestTimerFanOutIsCommittedInParts: an event that moves the watermark a day
// ahead makes every checkpoint of every open order due at once, more than one
// Badger commit takes; the timers go first, in commits of their own, then the
// event, and no row is lost.
func TestTimerFanOutIsCommittedInParts(t *testing.T) {
	timers := 0
	p, _, _ := newTestProcessor(t, store.Options{MemTableSize: 2 << 20}, Options{EventTime: true,
		OnRow: func(r *Row) {
			if r.Trigger == TriggerTimer {
				timers++
			}
		}})
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	const orders = 3000
	var batch []*Message
	for i := range orders {
		batch = append(batch, createdMsg(i+1, fmt.Sprintf("SO-%d", i), at))
		if len(batch) == 100 {
			if _, err := p.Process(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	late := createdMsg(orders+1, "SO-late", at.Add(48*time.Hour))
	res, err := p.Process(context.Background(), []*Message{late})
	if err != nil {
		t.Fatalf("the event that makes every timer due: %v", err)
	}
	if res.Applied != 1 || !res.Timers {
		t.Errorf("result %+v, want the event applied after timer commits", res)
	}
	if want := orders * len(checkpoints); timers != want {
		t.Errorf("%d timer rows, want %d: every checkpoint of every order", timers, want)
	}
}
