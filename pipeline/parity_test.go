package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// testStream makes a deterministic stream of a few dozen orders over a working day,
// with context events, an event before its order.created, out-of-order arrival and
// a duplicate re-sent under another Nats-Msg-Id. Events are returned in arrival
// order, with the message id each is published under.
func testStream(seed uint64) (lines [][]byte, msgIDs []string) {
	r := rand.New(rand.NewPCG(seed, 7))
	start := time.Date(2026, 5, 18, 6, 0, 0, 0, time.UTC)
	type timed struct {
		at   time.Time
		line []byte
		id   string
	}
	var evs []timed
	n := 0
	add := func(at time.Time, typ, order, data string) {
		n++
		id := fmt.Sprintf("p-%d", n)
		evs = append(evs, timed{at, event(id, typ, order, at, data), id})
	}
	for i := range 40 {
		order := fmt.Sprintf("SO-%03d", i)
		at := start.Add(time.Duration(r.IntN(8*60)) * time.Minute)
		cutoff := at.Add(time.Duration(60+r.IntN(6*60)) * time.Minute)
		wh := []string{"DAL", "ATL"}[r.IntN(2)]
		add(at, "order.created", order, fmt.Sprintf(`{"warehouse":%q,"ship_cutoff":%q,"customer_id":"C-%d","customer_tier":"gold","channel":"edi","carrier":"ODFL","lines":%d,"value":%d}`,
			wh, cutoff.Format(time.RFC3339), r.IntN(5), 1+r.IntN(9), 100+r.IntN(5000)))
		step := func() time.Time { at = at.Add(time.Duration(5+r.IntN(90)) * time.Minute); return at }
		if r.IntN(3) == 0 {
			add(step(), "credit.hold", order, `{"reason":"over_limit"}`)
			if r.IntN(2) == 0 {
				add(step(), "credit.released", order, `{}`)
			}
		}
		if r.IntN(4) == 0 {
			add(step(), "integration.error", order, `{"system":"edi","text":"855 map fail seg PO1"}`)
		}
		for _, typ := range []string{"inventory.allocated", "pick.released", "pick.confirmed", "pack.confirmed", "shipment.confirmed"} {
			if r.IntN(6) == 0 {
				break // stuck here
			}
			add(step(), typ, order, `{}`)
		}
	}
	for h := range 10 {
		at := start.Add(time.Duration(h) * time.Hour)
		add(at, "warehouse.load", "", fmt.Sprintf(`{"warehouse":"DAL","queue":%d,"capacity":100,"timezone":"America/Chicago"}`, 50+r.IntN(200)))
		add(at, "carrier.performance", "", fmt.Sprintf(`{"carrier":"ODFL","on_time_share":%.2f,"delay_minutes":%d}`, 0.7+0.3*r.Float64(), r.IntN(60)))
	}
	// Arrival order: by event time with jitter, so some arrive out of order.
	jitter := func(e timed) time.Time { return e.at.Add(time.Duration(len(e.line)%7) * time.Minute) }
	slices.SortStableFunc(evs, func(a, b timed) int { return jitter(a).Compare(jitter(b)) })
	for _, e := range evs {
		lines, msgIDs = append(lines, e.line), append(msgIDs, e.id)
	}
	// A duplicate beyond JetStream's dedupe: same event, new message id.
	lines, msgIDs = append(lines, lines[3]), append(msgIDs, "resent-"+msgIDs[3])
	return lines, msgIDs
}

// TestLiveReplayParity: the same stream through the live JetStream pipeline (in
// event-time mode) and through replay gives identical feature vectors at identical
// moments, including the moments of rescoring timers.
func TestLiveReplayParity(t *testing.T) {
	lines, ids := testStream(1)

	var mu sync.Mutex
	var live []pipeline.Row
	h := newHarness(t, true, func(o *pipeline.Options) {
		o.EventTime = true
		o.BatchSize = 7 // small and odd, so batches cut through orders
		o.OnRow = func(r *pipeline.Row) {
			mu.Lock()
			live = append(live, *r)
			mu.Unlock()
		}
	})
	for i, l := range lines {
		var ev features.Event
		if err := features.Decode(l, &ev); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		h.publish(features.Subject(ev.Type, ev.OrderID), ids[i], l)
	}
	h.drained()

	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, _ := actions.LoadPolicy("")
	model := openShippedModel(t)
	defer model.Close()
	var replayed []pipeline.Row
	stats, err := process.Replay(context.Background(), bytes.NewReader(bytes.Join(lines, []byte("\n"))), process.ReplayOptions{
		Store: st, Policy: actions.NewLive(policy), Scorer: riskScorer{model}, BatchSize: 64,
		OnRow: func(r *pipeline.Row) { replayed = append(replayed, *r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Duplicates != 1 || stats.DeadLettered != 0 || stats.Applied != len(lines)-1 {
		t.Errorf("replay stats = %+v, want every line applied but the one duplicate", stats)
	}

	mu.Lock()
	defer mu.Unlock()
	var timers int
	for _, r := range replayed {
		if r.Trigger == process.TriggerTimer {
			timers++
		}
	}
	if timers == 0 || len(replayed) < len(lines)/2 {
		t.Fatalf("replay made %d rows, %d by timers: the stream should exercise both", len(replayed), timers)
	}
	if len(live) != len(replayed) {
		t.Fatalf("live scored %d rows, replay %d", len(live), len(replayed))
	}
	for i := range live {
		l, r := live[i], replayed[i]
		if l.OrderID != r.OrderID || !l.Moment.Equal(r.Moment) || l.Trigger != r.Trigger || l.EventID != r.EventID || l.Vector != r.Vector || !slices.Equal(l.Texts, r.Texts) {
			t.Fatalf("row %d differs:\nlive   %+v\nreplay %+v", i, l, r)
		}
		if math.Abs(float64(l.Risk-r.Risk)) > 1e-6 {
			t.Fatalf("row %d: risk live %v, replay %v", i, l.Risk, r.Risk)
		}
	}
}

// TestReplayIsPointInTime: a row's vector uses only what had arrived by its moment:
// replaying a prefix of the stream gives the same rows as the full replay up to it.
func TestReplayIsPointInTime(t *testing.T) {
	lines, _ := testStream(2)
	run := func(ls [][]byte) []pipeline.Row {
		st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		policy, _ := actions.LoadPolicy("")
		var rows []pipeline.Row
		_, err = process.Replay(context.Background(), bytes.NewReader(bytes.Join(ls, []byte("\n"))), process.ReplayOptions{
			Store: st, Policy: actions.NewLive(policy), OnRow: func(r *pipeline.Row) { rows = append(rows, *r) },
		})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	full := run(lines)
	prefix := run(lines[:len(lines)/2])
	if len(prefix) == 0 || len(prefix) > len(full) {
		t.Fatalf("prefix rows %d, full rows %d", len(prefix), len(full))
	}
	for i := range prefix {
		if !reflect.DeepEqual(prefix[i], full[i]) {
			t.Fatalf("row %d of the prefix replay differs from the full replay:\n%+v\n%+v", i, prefix[i], full[i])
		}
	}
}
