package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// TestRiskSeriesEndsWithTheLatestScore: the score history holds a point only
// when a scoring said something new (a move of actions.ScoreStep, a
// decision...), so the risk over time ends with the order's latest scoring,
// from its record, when that is later than the last point; a record scored at
// the last point adds nothing.
func TestRiskSeriesEndsWithTheLatestScore(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	pt := actions.ScorePoint{At: t0, Trigger: "event", Event: "e-1", Risk: 0.5, Model: "cutoff_risk@1.0.0"}
	raw, err := pt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	record := func(at time.Time, risk float64) []byte {
		return fmt.Appendf(nil, `{"state":{"order_id":"SO-1"},"risk":%v,"scored_at":%q,"model":{"name":"cutoff_risk","version":"1.0.0"},"flags":{}}`,
			risk, at.Format(time.RFC3339))
	}
	later := t0.Add(10 * time.Minute)
	for _, c := range []struct {
		name string
		v    store.OrderView
		want []riskPoint
	}{
		{"latest after the last point", store.OrderView{Record: record(later, 0.53), Scores: [][]byte{raw}},
			[]riskPoint{{At: t0, Risk: 0.5, Model: "cutoff_risk@1.0.0"}, {At: later, Risk: 0.53, Model: "cutoff_risk@1.0.0"}}},
		{"latest is the last point", store.OrderView{Record: record(t0, 0.5), Scores: [][]byte{raw}},
			[]riskPoint{{At: t0, Risk: 0.5, Model: "cutoff_risk@1.0.0"}}},
		{"never scored", store.OrderView{Record: []byte(`{"state":{"order_id":"SO-1"},"flags":{}}`)}, []riskPoint{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := riskSeries(c.v)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("riskSeries = %+v, want %+v", got, c.want)
			}
		})
	}
}
