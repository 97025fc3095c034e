package actions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

const incidentsPolicy = `
version: incidents-actions-test
settings: {dry_run: %t}
rules:
  - {id: shadow-only, action: notify_customer_service, mode: shadow, when: {risk: {gte: 0.99}}}
incidents: %s
`

// TestIncidentPolicy: the incidents: key takes its defaults and refuses
// what it cannot do, naming the field.
func TestIncidentPolicy(t *testing.T) {
	for _, tc := range []struct {
		key, err string
		want     actions.IncidentPolicy
	}{
		{key: "{}", want: actions.IncidentPolicy{Window: actions.Duration(2 * time.Hour), MaxOpen: 1000,
			Windows: map[string]actions.Duration{"integration": actions.Duration(time.Hour), "price_contract": actions.Duration(72 * time.Hour)}}},
		{key: "{windows: {carrier: 30m, integration: 3h}}", want: actions.IncidentPolicy{Window: actions.Duration(2 * time.Hour), MaxOpen: 1000,
			Windows: map[string]actions.Duration{"carrier": actions.Duration(30 * time.Minute), "integration": actions.Duration(3 * time.Hour), "price_contract": actions.Duration(72 * time.Hour)}}},
		{key: "{windows: {edi: 1h}}", err: "incidents.windows.edi"},
		{key: "{windows: {carrier: 0s}}", err: "incidents.windows.carrier"},
		{key: "{window: 30m, max_open: 5, notify: {action: flag_finance}}", want: actions.IncidentPolicy{Window: actions.Duration(30 * time.Minute), MaxOpen: 5,
			Notify: &actions.IncidentNotify{Action: actions.ActionFlagFinance, MinOrders: 2, Mode: actions.ModeAuto}}},
		{key: "{window: -1m}", err: "incidents.window"},
		{key: "{max_open: -1}", err: "incidents.max_open"},
		{key: "{notify: {action: escalate}}", err: "incidents.notify.action"},
		{key: "{notify: {action: page_someone}}", err: "incidents.notify.action"},
		{key: "{notify: {action: flag_finance, min_orders: -2}}", err: "incidents.notify.min_orders"},
		{key: "{notify: {action: flag_finance, mode: approval}}", err: "incidents.notify.mode"},
		{key: "{windw: 1h}", err: "windw"},
	} {
		p, err := actions.ParsePolicy(fmt.Appendf(nil, incidentsPolicy, false, tc.key))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("incidents: %s: error %v, want one naming %s", tc.key, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("incidents: %s: %v", tc.key, err)
		case tc.err == "":
			got, _ := json.Marshal(p.Incidents)
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("incidents: %s: %s, want %s", tc.key, got, want)
			}
		}
	}
}

// TestIncidentNotificationPublished: the command of an incident's
// notification goes through the outbox and the executor to JetStream on
// orderwatch.actions.<action> once, listing the orders, with the incident's
// key as Nats-Msg-Id; a second decision of the same incident (a member that
// took it over) is dropped by JetStream as a duplicate. In dry run it is
// recorded suppressed and nothing is queued.
func TestIncidentNotificationPublished(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	if _, err := pipeline.EnsureStreams(t.Context(), js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	publish := func(ctx context.Context, subject, msgID string, data []byte) error {
		ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		if err == nil && ack.Duplicate {
			return actions.ErrDuplicate
		}
		return err
	}
	exec, err := actions.NewExecutor(actions.ExecutorOptions{Store: st, Publish: publish, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := exec.Run(ctx); err != nil {
			t.Errorf("executor: %v", err)
		}
	})
	defer wg.Wait()
	defer cancel()

	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	notice := &actions.IncidentNotice{Incident: "inc-1", Cause: "integration/edi/MAP-UOM/C-0042", Kind: "integration",
		Owner: "integration", Class: "integration", Orders: []string{"SO-1", "SO-2", "SO-3"}, OrderCount: 3,
		FirstSeen: t0, LastSeen: t0.Add(time.Hour), Order: "SO-3", At: t0.Add(time.Hour)}
	notify := func(dryRun bool, at time.Time) actions.Decision {
		t.Helper()
		pol, err := actions.ParsePolicy(fmt.Appendf(nil, incidentsPolicy, dryRun, "{notify: {action: notify_customer_service, min_orders: 3}}"))
		if err != nil {
			t.Fatal(err)
		}
		n := *notice
		n.At = at
		b := st.NewBatch()
		d, err := pol.NotifyIncident(b, &n)
		if err != nil {
			b.Discard()
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		exec.Wake()
		waitFor(t, "the outbox emptied", func() bool {
			q, err := st.OutboxPage("", 10)
			return err == nil && len(q) == 0
		})
		return d
	}
	d := notify(false, notice.At)
	notify(false, notice.At.Add(time.Minute)) // another decision, the same incident
	if d.Status != actions.StatusQueued || d.RuleID != actions.RuleIncidentNotify || d.OrderID != "SO-3" {
		t.Fatalf("decision %+v, want queued by %s under SO-3", d, actions.RuleIncidentNotify)
	}
	cons, err := js.OrderedConsumer(t.Context(), pipeline.StreamActions, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d commands on ACTIONS, want the incident's once", len(msgs))
	}
	m := msgs[0]
	var cmd actions.IncidentCommand
	if err := json.Unmarshal(m.Data(), &cmd); err != nil {
		t.Fatal(err)
	}
	if m.Subject() != actions.Subject(actions.ActionNotifyCS) || m.Headers().Get("Nats-Msg-Id") != actions.IncidentKey("inc-1") ||
		cmd.Incident != "inc-1" || !slices.Equal(cmd.Orders, notice.Orders) || cmd.OrderCount != 3 || cmd.DecisionID != d.ID {
		t.Fatalf("%s %v: %s, want the incident's command listing SO-1..3", m.Subject(), m.Headers(), m.Data())
	}

	if d := notify(true, notice.At); d.Status != actions.StatusSuppressed || d.SuppressedBy != actions.SuppressedDryRun {
		t.Fatalf("dry run: %+v, want suppressed by dry_run", d)
	}
}
