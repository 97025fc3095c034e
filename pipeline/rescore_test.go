package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// classScorer scores with the shipped cutoff_risk and exception_class models,
// as orderwatch run does when both serve: the at-risk queue shows both.
type classScorer struct{ risk, class *models.Model }

func (s classScorer) Score(rows []float32, texts [][]string, risk, classes []float32) (pipeline.Scored, error) {
	if err := s.risk.ScoreTexts(rows, texts, risk); err != nil {
		return pipeline.Scored{}, err
	}
	n, w := len(risk), s.class.OutputWidth()
	if err := s.class.ScoreTexts(rows, texts, classes[:n*w]); err != nil {
		return pipeline.Scored{}, err
	}
	ref := func(m *models.Model) actions.ModelRef {
		return actions.ModelRef{Name: m.Name(), Version: m.Version(), SHA256: m.SHA256()}
	}
	class := ref(s.class)
	return pipeline.Scored{Risk: ref(s.risk), Threshold: s.risk.Threshold(),
		ClassModel: &class, ClassLabels: s.class.Bundle().Labels, Release: func() {}}, nil
}

func openClassScorer(t *testing.T) classScorer {
	t.Helper()
	if err := models.InitRuntime(""); err != nil {
		t.Fatalf("the ONNX Runtime is needed (set ONNXRUNTIME_LIB, or run `make test`, which fetches it): %v", err)
	}
	dir := t.TempDir()
	if err := models.SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *models.Model {
		live, err := models.Active(dir, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := models.OpenWith(live, models.OpenOptions{SpecVersion: features.SpecVersion, FeatureNames: features.Names[:],
			LoadTokenizer: func(path string) (models.Tokenizer, error) { return features.LoadTokenizer(path) }})
		if err != nil {
			t.Fatalf("open shipped model %s: %v", name, err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	s := classScorer{risk: open("cutoff_risk"), class: open("exception_class")}
	if s.class.OutputWidth() != len(features.ExceptionClasses) {
		t.Fatalf("exception_class gives %d classes, want %d", s.class.OutputWidth(), len(features.ExceptionClasses))
	}
	return s
}

// allOpen lists every row of an open-order index.
func allOpen(idx *process.OpenIndex) map[string]process.OpenOrder {
	page := idx.Query(process.OpenQuery{Limit: 10000})
	out := make(map[string]process.OpenOrder, len(page.Orders))
	for _, o := range page.Orders {
		out[o.ID] = o
	}
	return out
}

// scoredWithClass describes the first of ids not in rows with a risk and a
// class; "" when there is none.
func scoredWithClass(rows map[string]process.OpenOrder, ids []string) string {
	for _, id := range ids {
		if o, ok := rows[id]; !ok || !o.Scored || o.Class == "" {
			return fmt.Sprintf("order %s in the queue as %+v (listed %v)", id, o, ok)
		}
	}
	return ""
}

// TestTakeoverScoresTheMovedOrders: right after a member takes a partition
// over, its at-risk queue holds the moved orders with a risk and a class (the
// rebuild folds without scoring; their cutoffs are 40 minutes or three days
// off, so no checkpoint would score them for minutes or days, and no event
// comes), and the rescoring that gives them decides nothing again: the
// previous owner's approvals, restored, are the only decisions of the orders.
func TestTakeoverScoresTheMovedOrders(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx := context.Background()
	const parts = 1
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("SO-R%04d", i)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"id":"e-%s","type":"order.created","order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":{"warehouse":"W%d","customer_id":"C%d","customer_tier":"gold","lines":%d,"value":%d,"ship_cutoff":%q}}`,
			id, id, now.Format(time.RFC3339Nano), i%3, i%7, 1+i%5, 100+97*i, now.Add(40*time.Minute+time.Duration(72*(i%2))*time.Hour).Format(time.RFC3339))
		if _, err := js.PublishAsync(features.Subject(features.TypeOrderCreated, id), []byte(body), jetstream.WithMsgID("e-"+id)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // some orders in trouble, so that some are at risk
			hold := fmt.Sprintf(`{"id":"h-%s","type":"credit.hold","order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":{"reason":"over_limit"}}`,
				id, id, now.Format(time.RFC3339Nano))
			if _, err := js.PublishAsync(features.Subject("credit.hold", id), []byte(hold), jetstream.WithMsgID("h-"+id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged within 30s")
	}
	scorer := openClassScorer(t)
	withIndex := func(idx *process.OpenIndex) func(*pipeline.Options) {
		return func(o *pipeline.Options) { o.OpenOrders, o.Scorer = idx, scorer }
	}

	dirA, idxA := t.TempDir(), process.NewOpenIndex()
	a := startGovernedWith(t, js, "a", parts, dirA, withIndex(idxA))
	var onA map[string]process.OpenOrder
	waitFor(t, "a to put every order up for approval, each in its queue with a risk and a class", func() bool {
		if len(pendingOf(t, a.st)) != len(ids) {
			return false
		}
		onA = allOpen(idxA)
		return scoredWithClass(onA, ids) == ""
	})
	a.stop()
	if err := a.st.Close(); err != nil {
		t.Fatal(err)
	}

	idxB := process.NewOpenIndex()
	b := startGovernedWith(t, js, "b", parts, t.TempDir(), withIndex(idxB))
	waitFor(t, "b to take the partition over with a's approvals", func() bool {
		return b.m.Owns(0) && len(pendingOf(t, b.st)) == len(ids)
	})
	var onB map[string]process.OpenOrder
	var missing string
	deadline := time.Now().Add(15 * time.Second)
	for {
		onB = allOpen(idxB)
		if missing = scoredWithClass(onB, ids); missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after the takeover, b's at-risk queue lacks a moved order's risk or class: %s", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var atRiskA, atRiskB int
	for _, id := range ids {
		if onA[id].AtRisk {
			atRiskA++
		}
		if onB[id].AtRisk {
			atRiskB++
		}
	}
	// Not asserted: b scores with its own context aggregates (customers'
	// credit holds, warehouses' picks), which lack what a observed of the
	// partition's events, so its risks may be lower than a's.
	t.Logf("at risk: %d of %d on a before the takeover, %d on b after it", atRiskA, len(ids), atRiskB)

	// Nothing decided again: b holds a's approvals, restored, and no decision
	// of its own; a's past decisions are a's.
	decided, err := b.st.FindDecisions(store.DecisionsQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(decided) != len(ids) {
		t.Fatalf("b holds %d decisions for %d orders, each decided once by a: the rescoring after the takeover decided again", len(decided), len(ids))
	}
	pending := pendingOf(t, b.st)
	for _, d := range decided {
		if _, ok := pending[d.ID]; !ok {
			t.Errorf("b made decision %s after the takeover; want only a's, restored", d.ID)
		}
	}
	if got := len(pendingOf(t, b.st)); got != len(ids) {
		t.Fatalf("b lists %d approvals waiting, a left %d", got, len(ids))
	}
}
