package main

import (
	"testing"
	"time"
)

// TestDemoJudgesItsBacklog: `run --demo` scores its backlog (the network's
// history before the start, published at once) on its own time, so the live
// quality counters judge the backlog's orders on the score they had 2 h before
// their cutoffs, as the model card does, from the first minute: misses and
// met cutoffs both, and next to none left unjudged. Scored on the wall clock
// (before, issue 17), about 700 of the first 750 outcomes were unjudged and
// the judged ones had no miss.
func TestDemoJudgesItsBacklog(t *testing.T) {
	base := startRunWith(t, "--data", t.TempDir(), "--nats-listen", freeAddr(t), "--demo")
	cell := func(m, predicted, actual string) float64 {
		return metricSum(m, "orderwatch_model_outcomes_total", `role="live"`, `predicted="`+predicted+`"`, `actual="`+actual+`"`)
	}
	var m string
	// The backlog is about 30,000 events at up to 2,000/s, then the live stream
	// goes at about 40/s: it is applied when the applied count stops leaping.
	// Under -race, with other packages' tests on the same two cores, that takes
	// minutes.
	deadline := time.Now().Add(4 * time.Minute)
	var last float64
	for {
		time.Sleep(2 * time.Second)
		_, m = get(base + "/metrics")
		applied := metricSum(m, "orderwatch_events_total", `result="applied"`)
		if applied > 10000 && applied-last < 400 || time.Now().After(deadline) {
			break
		}
		last = applied
	}
	fm, nm := cell(m, "flagged", "missed"), cell(m, "not_flagged", "missed")
	fh, nh := cell(m, "flagged", "met"), cell(m, "not_flagged", "met")
	unjudged := metricSum(m, "orderwatch_model_outcomes_unjudged_total")
	t.Logf("outcomes: flagged∧missed %v, not_flagged∧missed %v, flagged∧met %v, not_flagged∧met %v; unjudged %v", fm, nm, fh, nh, unjudged)
	judged := fm + nm + fh + nh
	if judged < 500 {
		t.Fatalf("%v outcomes judged (%v unjudged) by the deadline, want at least 500 from the backlog", judged, unjudged)
	}
	if fm+nm == 0 || fh+nh == 0 {
		t.Errorf("judged %v missed and %v met, want both: the backlog holds orders of both outcomes", fm+nm, fh+nh)
	}
	if unjudged > judged/20 {
		t.Errorf("%v outcomes unjudged against %v judged, want at most a twentieth: the backlog's orders are seen from their creation, on its time", unjudged, judged)
	}
}
