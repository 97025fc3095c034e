// Package sim generates realistic order event streams for orderwatch: a small
// distribution network (warehouses, carriers, customers) whose orders move through
// their lifecycle with plausible exceptions. cmd/orderwatch imports it for demos and
// simulation; tests import it for traffic.
package sim

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// PublishFunc sends one encoded event; subject is features.Subject(type) and msgID
// the event id (the Nats-Msg-Id). It may be called again with the same arguments
// after it returned an error.
type PublishFunc func(ctx context.Context, subject, msgID string, data []byte) error

// DemoOptions configures a Demo. The zero value is usable.
type DemoOptions struct {
	Seed     int64            // 0 means 1
	Rate     float64          // events per second, 0 means 50
	Clock    func() time.Time // nil means time.Now; event times come from it
	BadEvery int              // every Nth message is deliberately malformed (to show the DLQ); 0 = never
	Logger   *slog.Logger     // nil = discard
}

const (
	maxOpen        = 500                   // open orders kept in memory
	busyOpen       = maxOpen * 9 / 10      // from here on, steps are pulled forward to hold the rate
	eventsPerOrder = 8                     // on average; sets the order arrival rate
	minTick        = 10 * time.Millisecond // finest ticker interval; faster rates send bursts
	publishRetries = 4
	timeLayout     = "2006-01-02T15:04:05.000Z07:00"
)

// Demo is a live demo feed, the walking skeleton of the simulator. Lifecycles run in
// accelerated time so a viewer sees orders created, held, picked, shipped and
// invoiced within a few minutes; a few percent crawl, stall on credit hold or hit
// exceptions, and drift toward or past their cutoff. The stream ramps up over its
// first minute and then runs near, never above, the rate. Open orders are capped, so
// from about 100 events/s on lifecycles compress (to a second or so at 200/s).
//
// A Demo is not safe for concurrent use: call Run from one goroutine at a time.
type Demo struct {
	seed       int64
	rate       float64
	badEvery   uint64
	clock      func() time.Time
	log        *slog.Logger
	backoff    time.Duration // first publish retry delay, doubled per attempt
	contextGap time.Duration // between two context events

	rng         *rand.Rand
	customers   []customer
	whs         [len(warehouseCodes)]warehouse
	cars        [len(carrierCodes)]carrier
	open        []*order // sorted by due time, see schedule
	n           uint64   // messages generated, good and bad
	orders      int      // orders created
	nextCreate  time.Time
	nextContext time.Time
	contextTurn int
}

// NewDemo returns a demo feed with opts' defaults applied.
func NewDemo(opts DemoOptions) *Demo {
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if !(opts.Rate > 0) {
		opts.Rate = 50
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rate := min(max(opts.Rate, 0.01), 1e6)
	d := &Demo{
		seed:       opts.Seed,
		rate:       rate,
		badEvery:   uint64(max(opts.BadEvery, 0)),
		clock:      opts.Clock,
		log:        opts.Logger.With("component", "sim"),
		backoff:    100 * time.Millisecond,
		contextGap: max(time.Second, time.Duration(10/rate*float64(time.Second))),
		rng:        rand.New(rand.NewPCG(uint64(opts.Seed), 0x6f726465727761)),
	}
	for i := range d.whs {
		d.whs[i] = warehouse{capacity: 300 + 50*i, queue: 100 + d.rng.IntN(100)}
	}
	for i := range d.cars {
		d.cars[i] = carrier{onTime: 0.85 + 0.1*d.rng.Float64()}
	}
	for i := range 40 {
		c := customer{id: "C-" + strconv.Itoa(1001+i), channel: pick(d.rng, channels)}
		c.tier = weighted(d.rng, tiers, 50, 25, 15, 10)
		c.wh = d.rng.IntN(len(warehouseCodes))
		c.region = pick(d.rng, regions[c.wh])
		d.customers = append(d.customers, c)
	}
	return d
}

// Run publishes a plausible live stream at the configured rate and blocks until ctx
// is done, then returns nil. A failed publish is retried a few times with backoff; if
// it still fails, Run returns the error wrapped.
func (d *Demo) Run(ctx context.Context, publish PublishFunc) error {
	interval, perTick := time.Duration(float64(time.Second)/d.rate), 1.0
	if interval < minTick {
		interval, perTick = minTick, d.rate*minTick.Seconds()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	d.log.Info("demo feed started", "seed", d.seed, "rate", d.rate)
	sent, credit := 0, 0.0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		// A slow publisher makes the ticker drop ticks, and a slot passes without an
		// event when nothing is due: Rate is an upper bound.
		for credit += perTick; credit >= 1; credit-- {
			subject, id, data, ok := d.next(d.clock())
			if !ok {
				continue
			}
			if err := d.publishRetry(ctx, publish, subject, id, data); err != nil {
				if ctx.Err() != nil {
					break loop
				}
				return fmt.Errorf("sim: publish %s to %s: %w", id, subject, err)
			}
			sent++
		}
	}
	d.log.Info("demo feed stopped", "published", sent)
	return nil
}

// publishRetry publishes one message, retrying failures with exponential backoff.
func (d *Demo) publishRetry(ctx context.Context, publish PublishFunc, subject, id string, data []byte) error {
	backoff := d.backoff
	for attempt := 1; ; attempt++ {
		err := publish(ctx, subject, id, data)
		if err == nil || attempt > publishRetries || ctx.Err() != nil {
			return err
		}
		d.log.Debug("publish failed, retrying", "err", err, "attempt", attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// next generates the message sent at now, or reports false if nothing happens at
// now. It is the whole generator, free of timing: the same seed and sequence of now
// values give the same messages.
func (d *Demo) next(now time.Time) (subject, id string, data []byte, ok bool) {
	now = now.UTC().Truncate(time.Millisecond)
	var ev wireEvent
	bad := d.badEvery > 0 && (d.n+1)%d.badEvery == 0
	if bad {
		ev = wireEvent{Type: "bogus.type", OrderID: "SO-000000", Source: "edi", Actor: "edi-gw"}
	} else if ev, ok = d.generate(now); !ok {
		return "", "", nil, false
	}
	d.n++
	ev.ID, ev.OccurredAt, ev.Schema = fmt.Sprintf("e-%d-%d", d.seed, d.n), now.Format(timeLayout), features.SchemaVersion
	if bad && (d.n/d.badEvery)%2 == 1 {
		return features.Subject(features.TypeOrderCreated), ev.ID, []byte("{not json"), true
	}
	return features.Subject(ev.Type), ev.ID, mustJSON(ev), true
}

// generate picks what happens at now: a due context report, a new order arriving, a
// due order step. Orders arrive so that the stream settles near the rate after a
// minute's ramp-up; when the network is busy and nothing is due, the next step is
// pulled forward to hold the rate.
func (d *Demo) generate(now time.Time) (wireEvent, bool) {
	switch {
	case !now.Before(d.nextContext):
		d.nextContext = now.Add(d.contextGap)
		return d.contextEvent(), true
	case len(d.open) < maxOpen && !now.Before(d.nextCreate):
		mean := eventsPerOrder / d.rate * float64(time.Second)
		d.nextCreate = now.Add(time.Duration(d.rng.ExpFloat64() * mean))
		return d.create(now), true
	case len(d.open) > 0 && !d.open[0].due.After(now), len(d.open) >= busyOpen:
		return d.advance(now), true
	}
	return wireEvent{}, false
}

func (d *Demo) create(now time.Time) wireEvent {
	r := d.rng
	d.orders++
	c := d.customers[r.IntN(len(d.customers))]
	// The seed is part of the order id so runs with different seeds never share an order.
	o := &order{id: "SO-" + strconv.FormatInt(d.seed, 36) + "-" + strconv.Itoa(100000+d.orders), seq: d.orders, wh: c.wh, carrier: r.IntN(len(carrierCodes))}
	o.service = weighted(r, serviceLevels, 50, 20, 10, 20)
	pace := time.Duration(1000+r.IntN(5000)) * time.Millisecond // mean time between steps
	cutoffIn := time.Duration(45+r.IntN(435)) * time.Minute
	switch x := r.Float64(); {
	case x < 0.007: // a rush order that crawls and will likely miss its cutoff
		pace = time.Duration(120+r.IntN(180)) * time.Second
		cutoffIn = time.Duration(15+r.IntN(10)) * time.Minute
	case x < 0.25:
		cutoffIn = time.Duration(15+r.IntN(30)) * time.Minute
	}
	cutoff := now.Add(cutoffIn).Truncate(time.Minute)
	promised := cutoff.Add(time.Duration(1+r.IntN(4)) * 24 * time.Hour)
	o.lines = 1 + r.IntN(30)
	o.units = o.lines * (1 + r.IntN(24))
	o.value = cents(float64(o.units) * (3 + 120*r.Float64()))
	o.script = d.script(pace)
	o.due = now.Add(o.script[0].delay)
	d.schedule(o)

	src := channelSources[c.channel]
	return wireEvent{Type: features.TypeOrderCreated, OrderID: o.id, Source: src[0], Actor: numbered(r, src[1]),
		Data: features.EventData{
			Warehouse: warehouseCodes[o.wh], ShipCutoff: &cutoff, CustomerID: c.id,
			CustomerTier: c.tier, Channel: c.channel, Lines: o.lines, Units: o.units,
			Value: o.value, Carrier: carrierCodes[o.carrier], ServiceLevel: o.service,
			PromisedAt: &promised, Region: c.region,
		}}
}

// script decides an order's lifecycle after its creation.
func (d *Demo) script(pace time.Duration) []step {
	r := d.rng
	var s []step
	add := func(typ, reason string, f float64) {
		s = append(s, step{typ: typ, reason: reason, delay: time.Duration(f * float64(pace) * (0.5 + r.Float64()))})
	}
	if r.Float64() < 0.06 {
		add(features.TypeCreditHold, pick(r, holdReasons), 1)
		if r.Float64() < 0.1 { // never released: sits on hold past its cutoff, then is cancelled
			return append(s,
				step{typ: features.TypeNoteAdded, text: pick(r, holdNotes), delay: time.Duration(1+r.IntN(3)) * time.Minute},
				step{typ: features.TypeOrderCancelled, reason: "credit_not_released", delay: time.Duration(6+r.IntN(10)) * time.Minute})
		}
		add(features.TypeCreditReleased, "", 10)
	}
	if r.Float64() < 0.06 {
		add(features.TypePricingException, pick(r, pricingReasons), 1)
		add(features.TypePricingApproved, "", 8)
	}
	switch x := r.Float64(); {
	case x < 0.05:
		add(features.TypeAllocationShort, pick(r, shortReasons), 1)
		add(features.TypeAllocationChanged, pick(r, reallocReasons), 6)
	case x < 0.10:
		add(features.TypeAllocationShort, pick(r, shortReasons), 1)
		add(features.TypeOrderChanged, "substitution", 6)
	default:
		add(features.TypeInventoryAllocated, "", 1)
	}
	add(features.TypePickReleased, "", 1)
	add(features.TypePickConfirmed, "", 2)
	add(features.TypePackConfirmed, "", 1)
	// Interruptions land after the first step and before shipment.
	insert := func(typ, reason string) {
		s = slices.Insert(s, 1+r.IntN(len(s)), step{typ: typ, reason: reason, delay: pace})
	}
	if r.Float64() < 0.05 {
		insert(features.TypeOrderChanged, pick(r, changeKinds))
	}
	if r.Float64() < 0.06 {
		insert(features.TypeIntegrationError, "")
	}
	if r.Float64() < 0.06 {
		insert(features.TypeNoteAdded, "")
	}
	if r.Float64() < 0.02 {
		s = s[:1+r.IntN(len(s))]
		add(features.TypeOrderCancelled, pick(r, cancelReasons), 1)
		return s
	}
	add(features.TypeShipmentConfirmed, "", 2)
	if r.Float64() < 0.35 {
		add(features.TypeCarrierStatus, "", 3)
	}
	if r.Float64() < 0.04 {
		add(features.TypeInvoiceFailed, "", 1)
		add(features.TypeInvoiceCreated, "", 10)
	} else {
		add(features.TypeInvoiceCreated, "", 1)
	}
	return s
}

// advance emits the next step of the order due first and reschedules or forgets it.
func (d *Demo) advance(now time.Time) wireEvent {
	o := d.open[0]
	st := o.script[0]
	o.script = o.script[1:]
	d.open = slices.Delete(d.open, 0, 1)
	ev := d.orderEvent(o, st)
	if len(o.script) > 0 {
		delay := o.script[0].delay
		if d.whs[o.wh].outage > 0 {
			delay *= 4
		}
		o.due = now.Add(delay)
		d.schedule(o)
	}
	return ev
}

func (d *Demo) orderEvent(o *order, st step) wireEvent {
	r := d.rng
	src := sources[st.typ]
	ev := wireEvent{Type: st.typ, OrderID: o.id, Source: src[0], Actor: numbered(r, src[1])}
	dt := &ev.Data
	dt.Reason, dt.Text = st.reason, st.text
	switch st.typ {
	case features.TypeCreditHold, features.TypeInvoiceCreated:
		dt.Value = o.value
	case features.TypeInventoryAllocated, features.TypeAllocationShort, features.TypeAllocationChanged:
		if st.typ == features.TypeAllocationShort {
			dt.ShortUnits = 1 + r.IntN(max(1, o.units/3))
		}
		if st.reason == "reallocated" { // to another warehouse
			o.wh = (o.wh + 1 + r.IntN(len(warehouseCodes)-1)) % len(warehouseCodes)
		}
		dt.Warehouse, dt.Lines, dt.Units = warehouseCodes[o.wh], o.lines, o.units
	case features.TypeOrderChanged:
		dt.Change, dt.Reason, dt.Text = st.reason, "", fill(r, changeTexts[st.reason])
		if st.reason == "quantity" {
			o.units += 1 + r.IntN(24)
			dt.Units = o.units
		}
	case features.TypePickReleased, features.TypePickConfirmed, features.TypePackConfirmed:
		dt.Warehouse, dt.Units = warehouseCodes[o.wh], o.units
	case features.TypeShipmentConfirmed:
		dt.Warehouse, dt.Carrier, dt.ServiceLevel = warehouseCodes[o.wh], carrierCodes[o.carrier], o.service
	case features.TypeCarrierStatus:
		ev.Actor = strings.ToLower(carrierCodes[o.carrier]) + "-api"
		dt.Carrier, dt.Text = carrierCodes[o.carrier], fill(r, pick(r, carrierTexts))
	case features.TypeInvoiceFailed:
		f := invoiceFailures[r.IntN(len(invoiceFailures))]
		dt.Code, dt.Text = f.code, fill(r, f.text)
	case features.TypeIntegrationError:
		f := integrationErrors[r.IntN(len(integrationErrors))]
		ev.Source, ev.Actor = f.system, f.system+"-gw"
		dt.System, dt.Code, dt.Text = f.system, f.code, fill(r, f.text)
	case features.TypeNoteAdded:
		if dt.Text == "" {
			dt.Text = fill(r, pick(r, notes))
		}
	case features.TypeOrderCancelled:
		if st.reason == "credit_not_released" {
			ev.Source, ev.Actor = "finance", "credit-engine"
		}
	}
	return ev
}

// contextEvent reports on the next warehouse or carrier in turn, each a random walk.
func (d *Demo) contextEvent() wireEvent {
	r := d.rng
	i := d.contextTurn % (len(d.whs) + len(d.cars))
	d.contextTurn++
	if i < len(d.whs) {
		w := &d.whs[i]
		switch {
		case w.outage > 0:
			w.outage--
			w.queue += 20 + r.IntN(20)
		case r.Float64() < 0.02:
			w.outage = 5 + r.IntN(10)
		default:
			w.queue += r.IntN(41) - 20
		}
		w.queue = min(max(w.queue, 0), 3*w.capacity)
		return wireEvent{Type: features.TypeWarehouseLoad, Source: "wms", Actor: "wms-monitor",
			Data: features.EventData{Warehouse: warehouseCodes[i], Queue: w.queue, Capacity: w.capacity, Outage: w.outage > 0}}
	}
	i -= len(d.whs)
	c := &d.cars[i]
	c.onTime = min(max(c.onTime+0.04*(r.Float64()-0.5), 0.6), 0.99)
	share := cents(c.onTime)
	delay := math.Round((1-c.onTime)*2000*(0.5+r.Float64())) / 10 // minutes, late loads
	return wireEvent{Type: features.TypeCarrierPerformance, Source: "tms", Actor: "carrier-scorecard",
		Data: features.EventData{Carrier: carrierCodes[i], OnTimeShare: &share, DelayMinutes: delay}}
}

// wireEvent is features.Event as producers encode it, occurred_at with millisecond
// precision as in DESIGN.md.
type wireEvent struct {
	ID         string             `json:"id"`
	Type       string             `json:"type"`
	OrderID    string             `json:"order_id,omitempty"`
	OccurredAt string             `json:"occurred_at"`
	Source     string             `json:"source"`
	Actor      string             `json:"actor"`
	Schema     int                `json:"schema"`
	Data       features.EventData `json:"data"`
}

func mustJSON(ev wireEvent) []byte {
	b, err := json.Marshal(ev)
	if err != nil { // only strings, ints, finite floats and times: cannot happen
		panic("sim: encode event: " + err.Error())
	}
	return b
}

type (
	warehouse struct{ queue, capacity, outage int } // outage: load reports left
	carrier   struct{ onTime float64 }
	customer  struct {
		id, tier, channel, region string
		wh                        int
	}
	step struct {
		typ, reason, text string
		delay             time.Duration // after the previous step
	}
	order struct {
		id, service                    string
		seq, wh, carrier, lines, units int // seq: creation order, breaks ties of due
		value                          float64
		script                         []step // what is left to happen
		due                            time.Time
	}
)

// schedule files o among the open orders, which are sorted by due time, then by
// creation so that ties resolve deterministically.
func (d *Demo) schedule(o *order) {
	i, _ := slices.BinarySearchFunc(d.open, o, func(a, b *order) int {
		return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.seq, b.seq))
	})
	d.open = slices.Insert(d.open, i, o)
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

func weighted(r *rand.Rand, xs []string, weights ...int) string {
	n := r.IntN(100) // weights sum to 100
	for i, w := range weights {
		if n -= w; n < 0 {
			return xs[i]
		}
	}
	return xs[len(xs)-1]
}

// fill replaces {n} in a free-text template with a plausible document number.
func fill(r *rand.Rand, text string) string {
	return strings.ReplaceAll(text, "{n}", strconv.Itoa(10000+r.IntN(90000)))
}

// numbered replaces # in an actor name with a small number: one of several people
// or devices.
func numbered(r *rand.Rand, actor string) string {
	return strings.Replace(actor, "#", strconv.Itoa(1+r.IntN(20)), 1)
}

func cents(x float64) float64 { return math.Round(x*100) / 100 }

// The network and its vocabulary. Read-only.
var (
	warehouseCodes = [...]string{"DAL", "ATL", "RNO"}
	carrierCodes   = [...]string{"ODFL", "UPSF", "XPO"}
	regions        = [len(warehouseCodes)][]string{{"TX", "OK", "LA", "AR"}, {"GA", "FL", "NC", "TN"}, {"NV", "CA", "OR", "UT"}}
	tiers          = []string{"standard", "silver", "gold", "platinum"}
	channels       = []string{"edi", "portal", "ecommerce", "customer_service"}
	serviceLevels  = []string{"ground", "2day", "next_day", "ltl"}
	holdReasons    = []string{"over_limit", "past_due", "new_account_review"}
	pricingReasons = []string{"price_mismatch", "contract_expired", "below_margin_floor"}
	shortReasons   = []string{"stockout", "damaged", "cycle_count_variance"}
	reallocReasons = []string{"reallocated", "backorder_filled"}
	cancelReasons  = []string{"customer_request", "duplicate_po"}
	changeKinds    = []string{"substitution", "quantity", "address"}

	sources = map[string][2]string{ // order event type → source, actor ("#": a small number)
		features.TypeOrderChanged: {"cs", "cs-agent-#"}, features.TypeNoteAdded: {"cs", "cs-agent-#"},
		features.TypeOrderCancelled: {"cs", "cs-agent-#"}, features.TypeCreditHold: {"finance", "credit-engine"},
		features.TypeCreditReleased: {"finance", "ar-analyst-#"}, features.TypeInvoiceCreated: {"finance", "billing-run"},
		features.TypeInvoiceFailed: {"finance", "billing-run"}, features.TypePricingException: {"erp", "pricing-engine"},
		features.TypePricingApproved: {"erp", "pricing-desk"}, features.TypeInventoryAllocated: {"erp", "atp"},
		features.TypeAllocationShort: {"erp", "atp"}, features.TypeAllocationChanged: {"erp", "atp"},
		features.TypePickReleased: {"wms", "wave-planner"}, features.TypePickConfirmed: {"wms", "scanner-#"},
		features.TypePackConfirmed: {"wms", "pack-station-#"}, features.TypeShipmentConfirmed: {"tms", "tms-dispatch"},
		features.TypeCarrierStatus: {"tms", "carrier-api"},
	}
	channelSources = map[string][2]string{"edi": {"edi", "edi-gw"}, "portal": {"erp", "b2b-portal"},
		"ecommerce": {"erp", "webshop"}, "customer_service": {"cs", "cs-agent-#"}}

	changeTexts = map[string]string{
		"substitution": "Substituted SKU {n} with equivalent item, case pack 12",
		"quantity":     "Customer increased quantity per revised PO {n}",
		"address":      "Ship-to changed to store {n}, receiving hours 06:00-14:00",
	}
	carrierTexts = []string{"Picked up, PRO {n}", "Departed origin terminal", "Arrived at destination terminal",
		"Delay: weather at Memphis hub, ETA +1 day", "Out for delivery", "Appointment required, awaiting consignee callback",
		"Delivery exception: consignee closed, reattempt next business day"}
	notes = []string{"Customer called, needs delivery before Friday store reset", "Liftgate required at delivery",
		"Buyer asked to hold shipment until PO revision {n} arrives", "Expedite requested by account manager",
		"Customer reports possible duplicate of PO {n}, checking", "Dock appointment required, call 30 min ahead"}
	holdNotes = []string{"Customer disputes past-due balance, AR reviewing, do not release",
		"Credit limit increase requested, waiting on CFO approval"}
	integrationErrors = []struct{ system, code, text string }{
		{"edi", "855_MAP", "EDI 855 map fail seg PO1 qty UOM 'CSE' unknown"},
		{"edi", "856_REJ", "EDI 856 ASN rejected by partner: missing SSCC-18 in HL loop"},
		{"edi", "997_LATE", "997 not received within 4h for 855 ctrl# {n}"},
		{"wms", "WAVE_TIMEOUT", "WMS wave release timeout after 30s, order not released"},
		{"wms", "ITEM_MISSING", "WMS item master missing for SKU {n}, pick task not created"},
		{"tms", "RATE_FAIL", "TMS rate shop failed: no LTL rate for destination zone 8"},
		{"erp", "IDOC_51", "ERP IDoc ORDERS05 status 51: sales document {n} locked by user"},
	}
	invoiceFailures = []struct{ code, text string }{
		{"PRICE_MISMATCH", "Invoice rejected by customer portal: PO line {n} price mismatch"},
		{"TAX_ADDR", "Tax calculation failed: ship-to address not validated"},
		{"EDI810_REJ", "EDI 810 rejected: invoice total does not match ASN"},
	}
)
