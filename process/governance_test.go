package process

import (
	"context"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// TestRestoredMemoryOfAnOrderNotYetSeen: the previous owner of a partition may
// write an order's governance and die before it acks the event: the next owner
// rebuilds no record of the order, restores its governance, and reads the
// event again. Its record then starts with the rules' episodes as they were,
// not afresh (which would decide the same approval a second time). Before,
// the restore failed on the missing record and the partition was never taken.
func TestRestoredMemoryOfAnOrderNotYetSeen(t *testing.T) {
	p, st, _ := newTestProcessor(t, store.Options{}, Options{Replicated: true})
	mem := actions.Memory{"credit-hold-near-cutoff": {Episode: 2, Active: true}}
	n, err := p.RestoreGovernance([]actions.OrderGovernance{{Order: "SO-9", Memory: mem,
		Cooldowns: map[string]time.Time{"flag_finance": time.Date(2026, 5, 18, 8, 0, 0, 0, time.UTC)}}})
	if err != nil || n != 1 {
		t.Fatalf("restore: %d, %v", n, err)
	}
	if _, err := p.Process(context.Background(), []*Message{createdMsg(1, "SO-9", time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC))}); err != nil {
		t.Fatal(err)
	}
	got, open, found, err := ReadMemory(st, "SO-9")
	if err != nil || !found || !open {
		t.Fatalf("record of SO-9: found %v open %v, %v", found, open, err)
	}
	if r := got["credit-hold-near-cutoff"]; r.Episode != 2 {
		t.Errorf("SO-9's memory after its first event here: %+v, want episode 2 of credit-hold-near-cutoff as restored", got)
	}
	g, err := st.Governance("SO-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Cooldowns["flag_finance"]; !ok {
		t.Errorf("cooldown of SO-9 not restored: %+v", g.Cooldowns)
	}
}

// TestDamagedGovernanceIsLeftOut: a value in the state bucket that names a
// decision of another order (damaged, or written by hand) is left out and
// counted; the other orders of the partition are restored, and the takeover
// goes on. Before, the restore failed and the partition was never taken.
func TestDamagedGovernanceIsLeftOut(t *testing.T) {
	p, st, _ := newTestProcessor(t, store.Options{}, Options{Replicated: true})
	at := time.Date(2026, 5, 18, 8, 0, 0, 0, time.UTC)
	govs := []actions.OrderGovernance{
		{Order: "SO-1", Cooldowns: map[string]time.Time{"flag_finance": at}},
		{Order: "SO-2", InFlight: []actions.InFlight{{Decision: []byte(`{"id":"d-1","order_id":"SO-OTHER"}`)}}},
		{Order: "SO-3", Cooldowns: map[string]time.Time{"flag_finance": at}},
	}
	n, err := p.RestoreGovernance(govs)
	if err != nil || n != 2 {
		t.Fatalf("restore: %d restored, %v; want 2 and no error", n, err)
	}
	for _, id := range []string{"SO-1", "SO-3"} {
		if g, err := st.Governance(id); err != nil || g.Cooldowns["flag_finance"].IsZero() {
			t.Errorf("%s not restored: %+v, %v", id, g, err)
		}
	}
	if g, _ := st.Governance("SO-2"); len(g.InFlight) != 0 {
		t.Errorf("the damaged governance of SO-2 was restored: %+v", g)
	}
}
