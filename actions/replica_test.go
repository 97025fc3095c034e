package actions_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/store"
)

// TestLoadSkipsGovernanceUnderAnotherOrdersKey: a value of the state bucket
// under order A's key that carries order B's governance (written by hand, or
// damaged) is not restored, onto B or anyone: Load of A's partition skips it,
// counts it (orderwatch_governance_load_skipped_total{reason="foreign_key"})
// and returns the partition's other orders, B's own value among them; a value
// that is no governance at all is skipped and counted as unreadable.
func TestLoadSkipsGovernanceUnderAnotherOrdersKey(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	kv, err := cluster.StateBucket(ctx, js, "replica-test", 1)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, err := actions.ParsePolicy([]byte("version: v1\nrules:\n- {id: r, action: notify_customer_service, mode: auto, cooldown: 6h, when: {risk: {gte: 0.7}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	const parts = 4
	partOf := func(order string) int { return features.Partition(features.OrderToken(order), parts) }
	reg := prometheus.NewRegistry()
	r, err := actions.NewReplica(actions.ReplicaOptions{KV: kv, JetStream: js, Store: st, Policy: actions.NewLive(policy),
		Partition:  partOf,
		Memory:     func(string) (actions.Memory, bool, bool, error) { return nil, false, false, nil },
		Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	// Three orders of one partition: A, B and C.
	var same []string
	for i := 0; len(same) < 3 && i < 1000; i++ {
		id := "SO-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if len(same) == 0 || partOf(id) == partOf(same[0]) {
			same = append(same, id)
		}
	}
	if len(same) < 3 {
		t.Fatal("no three orders of one partition among the candidates")
	}
	part := partOf(same[0])
	a, b, c := same[0], same[1], same[2]
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	put := func(key string, g actions.OrderGovernance) {
		t.Helper()
		v, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	put(actions.GovernanceKey(part, a), actions.OrderGovernance{Order: b, Cooldowns: map[string]time.Time{"notify_customer_service": at.Add(time.Hour)}})
	put(actions.GovernanceKey(part, b), actions.OrderGovernance{Order: b, Cooldowns: map[string]time.Time{"notify_customer_service": at}})
	put(actions.GovernanceKey(part, c), actions.OrderGovernance{Order: c, Cooldowns: map[string]time.Time{"notify_customer_service": at}})
	if _, err := kv.Put(ctx, actions.GovernanceKey(part, "SO-broken"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}

	got, err := r.Load(ctx, part)
	if err != nil {
		t.Fatal(err)
	}
	var orders []string
	for _, g := range got {
		orders = append(orders, g.Order)
		if want := at; !g.Cooldowns["notify_customer_service"].Equal(want) {
			t.Errorf("order %s restored with cooldown %v, want its own value's %v (not the one under %s's key)",
				g.Order, g.Cooldowns["notify_customer_service"], want, a)
		}
	}
	slices.Sort(orders)
	want := []string{b, c}
	slices.Sort(want)
	if !slices.Equal(orders, want) {
		t.Fatalf("Load of partition %d returned the governance of %v, want %v: the value under %s's key names %s and must be skipped",
			part, orders, want, a, b)
	}
	if n := gathered(t, reg, "orderwatch_governance_restored_total", ""); n != 2 {
		t.Errorf("orderwatch_governance_restored_total = %v, want 2", n)
	}
	for reason, want := range map[string]float64{"foreign_key": 1, "unreadable": 1} {
		if n := gathered(t, reg, "orderwatch_governance_load_skipped_total", reason); n != want {
			t.Errorf("orderwatch_governance_load_skipped_total{reason=%q} = %v, want %v", reason, n, want)
		}
	}
}

// gathered returns the value of counter name on reg, of the series whose label
// reason is reason ("": the series without labels); a missing one fails.
func gathered(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got = l.GetValue()
				}
			}
			if got == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Errorf("%s{reason=%q} is not on the registry", name, reason)
	return 0
}
