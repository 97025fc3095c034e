package process

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// storedSubject is the subject ORDERS stores an event of order under, with 16
// partitions: orders.<p>.<type>.<token>.
func storedSubject(typ, order string) string {
	tok := features.OrderToken(order)
	return fmt.Sprintf("orders.%d.%s.%s", features.Partition(tok, 16), typ, tok)
}

// TestSubjectIsCheckedAtDecode: an event whose subject does not agree with it is
// dead-lettered with the reason of features.CheckSubject; an order event on
// orders.<type> (no order in the subject, so in no partition) is unpartitioned;
// an event that fails to decode keeps its decode reason; a replayed line (no
// subject) and agreeing subjects are applied.
func TestSubjectIsCheckedAtDecode(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[uint64]string{}
	p, err := New(Options{Store: st, Policy: actions.NewLive(policy),
		DeadLetter: func(_ context.Context, m *Message, reason, detail string) error {
			if detail == "" {
				t.Errorf("message %d dead-lettered %s without a detail", m.Seq, reason)
			}
			reasons[m.Seq] = reason
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	note := func(id, order string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"type":"note.added","schema":1,"occurred_at":%q,"order_id":%q,"data":{"text":"hi"}}`,
			id, at.Format(time.RFC3339), order)
	}
	load := func(id string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"type":"warehouse.load","schema":1,"occurred_at":%q,"data":{"warehouse":"DAL","queue":3,"capacity":10}}`,
			id, at.Format(time.RFC3339))
	}
	msgs := []*Message{
		createdMsg(1, "SO-1", at),
		{Seq: 2, Subject: storedSubject("note.added", "SO-1"), Data: note("n-2", "SO-1")},
		{Seq: 3, Subject: "orders.note.added", Data: note("n-3", "SO-1")},
		{Seq: 4, Subject: storedSubject("note.added", "SO-2"), Data: note("n-4", "SO-1")},
		{Seq: 5, Subject: storedSubject("pick.confirmed", "SO-1"), Data: note("n-5", "SO-1")},
		{Seq: 6, Subject: "orders.warehouse.load", Data: load("w-6")},
		{Seq: 7, Subject: storedSubject("warehouse.load", "DAL"), Data: load("w-7")},
		{Seq: 8, Subject: "orders.carrier.performance", Data: load("w-8")},
		{Seq: 9, Subject: "orders.x", Data: note("n-9", "SO-1")},
		{Seq: 10, Subject: "", Data: note("n-10", "SO-1")},
		{Seq: 11, Subject: storedSubject("note.added", "SO 1/2"), Data: note("n-11", "SO 1/2")},
		{Seq: 12, Subject: "orders.3.note.added.SO 1/2", Data: note("n-12", "SO 1/2")},
		{Seq: 13, Subject: "orders.note.added", Data: []byte("{not json")},
		{Seq: 14, Subject: storedSubject("note.added", "SO-1"), Data: note("", "SO-1")},
	}
	res, err := p.Process(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		3:  features.ReasonUnpartitioned,
		4:  features.ReasonSubjectMismatch,
		5:  features.ReasonSubjectMismatch,
		7:  features.ReasonSubjectMismatch,
		8:  features.ReasonSubjectMismatch,
		9:  features.ReasonSubjectMismatch,
		12: features.ReasonSubjectMismatch,
		13: features.ReasonBadJSON,
		14: features.ReasonMissingID,
	}
	for seq, r := range want {
		if reasons[seq] != r {
			t.Errorf("message %d: dead-lettered %q, want %q", seq, reasons[seq], r)
		}
	}
	if len(reasons) != len(want) || res.DeadLettered != len(want) || res.Applied != len(msgs)-len(want) {
		t.Errorf("result %+v, dead letters %v; want %d applied (1, 2, 6, 10, 11) and %d dead letters", res, reasons, len(msgs)-len(want), len(want))
	}
}

// subjectOf is the subject ORDERS stores an encoded event under (16
// partitions), or orders.fuzz for bytes that do not decode.
func subjectOf(data []byte) string {
	var ev features.Event
	switch {
	case features.Decode(data, &ev) != nil:
		return "orders.fuzz"
	case features.IsContext(ev.Type):
		return features.Subject(ev.Type, "")
	}
	return storedSubject(ev.Type, ev.OrderID)
}
