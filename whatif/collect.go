package whatif

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// decisionFields are the fields of a decision record (actions.Decision, as the
// API shows it) that a comparison reads.
type decisionFields struct {
	ID       string    `json:"id"`
	OrderID  string    `json:"order_id"`
	At       time.Time `json:"at"`
	Features struct {
		MinutesToCutoff float64 `json:"minutes_to_cutoff"`
		LogValue        float64 `json:"log_value"`
		CustomerTier    float64 `json:"customer_tier"`
	} `json:"features"`
	// Cost is the decision's expected value, when its policy states costs:
	// its order value is exact, log_value's is float32.
	Cost *struct {
		OrderValue float64 `json:"order_value"`
	} `json:"cost"`
	Scores struct {
		Risk float64 `json:"cutoff_risk"`
	} `json:"scores"`
	Model          actions.ModelRef `json:"model"`
	RuleID         string           `json:"rule_id"`
	Action         string           `json:"action"`
	Status         string           `json:"status"`
	SuppressedBy   string           `json:"suppressed_by"`
	Target         string           `json:"target"`
	Team           string           `json:"team"`
	Episode        int32            `json:"episode"`
	IdempotencyKey string           `json:"idempotency_key"`
	Reasons        []string         `json:"reasons"`
}

// collectPage is the decisions read from the store at a time.
const collectPage = 1000

// Collect reads every decision a replay left in st as a Record, sorted by key
// (SortRecords). It fails with ErrTooManyDecisions past max decisions (max <=
// 0: no bound).
func Collect(st *store.Store, names *Names, max int) ([]Record, error) {
	var (
		recs  []Record
		after string
		d     decisionFields
	)
	for {
		page, next, err := st.DecisionsPage(store.DecisionsQuery{Limit: collectPage}, after)
		if err != nil {
			return nil, fmt.Errorf("whatif: read decisions: %w", err)
		}
		for i := range page {
			if max > 0 && len(recs) >= max {
				return nil, fmt.Errorf("%w: over %d; narrow the window or raise --max-decisions", ErrTooManyDecisions, max)
			}
			d = decisionFields{}
			if err := json.Unmarshal(page[i].Record, &d); err != nil {
				return nil, fmt.Errorf("whatif: decision %s: %w", page[i].ID, err)
			}
			r, err := record(&d, names)
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
		if next == "" {
			break
		}
		after = next
	}
	SortRecords(recs, names)
	return slices.Clip(recs), nil
}

// SortRecords sorts recs by their key: order, action name, rule name and
// episode.
func SortRecords(recs []Record, names *Names) {
	n := names.all()
	slices.SortFunc(recs, func(a, b Record) int { return compareKeys(&a, &b, n) })
}

// compareKeys orders two records by key.
func compareKeys(a, b *Record, n []string) int {
	if c := strings.Compare(a.Order, b.Order); c != 0 {
		return c
	}
	if a.Action != b.Action {
		return strings.Compare(n[a.Action], n[b.Action])
	}
	if a.Rule != b.Rule {
		return strings.Compare(n[a.Rule], n[b.Rule])
	}
	return cmp.Compare(a.Episode, b.Episode)
}

func record(d *decisionFields, names *Names) (Record, error) {
	r := Record{Order: d.OrderID, At: d.At.UnixNano(), Episode: d.Episode, Lead: int32(d.Features.MinutesToCutoff), Risk: float32(d.Scores.Risk),
		Value: float32(math.Expm1(d.Features.LogValue)), Tier: tierRank(d.Features.CustomerTier)}
	if d.Cost != nil {
		r.Value = float32(d.Cost.OrderValue)
	}
	copy(r.Key[:], d.IdempotencyKey)
	model := d.Model.Name
	if d.Model.Version != "" {
		model += "@" + d.Model.Version
	}
	for _, f := range [...]struct {
		dst *uint16
		s   string
	}{{&r.Action, d.Action}, {&r.Rule, d.RuleID}, {&r.Status, d.Status}, {&r.Reason, d.SuppressedBy},
		{&r.Target, d.Target}, {&r.Team, d.Team}, {&r.Model, model}} {
		id, err := names.id(f.s)
		if err != nil {
			return r, err
		}
		*f.dst = id
	}
	return r, nil
}

// decisionID is the id of the decision r records (actions' decisionID).
func (r *Record) decisionID() string {
	return store.DecisionIDPrefix(r.at()) + "-" + string(r.Key[:])
}
