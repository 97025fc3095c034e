package api

import (
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// riskPoint is one score of an order: the "scores" of GET /api/v1/orders/{id},
// the risk over time the console draws.
type riskPoint struct {
	At       time.Time `json:"at"`
	Risk     float64   `json:"risk"`
	Model    string    `json:"model"`
	Degraded bool      `json:"degraded,omitempty"`
}

// riskSeries returns an order's scores in the order they were stored (by
// time), ended by its latest scoring from its record when that is later: the
// history holds a point only when a scoring said something new (a move of the
// risk by actions.ScoreStep, a decision...). A score that cannot be read is
// left out here: history names it.
func riskSeries(v store.OrderView) []riskPoint {
	out := make([]riskPoint, 0, len(v.Scores)+1)
	for _, raw := range v.Scores {
		var s actions.ScorePoint
		if s.UnmarshalBinary(raw) != nil {
			continue
		}
		out = append(out, riskPoint{At: s.At, Risk: s.Risk, Model: s.Model, Degraded: s.Degraded})
	}
	if ls, ok := process.LatestScoreOf(v.Record); ok && (len(out) == 0 || ls.At.After(out[len(out)-1].At)) {
		out = append(out, riskPoint{At: ls.At, Risk: ls.Risk, Model: ls.Model, Degraded: ls.Degraded})
	}
	return out
}
