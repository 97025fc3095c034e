package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/pipeline"
)

// TestDemoJudgesItsBacklog: `run --demo` scores its backlog (the network's
// history before the start, published at once) on its own time, so the live
// quality counters judge the backlog's orders on the score they had 2 h before
// their cutoffs, as the model card does, from the first minute: misses and
// met cutoffs both, and next to none left unjudged. Scored on the wall clock
// (before, issue 17), 40 outcomes of the backlog were judged, none missed
// and 14 of them flagged and met, against 620 unjudged.
func TestDemoJudgesItsBacklog(t *testing.T) {
	natsAddr := freeAddr(t)
	base := startRunWith(t, "--data", t.TempDir(), "--nats-listen", natsAddr, "--demo")
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	// The backlog (about 35,000 events) is published in time order up to the
	// clock, then the live stream follows it: the backlog is in once the last
	// message happened a few seconds ago, and applied once every message is
	// counted. Under -race, with other packages' tests on the same two cores,
	// that takes minutes.
	deadline := time.Now().Add(8 * time.Minute)
	for {
		time.Sleep(2 * time.Second)
		if time.Now().After(deadline) {
			t.Fatal("the demo's backlog not published and applied in 8 minutes")
		}
		raw, err := stream.GetLastMsgForSubject(t.Context(), "orders.>")
		if err != nil {
			continue
		}
		var ev struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		if json.Unmarshal(raw.Data, &ev) != nil || time.Since(ev.OccurredAt) > 10*time.Second {
			continue
		}
		msgs := streamInfo(t, js, pipeline.StreamOrders).State.Msgs
		_, body := get(base + "/api/v1/stats")
		var st map[string]uint64
		_ = json.Unmarshal([]byte(body), &st)
		if st["events_applied"]+st["duplicates"]+st["dead_lettered"]+100 >= msgs {
			break
		}
	}
	_, m := get(base + "/metrics")
	cell := func(predicted, actual string) float64 {
		return metricSum(m, "orderwatch_model_outcomes_total", `role="live"`, `predicted="`+predicted+`"`, `actual="`+actual+`"`)
	}
	fm, nm := cell("flagged", "missed"), cell("not_flagged", "missed")
	fh, nh := cell("flagged", "met"), cell("not_flagged", "met")
	unjudged := metricSum(m, "orderwatch_model_outcomes_unjudged_total")
	t.Logf("%v messages; outcomes: flagged∧missed %v, not_flagged∧missed %v, flagged∧met %v, not_flagged∧met %v; unjudged %v", streamInfo(t, js, pipeline.StreamOrders).State.Msgs, fm, nm, fh, nh, unjudged)
	judged := fm + nm + fh + nh
	if judged < 500 {
		t.Fatalf("%v outcomes judged (%v unjudged) once the backlog is applied, want at least 500", judged, unjudged)
	}
	if fm+nm == 0 || fh+nh == 0 {
		t.Errorf("judged %v missed and %v met, want both: the backlog holds orders of both outcomes", fm+nm, fh+nh)
	}
	if unjudged > judged/20 {
		t.Errorf("%v outcomes unjudged against %v judged, want at most a twentieth: the backlog's orders are seen from their creation, on its time", unjudged, judged)
	}
}
