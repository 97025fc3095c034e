// Package sim simulates a distribution network (warehouses with shifts and time
// zones, carriers with pickup schedules, customers, channels and the offices that
// resolve exceptions) as a discrete-event simulation on an event-time clock, and
// writes what happens as schema-1 order events with the ground truth of every order:
// whether it missed its ship cutoff, by how much and which exception class caused
// it. cmd/orderwatch imports it for `orderwatch simulate` and the live demo feed of
// `orderwatch run --demo`; tests import it for realistic traffic.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// DefaultStart is the simulation start when Options.Start is zero: a Monday, so that
// the same flags give the same bytes.
var DefaultStart = time.Date(2026, 5, 18, 0, 0, 0, 0, time.UTC)

// Options configures a Simulator. The zero value simulates an unlimited normal
// network of scale 1 from DefaultStart with seed 0 and no faults.
type Options struct {
	Scenario Scenario  // "" means Normal
	Orders   int64     // orders to publish; the run ends when all are finished. 0: no limit, until the context ends
	Seed     uint64    // seeds every random stream; part of every event and order id
	Start    time.Time // sim time of the first published order; zero means DefaultStart
	// Warmup is network history simulated before Start and not published, so the
	// stream begins with queues, holds and loaded docks, as on any day. 0: none, the
	// network starts empty.
	Warmup time.Duration
	Scale  float64   // network size: order arrivals, pickers, customers, trailers; 0 means 1
	Faults Faults    // delivery faults; zero means none
	Labels LabelFunc // receives each order's ground truth once it is finished; nil: none
	// Causes receives, once per order and cause, each shared cause (a warehouse
	// outage, a failed pickup, an EDI mapping failure, an expired price contract)
	// when the order gets an event about it; nil: none.
	Causes CauseFunc
}

// LabelFunc receives the ground truth of one order.
type LabelFunc func(Label)

// Label is the ground truth of one order, known once it is invoiced or cancelled.
//
// Missed: the order shipped after its ship cutoff, or was cancelled after it (it
// sat unshipped past the cutoff), or was still unshipped past it when the run
// ended. MinutesLate is the whole minutes (rounded up) from the cutoff to shipment,
// cancellation or the end, 0 when not missed.
//
// Class: for a missed order, the exception that delayed it most (its attributed
// delay: time on credit hold, until the price was approved, the mapping fixed, the
// ship-to corrected or the stock found; picking wait beyond the normal; the truck's
// lateness); a miss without any of these is warehouse_capacity. For an order in
// time, the first exception that happened to it (a credit hold, a pricing
// exception, a shortfall, a ship-to problem, a mapping failure, a delay in
// transit, an invoice failure), or none.
type Label struct {
	OrderID     string
	Missed      bool
	MinutesLate int64
	Class       string // one of features.ExceptionClasses
	Cancelled   bool
}

// Stats counts what a run produced.
type Stats struct {
	Events     int64 // delivered, duplicates included
	Duplicates int64
	OutOfOrder int64
	Late       int64
	Orders     int64 // created and published
	Labelled   int64 // finished and labelled
	Missed     int64
	Cancelled  int64
	// Classes counts labels by class, indexed like features.ExceptionClasses.
	Classes    [len(classNames)]int64
	Start, End time.Time // the sim time covered
}

// Exception classes, indexed like features.ExceptionClasses.
const (
	clsNone = iota
	clsCredit
	clsPricing
	clsInventory
	clsAddress
	clsEDI
	clsCarrier
	clsWarehouse
	clsInvoicing
	numClasses
)

var classNames = [numClasses]string{
	features.ExceptionNone, features.ExceptionCredit, features.ExceptionPricing,
	features.ExceptionInventory, features.ExceptionAddress, features.ExceptionEDIMapping,
	features.ExceptionCarrier, features.ExceptionWarehouseCapacity, features.ExceptionInvoicing,
}

// Simulator runs one simulation. Create it with New and call Run once, from one
// goroutine; it is not safe for concurrent use.
type Simulator struct {
	opts   Options
	p      params
	scale  float64
	seed36 []byte
	start  int64 // sim time of the start of the warm-up
	pubAt  int64 // Options.Start: the first published order
	end    int64 // stop at this sim time when > 0 (safety horizon)

	rNet, rOrd, rText *rand.Rand
	rInc              *rand.Rand // the Incidents scenario's map breaks and outage notices; unused without them

	now     int64
	q       eventQueue
	orders  []order
	free    []int32
	live    int   // order slots in use
	created int64 // orders created
	lastArr int64 // sim time of the last arrival

	hq        zone
	whs       [numWarehouses]whState
	cars      [numCarriers]carState
	pickups   []pickupState
	billing   []ref
	custs     []customer
	byChan    [numChannels][]int32   // customers by primary channel
	chanCum   [numChannels][]float64 // their cumulative order weights
	arrRate   [7][24][numChannels]float64
	arrMax    float64 // per ms
	demandDay int64   // HQ local day of demandMul
	demandMul [numChannels]float64
	serving   [numWarehouses][numKinds][]uint8
	stormWh   uint8 // warehouses hit by the current storm (bit mask)
	stormCar  [2]uint8
	stormEnd  int64
	outTurn   int // next warehouse of a big outage

	// Orders created before hideBefore (in the warm-up) are simulated but not
	// published, except a share reveal of them (the live demo's backlog).
	hideBefore int64
	reveal     float64
	// Of the hidden orders, a share revealNear of those whose ship cutoff falls in
	// [nearFrom, nearTo) is published instead of reveal (the demo's older orders
	// whose shipments and outcomes fall in its first minutes).
	revealNear       float64
	nearFrom, nearTo int64
	// drillFor, when positive, is a WMS outage of that many milliseconds at the
	// busiest staffed warehouse when publishing starts (the demo's opening drill).
	drillFor int64

	em      emitter
	stats   Stats
	nEvents uint64
	buf     []byte
	tbuf    []byte
	skip    bool
	first   bool
	typ     evType
	idLen   int
	err     error
	ran     bool
}

// New returns a simulator for opts, validated and with defaults applied.
func New(opts Options) (*Simulator, error) {
	if opts.Scenario == "" {
		opts.Scenario = Normal
	}
	if _, err := ParseScenario(string(opts.Scenario)); err != nil {
		return nil, err
	}
	if opts.Orders < 0 {
		return nil, invalidf("Orders %d: want >= 0", opts.Orders)
	}
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	if !(opts.Scale >= 0.05 && opts.Scale <= 1000) {
		return nil, invalidf("Scale %v: want 0.05..1000", opts.Scale)
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	if y := opts.Start.Year(); y < 2000 || y > 2098 {
		return nil, invalidf("Start %s: want a year in 2000..2098", opts.Start.Format(time.RFC3339))
	}
	if opts.Warmup < 0 || opts.Warmup > 30*24*time.Hour {
		return nil, invalidf("Warmup %v: want 0..720h", opts.Warmup)
	}
	if err := opts.Faults.validate(); err != nil {
		return nil, err
	}
	s := &Simulator{
		opts:       opts,
		p:          opts.Scenario.params(),
		scale:      opts.Scale,
		seed36:     strconv.AppendUint(nil, opts.Seed, 36),
		start:      opts.Start.Add(-opts.Warmup).UnixMilli(),
		pubAt:      opts.Start.UnixMilli(),
		rNet:       rand.New(rand.NewPCG(opts.Seed, 0x6e6574)),
		rOrd:       rand.New(rand.NewPCG(opts.Seed, 0x6f7264)),
		rText:      rand.New(rand.NewPCG(opts.Seed, 0x747874)),
		rInc:       rand.New(rand.NewPCG(opts.Seed, 0x6d6170)),
		hq:         zoneCentral,
		hideBefore: math.MinInt64,
		buf:        make([]byte, 0, 1024),
		tbuf:       make([]byte, 0, 256),
	}
	s.em = emitter{f: opts.Faults, r: rand.New(rand.NewPCG(opts.Seed, 0x666c74)), stats: &s.stats}
	s.em.any = opts.Faults != Faults{}
	s.now = s.start
	if opts.Warmup > 0 {
		s.hideBefore = opts.Start.UnixMilli()
	}
	s.stats.Start = opts.Start.UTC()
	return s, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}

// shiftZones moves every clock of the network by d (whole hours) and its calendar
// by days: a live demo puts the network where it is a weekday morning.
func (s *Simulator) shiftZones(d time.Duration, days int) {
	s.hq.shift, s.hq.days = d.Milliseconds(), int64(days)
}

// Run simulates until Options.Orders orders are finished (every one labelled), the
// context ends or emit fails, delivering every event to emit in delivery order. It
// returns nil when the simulation completed, ctx.Err() when the context ended and
// emit's error when emit failed. Run may be called once.
func (s *Simulator) Run(ctx context.Context, emit EmitFunc) error {
	if s.ran {
		return errors.New("sim: Run called twice")
	}
	s.ran = true
	s.em.sink = emit
	s.build()
	for n := 0; ; n++ {
		if n&511 == 0 {
			if err := ctx.Err(); err != nil {
				s.stats.End = time.UnixMilli(s.now).UTC()
				return err
			}
		}
		if s.opts.Orders > 0 && s.stats.Orders >= s.opts.Orders && s.live == 0 {
			break
		}
		if s.end > 0 && s.q.peek().at > s.end {
			s.labelUnfinished()
			break
		}
		it := s.q.pop()
		s.now = it.at
		s.dispatch(&it)
		if s.err != nil {
			return s.err
		}
	}
	s.stats.End = time.UnixMilli(s.now).UTC()
	return s.em.flush(s.now)
}

// Stats returns what the run produced so far.
func (s *Simulator) Stats() Stats { return s.stats }
