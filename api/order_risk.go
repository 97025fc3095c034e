package api

import (
	"time"

	"github.com/orderwatch/orderwatch/actions"
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
// time). A score that cannot be read is left out here: history names it.
func riskSeries(v store.OrderView) []riskPoint {
	out := make([]riskPoint, 0, len(v.Scores))
	for _, raw := range v.Scores {
		var s actions.ScorePoint
		if s.UnmarshalBinary(raw) != nil {
			continue
		}
		out = append(out, riskPoint{At: s.At, Risk: s.Risk, Model: s.Model, Degraded: s.Degraded})
	}
	return out
}
