package actions

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// step is one scoring of an order in a governance test.
type step struct {
	order, warehouse, customer, carrier string
	risk                                float64
	at                                  time.Duration // after t0
}

// TestGovernancePreventsExecutionAndSaysWhy runs decisions through Decide and
// Record on a real Badger, one commit per step as the pipeline does, and checks
// that what must not fire is recorded with the reason, never reaches the outbox,
// and is counted.
func TestGovernancePreventsExecutionAndSaysWhy(t *testing.T) {
	const rule = "version: v1\n%s\nrules:\n- {id: r, action: notify_customer_service, mode: %s, %s when: {risk: {gte: 0.7}}}\n"
	doc := func(head, mode, extra string) string { return fmt.Sprintf(rule, head, mode, extra) }
	hot := func(order, wh string, at time.Duration) step {
		return step{order: order, warehouse: wh, customer: "C-" + order, carrier: "ODFL", risk: 0.9, at: at}
	}
	cold := func(order string, at time.Duration) step {
		return step{order: order, warehouse: "DAL", customer: "C-" + order, carrier: "ODFL", risk: 0.1, at: at}
	}
	cases := []struct {
		name   string
		policy string
		setup  func(t *testing.T, st *store.Store, p *Policy)
		steps  []step
		want   []string // per decision: status, or "suppressed/<reason>"
	}{
		{
			name:   "warehouse rate limit",
			policy: doc("", "auto", "limits: {warehouse: 2},"),
			steps: []step{hot("A", "DAL", 0), hot("B", "DAL", time.Minute), hot("C", "DAL", 2*time.Minute),
				hot("D", "ATL", 3*time.Minute), hot("E", "DAL", 61*time.Minute)},
			want: []string{"queued", "queued", "suppressed/rate_limit:warehouse", "queued", "queued"},
		},
		{
			name:   "customer rate limit",
			policy: doc("", "auto", "limits: {customer: 1},"),
			steps: []step{{order: "A", customer: "C-1", risk: 0.9}, {order: "B", customer: "C-1", risk: 0.9, at: time.Minute},
				{order: "C", customer: "C-2", risk: 0.9, at: 2 * time.Minute}},
			want: []string{"queued", "suppressed/rate_limit:customer", "queued"},
		},
		{
			name:   "carrier rate limit counts approvals too",
			policy: doc("", "approval", "limits: {carrier: 1},"),
			steps:  []step{{order: "A", carrier: "XPO", risk: 0.9}, {order: "B", carrier: "XPO", risk: 0.9, at: time.Minute}},
			want:   []string{"pending_approval", "suppressed/rate_limit:carrier"},
		},
		{
			name:   "cooldown per order and action",
			policy: doc("", "auto", "cooldown: 30m,"),
			steps: []step{hot("A", "DAL", 0), cold("A", 5*time.Minute), hot("A", "DAL", 10*time.Minute),
				hot("B", "DAL", 11*time.Minute), cold("A", 20*time.Minute), hot("A", "DAL", 45*time.Minute)},
			want: []string{"queued", "suppressed/cooldown", "queued", "queued"},
		},
		{
			name:   "policy kill switch",
			policy: doc("settings: {kill_switch: true}", "auto", ""),
			steps:  []step{hot("A", "DAL", 0)},
			want:   []string{"suppressed/kill_switch:policy"},
		},
		{
			name:   "runtime kill switch",
			policy: doc("", "approval", ""),
			setup: func(t *testing.T, st *store.Store, p *Policy) {
				k, err := OpenKillSwitch(st)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := k.Set(t.Context(), KillState{On: true, By: "ops-lead", Reason: "carrier API misbehaving", At: time.Now()}); err != nil {
					t.Fatal(err)
				}
				p.UseKillSwitch(k)
			},
			steps: []step{hot("A", "DAL", 0)},
			want:  []string{"suppressed/kill_switch:runtime"},
		},
		{
			name:   "dry run",
			policy: doc("settings: {dry_run: true}", "approval", ""),
			steps:  []step{hot("A", "DAL", 0), hot("B", "DAL", time.Minute)},
			want:   []string{"suppressed/dry_run", "suppressed/dry_run"},
		},
		{
			name:   "shadow",
			policy: doc("", "shadow", "limits: {warehouse: 1},"),
			steps:  []step{hot("A", "DAL", 0), hot("B", "DAL", time.Minute)},
			want:   []string{"shadow", "shadow"},
		},
	}
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(c.policy))
			if err != nil {
				t.Fatalf("policy %q: %v", c.policy, err)
			}
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if c.setup != nil {
				c.setup(t, st, p)
			}
			mems := map[string]Memory{}
			var got []Decision
			for _, s := range c.steps {
				if mems[s.order] == nil {
					mems[s.order] = Memory{}
				}
				got = append(got, decideCommit(t, st, p, s.input(t0), mems[s.order])...)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d decisions %v, want %d %v", len(got), statuses(got), len(c.want), c.want)
			}
			queued, suppressed := 0, map[string]int64{}
			for i, d := range got {
				if s := statuses(got[i : i+1])[0]; s != c.want[i] {
					t.Errorf("decision %d (order %s) = %s (%s), want %s", i, d.OrderID, s, d.SuppressedNote, c.want[i])
				}
				if d.Status == StatusSuppressed {
					suppressed[d.SuppressedBy]++
					if d.SuppressedNote == "" {
						t.Errorf("decision %d suppressed by %s without saying the particulars", i, d.SuppressedBy)
					}
				}
				if d.Status == StatusQueued {
					queued++
				}
				// The stored record says the same.
				dv, err := st.Decision(d.ID)
				if err != nil {
					t.Fatal(err)
				}
				var rec Decision
				if err := json.Unmarshal(dv.Record, &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Status != d.Status || rec.SuppressedBy != d.SuppressedBy {
					t.Errorf("stored record %s/%s, decided %s/%s", rec.Status, rec.SuppressedBy, d.Status, d.SuppressedBy)
				}
				if d.Status != StatusQueued && len(dv.Queued) > 0 {
					t.Errorf("decision %d (%s) has outbox entries %v", i, d.Status, dv.Queued)
				}
			}
			out, err := st.OutboxPage("", 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != queued {
				t.Errorf("outbox holds %d entries, want %d (only queued decisions execute)", len(out), queued)
			}
			counts, err := st.Counters(counterSuppressed)
			if err != nil {
				t.Fatal(err)
			}
			for reason, n := range suppressed {
				if counts[reason] != n {
					t.Errorf("durable counter of %s = %d, want %d", reason, counts[reason], n)
				}
			}
			if c.name == "runtime kill switch" && !strings.Contains(got[0].SuppressedNote, "ops-lead") {
				t.Errorf("suppressed note %q does not name who turned the kill switch on", got[0].SuppressedNote)
			}
		})
	}
}

func (s step) input(t0 time.Time) *Input {
	var v features.Vector
	return &Input{OrderID: s.order, At: t0.Add(s.at), Risk: s.risk, Features: &v,
		State: &features.OrderState{OrderID: s.order, Warehouse: s.warehouse, CustomerID: s.customer, Carrier: s.carrier}}
}

func decideCommit(t *testing.T, st *store.Store, p *Policy, in *Input, mem Memory) []Decision {
	t.Helper()
	b := st.NewBatch()
	defer b.Discard()
	ds, err := p.Decide(b, in, mem, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ds {
		if err := p.Record(b, &ds[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	return ds
}

func statuses(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Status
		if d.SuppressedBy != "" {
			out[i] += "/" + d.SuppressedBy
		}
	}
	return out
}

// TestDiscardedBatchLeavesLimitsAlone: a batch that fails is not committed, and its
// decisions take no place in the limits: the redelivered batch decides the same.
func TestDiscardedBatchLeavesLimitsAlone(t *testing.T) {
	p, err := ParsePolicy([]byte("version: v1\nrules:\n- {id: r, action: flag_finance, mode: auto, cooldown: 1h, limits: {warehouse: 1}, when: {risk: {gte: 0.7}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := step{order: "A", warehouse: "DAL", risk: 0.9}.input(time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC))
	b := st.NewBatch()
	ds, err := p.Decide(b, in, Memory{}, nil)
	if err != nil || len(ds) != 1 || ds[0].Status != StatusQueued {
		t.Fatalf("first try: %v %v", statuses(ds), err)
	}
	b.Discard() // the batch failed
	ds = decideCommit(t, st, p, in, Memory{})
	if len(ds) != 1 || ds[0].Status != StatusQueued {
		t.Errorf("after a discarded batch the same decision is %v, want queued", statuses(ds))
	}
}

// TestRerouteNeedsAnAlternative: a reroute goes to the least loaded listed
// alternative without an outage and below the load bound, or is suppressed with
// each alternative's reason.
func TestRerouteNeedsAnAlternative(t *testing.T) {
	p, err := ParsePolicy([]byte(`version: v1
reroute: {max_load_ratio: 1.0, alternatives: {DAL: [ATL, RNO, PHX]}}
rules:
- {id: r, action: reroute_warehouse, mode: approval, when: {features: {allocation_short: {eq: 1}}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := func(ws map[string]features.Warehouse) *features.Context {
		c := features.NewContext()
		for id, w := range ws {
			c.Warehouses[id] = &w
		}
		return c
	}
	cases := []struct {
		name       string
		warehouses map[string]features.Warehouse
		target     string
		note       []string
	}{
		{"least loaded wins", map[string]features.Warehouse{"ATL": {Queue: 80, Capacity: 100}, "RNO": {Queue: 20, Capacity: 100}}, "RNO", nil},
		{"outage and overload rule out", map[string]features.Warehouse{"ATL": {Queue: 10, Capacity: 100, Outage: true}, "RNO": {Queue: 150, Capacity: 100}},
			"", []string{"ATL: outage", "RNO: backlog 1.50", "PHX: no load report"}},
		{"nothing known", nil, "", []string{"no load report"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := store.Open(store.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var v features.Vector
			v[features.FAllocationShort] = 1
			in := &Input{OrderID: "SO-" + string(rune('a'+i)), At: time.Now(), Features: &v,
				State: &features.OrderState{Warehouse: "DAL"}, Context: ctx(c.warehouses)}
			ds := decideCommit(t, st, p, in, Memory{})
			if len(ds) != 1 {
				t.Fatalf("%d decisions", len(ds))
			}
			d := ds[0]
			if d.Target != c.target {
				t.Errorf("target = %q, want %q", d.Target, c.target)
			}
			if c.target != "" && d.Status != StatusPendingApproval {
				t.Errorf("status %s, want pending_approval", d.Status)
			}
			if c.target == "" && (d.Status != StatusSuppressed || d.SuppressedBy != SuppressedNoAlternative) {
				t.Errorf("status %s/%s, want suppressed/no_alternative", d.Status, d.SuppressedBy)
			}
			for _, n := range c.note {
				if !strings.Contains(d.SuppressedNote, n) {
					t.Errorf("note %q does not say %q", d.SuppressedNote, n)
				}
			}
		})
	}
}
