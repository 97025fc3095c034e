package actions

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// decideRows generates scored rows the way the pipeline hands them to Decide: a
// population of open orders, each scored about every 20 minutes of event time
// from a day before its cutoff until the cutoff, when a new order takes its slot;
// at any time the orders are at every stage of their day. Most rows fire nothing;
// some cross a rule's threshold (risk above 0.7, a credit hold near the cutoff, a
// late carrier, a shortfall, ...) and start an episode. As in the pipeline, four
// rows in nine are the rescoring timer's, event times are whole milliseconds and
// the scores are float32 values, as the models give them.
type decideRows struct {
	rng   *rand.Rand
	t0    time.Time
	ctx   *features.Context
	slots []decideSlot
	i     int // rows made
}

type decideSlot struct {
	gen   int // how many orders had this slot before
	state features.OrderState
	mem   Memory
	vec   features.Vector
	base  float64 // the order's risk level
	flags uint8   // credit hold, pricing, shortfall, integration errors, carrier issue, carrier class
}

const (
	decideOrders   = 4096 // open orders
	decideScorings = 72   // scorings of one order, 20 minutes apart
)

func newDecideRows() *decideRows {
	g := &decideRows{rng: rand.New(rand.NewPCG(1, 2)), t0: time.Date(2026, 11, 2, 6, 0, 0, 0, time.UTC), ctx: features.NewContext()}
	for i, wh := range decideWarehouses {
		g.ctx.Warehouses[wh] = &features.Warehouse{Queue: float64(100 + 150*i), Capacity: 400, Outage: wh == "RNO"}
	}
	g.slots = make([]decideSlot, decideOrders)
	for s := range g.slots {
		g.renew(s)
	}
	return g
}

var (
	decideWarehouses = []string{"DAL", "ATL", "CMH", "RNO", "PHX"}
	decideCarriers   = []string{"ODFL", "XPO", "FEDEX-F", "UPS-F", "SAIA", "ESTES"}
	decideTiers      = []string{"bronze", "silver", "silver", "gold", "platinum"}
	decideChannels   = []string{"edi", "portal", "ecommerce", "customer_service"}
)

// renew puts a new order into slot s.
func (g *decideRows) renew(s int) {
	sl := &g.slots[s]
	r := g.rng
	id := "SO-" + strconv.Itoa(sl.gen*decideOrders+s)
	sl.gen++
	sl.state = features.OrderState{
		OrderID: id, Known: true, Warehouse: decideWarehouses[r.IntN(len(decideWarehouses))],
		CustomerID: "C-" + strconv.Itoa(r.IntN(1500)), CustomerTier: decideTiers[r.IntN(len(decideTiers))],
		Channel: decideChannels[r.IntN(len(decideChannels))], Carrier: decideCarriers[r.IntN(len(decideCarriers))],
	}
	sl.mem = Memory{}
	sl.base = 0.05 + 0.6*r.Float64()*r.Float64()
	sl.flags = 0
	for bit, p := range []float64{0.04, 0.03, 0.02, 0.03, 0.04, 0.4} {
		if r.Float64() < p {
			sl.flags |= 1 << bit
		}
	}
	sl.vec = features.Vector{}
}

// next returns the next row; it reuses in.
func (g *decideRows) next(in *Input) {
	s := g.i % decideOrders
	step := (g.i/decideOrders + s) % decideScorings // orders are at every stage of their life
	if step == 0 && g.i >= decideOrders {
		g.renew(s)
	}
	g.i++
	sl, r := &g.slots[s], g.rng
	at := g.t0.Add(time.Duration(g.i) * (20 * time.Minute / decideOrders)).Truncate(time.Millisecond)
	mtc := float32(20 * (decideScorings - step))
	risk := sl.base + (1-sl.base)*float64(step)/decideScorings*0.4 + 0.3*(r.Float64()-0.5)
	risk = float64(float32(math.Min(math.Max(risk, 0), 1)))

	v := &sl.vec
	v[features.FMinutesToCutoff] = mtc
	v[features.FHoursSinceCreated] = float32(step) / 3
	v[features.FMilestoneRank] = float32(step / 12)
	v[features.FLines] = 3
	v[features.FOnCreditHold] = float32(sl.flags & 1)
	v[features.FPricingOpen] = float32(sl.flags >> 1 & 1)
	v[features.FAllocationShort] = float32(sl.flags >> 2 & 1)
	v[features.FIntegrationErrors] = float32(sl.flags >> 3 & 1)
	v[features.FCarrierIssues] = float32(sl.flags >> 4 & 1)
	w := g.ctx.Warehouses[sl.state.Warehouse]
	v[features.FWarehouseLoadRatio] = float32(w.Queue/w.Capacity) + 0.1*float32(r.Float64())
	if w.Outage {
		v[features.FWarehouseOutage] = 1
	}
	v[features.FCarrierOnTime] = 0.9 + 0.09*float32(r.Float64())
	v[features.FLocalHour] = float32(at.Hour())

	classes := make(map[string]float64, len(features.ExceptionClasses))
	rest := 1.0
	for _, c := range features.ExceptionClasses[1:] {
		p := rest * 0.3 * r.Float64() * r.Float64()
		classes[c] = p
		rest -= p
	}
	if sl.flags&(1<<5) != 0 { // the model wavers on a carrier exception
		classes[features.ExceptionCarrier] = 0.35 + 0.3*r.Float64()
		rest -= classes[features.ExceptionCarrier]
	}
	classes[features.ExceptionNone] = rest
	for c, p := range classes {
		classes[c] = float64(float32(p))
	}
	trigger, event := "event", "ev-"+strconv.Itoa(g.i)
	if g.i%9 < 4 {
		trigger, event = "timer", "timer"
	}
	*in = Input{
		OrderID: sl.state.OrderID, At: at, TriggerEvent: event, TriggerType: trigger,
		Risk: risk, Model: ModelRef{Name: "cutoff_risk", Version: "2026-10-01", SHA256: "9f2c"},
		Classes: classes, ClassModel: ModelRef{Name: "exception_class", Version: "2026-10-01"},
		Shadow:   map[string]float64{"cutoff_risk@2026-11-01": float64(float32(math.Min(risk*1.1, 1)))},
		Features: v, State: &sl.state, Context: g.ctx,
	}
}

// mem returns the policy memory of the last row's order.
func (g *decideRows) mem() Memory { return g.slots[(g.i-1)%decideOrders].mem }

// BenchmarkDecide measures the policy's share of the pipeline's batch: Decide and
// Record for every scored row under the shipped default policy, on a real Badger,
// 1024 rows to a synced commit as the pipeline does. One op is one row; about one
// row in five decides something. Generating the rows is not timed; commit-ns/row
// says how much of a row's time is Badger's commit.
func BenchmarkDecide(b *testing.B) { benchmarkDecide(b, nil) }

// BenchmarkDecideWithRateShare is BenchmarkDecide with the group's rate windows
// (UseRateShare), as run has them: each limited window is also counted in the
// other members' and marked for publication.
func BenchmarkDecideWithRateShare(b *testing.B) { benchmarkDecide(b, newRateShare(RateShareOptions{})) }

func benchmarkDecide(b *testing.B, rates *RateShare) {
	p, err := LoadPolicy("")
	if err != nil {
		b.Fatal(err)
	}
	p.UseRateShare(rates)
	st, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const batchRows = 1024
	g := newDecideRows()
	ins := make([]Input, batchRows)
	mems := make([]Memory, batchRows)
	var decs []Decision
	reasons := []string{"minutes to cutoff 120", "credit hold"} // the pipeline's top drivers
	decisions := 0
	var commit time.Duration // of it in Commit
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchRows {
		n := min(batchRows, b.N-done)
		b.StopTimer()
		for i := range n {
			g.next(&ins[i])
			mems[i] = g.mem()
		}
		b.StartTimer()
		batch := st.NewBatch()
		for i := range n {
			decs = decs[:0]
			if decs, err = p.Decide(batch, &ins[i], mems[i], decs); err != nil {
				b.Fatal(err)
			}
			for j := range decs {
				decs[j].Reasons = reasons
				if err := p.Record(batch, &decs[j]); err != nil {
					b.Fatal(err)
				}
			}
			decisions += len(decs)
		}
		t := time.Now()
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
		commit += time.Since(t)
		batch.Discard()
	}
	b.StopTimer()
	b.ReportMetric(float64(decisions)/float64(b.N), "decisions/row")
	b.ReportMetric(float64(commit.Nanoseconds())/float64(b.N), "commit-ns/row")
	points, size := 0, 0
	for _, sl := range g.slots {
		sc, err := st.Scores(sl.state.OrderID)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range sc {
			points, size = points+1, size+len(v)
		}
	}
	if points > 0 {
		b.ReportMetric(float64(size)/float64(points), "score-B/point")
	}
}
