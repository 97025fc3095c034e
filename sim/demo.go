package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// PublishFunc sends one encoded event; subject is features.Subject(type, order) and msgID
// the event id (the Nats-Msg-Id). data is valid only during the call. It may be
// called again with the same arguments after it returned an error.
type PublishFunc func(ctx context.Context, subject, msgID string, data []byte) error

// DefaultFaults are the delivery faults of the live demo and the defaults of
// `orderwatch simulate`: a bus that is good, not perfect.
var DefaultFaults = Faults{Duplicates: 0.002, OutOfOrder: 0.005, Late: 0.002}

// DemoOptions configures a Demo. The zero value is usable.
type DemoOptions struct {
	Seed  int64            // 0 means 1; part of every event and order id: use a fresh one per start
	Rate  float64          // average live events per second around midday; 0 means 40
	Clock func() time.Time // nil means time.Now; event times follow it
	// Start is the demo's start: what the network did before it is the warm-up
	// and the backlog, what it does after it is released as the clock reaches
	// it. Zero means the clock when Run starts. `run --demo` gives the pipeline
	// the same instant, to score the backlog on its own time.
	Start    time.Time
	BadEvery int          // after every N-1 events one deliberately malformed message (to show the DLQ); 0 = never
	Logger   *slog.Logger // nil = discard
	Scenario Scenario     // "" means Normal
	// Faults are the delivery faults; nil means DefaultFaults.
	Faults *Faults
	// Warmup is the network history simulated before now at full speed, so the
	// demo starts with queues, holds and orders near their cutoffs. 0 means 6 h at
	// 40 events/s, less at higher rates (at least 1 h).
	Warmup time.Duration
	// BacklogRate bounds the events per second published while catching up with
	// the clock; 0 means 2000.
	BacklogRate float64
	// Drill, when positive, opens the live stream with a WMS outage of that length
	// at the busiest staffed warehouse, reported at once: the orders of that site
	// then meet the automatic rules within the demo's first minute, whatever the
	// seed. 0 means none.
	Drill time.Duration
}

const (
	// eventsPerScale is the simulator's event rate around midday on a weekday at
	// scale 1 (measured): the demo's scale is Rate divided by it.
	eventsPerScale = 0.75
	// Of the warm-up, the orders created in its last minutes are published in full,
	// and revealShare of the older ones; the others are simulated (they fill the
	// warehouses and docks) but not published. The window is sized for a backlog of
	// about backlogEvents: an order has about 0.36 events per second of the rate
	// published per second of the window by the time the backlog ends.
	backlogEvents = 20000
	revealShare   = 0.01
	// demoLocalHour is the network's HQ time at the start of the demo: the
	// afternoon, when most pickups are (at 10:00 there were almost none in the
	// first minutes).
	demoLocalHour = 15
	// Of the older orders, those whose ship cutoff falls from nearBefore before the
	// start to nearAfter after it are revealed at a higher share, sized for a
	// backlog of about nearEvents of their history. Their picks, shipments and
	// cutoffs passing are what the first minutes show.
	nearBefore     = time.Hour
	nearAfter      = 90 * time.Minute
	nearEvents     = 19000
	probeScale     = 10
	publishRetries = 4
)

// Demo is the live demo feed of `orderwatch run --demo`: the simulator run in real
// time. It simulates the last hours before now at full speed, so warehouses, docks
// and offices are busy when it starts, and publishes part of that history as a
// backlog (about 32,000 events): the orders created in the last minutes, a share
// of the older orders whose ship cutoff falls from an hour before the start to
// 90 minutes after it (sized so that their history is about 19,000 events; the
// orders of the cutoffs before the start show outcomes at once, judged on the
// scores they had 2 h before their cutoffs when the pipeline scores the backlog
// on its own time, as `run --demo` does), and 1% of the other older ones, each
// with its whole history; then it releases each event when the clock
// reaches it. Other orders stay unpublished (a network at 40 events/s has about
// 100,000 open orders: too many to replay at the start). The network is scaled so
// that the live stream averages about Rate events per second around midday, and
// its clocks are moved so that it is a weekday afternoon at the network's HQ when
// the demo starts, when the trucks come: the first minutes show orders picked,
// shipped and missing their cutoffs, not only orders arriving.
//
// A Demo is not safe for concurrent use: call Run from one goroutine, once.
type Demo struct {
	seed        int64
	start       time.Time
	rate        float64
	badEvery    uint64
	clock       func() time.Time
	log         *slog.Logger
	scenario    Scenario
	faults      Faults
	warmup      time.Duration
	backlogRate float64
	drill       time.Duration
	backoff     time.Duration // first publish retry delay, doubled per attempt
	sleep       func(ctx context.Context, d time.Duration) error

	sent, bad  uint64
	backlogAt  time.Time // wall time the backlog pacing started
	backlogN   float64
	liveLogged bool
}

// NewDemo returns a demo feed with opts' defaults applied.
func NewDemo(opts DemoOptions) *Demo {
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if !(opts.Rate > 0) {
		opts.Rate = 40
	}
	opts.Rate = min(opts.Rate, 1e5)
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Scenario == "" {
		opts.Scenario = Normal
	}
	faults := DefaultFaults
	if opts.Faults != nil {
		faults = *opts.Faults
	}
	if opts.Warmup <= 0 {
		opts.Warmup = time.Duration(float64(6*time.Hour) * min(1, 40/opts.Rate))
		opts.Warmup = max(opts.Warmup, time.Hour).Round(time.Minute)
	}
	if !(opts.BacklogRate > 0) {
		opts.BacklogRate = 2000
	}
	return &Demo{
		seed: opts.Seed, start: opts.Start, rate: opts.Rate, badEvery: uint64(max(opts.BadEvery, 0)),
		clock: opts.Clock, log: opts.Logger.With("component", "sim"),
		scenario: opts.Scenario, faults: faults, warmup: opts.Warmup,
		backlogRate: opts.BacklogRate, drill: opts.Drill, backoff: 100 * time.Millisecond, sleep: sleepCtx,
	}
}

// simulator builds the simulator of a demo starting at now. The share of the older
// orders near their cutoffs that it reveals is measured first: a probe simulates the
// warm-up of a smaller network (at most probeScale) revealing all of them, and the
// share is what keeps their history near nearEvents at the demo's scale (how many
// there are depends on the pickups around the start).
func (d *Demo) simulator(ctx context.Context, now time.Time) (*Simulator, error) {
	scale := min(max(d.rate/eventsPerScale, 0.05), 1000)
	build := func(scale float64, hideBefore time.Time, reveal, near float64, faults Faults) (*Simulator, error) {
		s, err := New(Options{
			Scenario: d.scenario,
			Seed:     uint64(d.seed),
			Start:    now,
			Warmup:   d.warmup,
			Scale:    scale,
			Faults:   faults,
		})
		if err != nil {
			return nil, err
		}
		s.hideBefore = hideBefore.UnixMilli()
		s.reveal, s.revealNear = reveal, near
		s.nearFrom, s.nearTo = now.Add(-nearBefore).UnixMilli(), now.Add(nearAfter).UnixMilli()
		// Incidents to show: trading partners' map breaks (the first within the
		// demo's first office hours) and outages that reach the orders waiting
		// for a wave, whatever the scenario.
		s.p.mapBreaks, s.p.outageNotes = MapBreaksPerDay, true
		s.shiftZones(localShift(now))
		return s, nil
	}
	pscale := min(scale, probeScale)
	probe, err := build(pscale, now, 0, 1, Faults{})
	if err != nil {
		return nil, err
	}
	var n float64
	errEnough := errors.New("sim: probe done")
	err = probe.Run(ctx, func(ev *Emitted) error {
		if !ev.EmittedAt.Before(now) {
			return errEnough
		}
		n++
		return nil
	})
	if !errors.Is(err, errEnough) {
		if err == nil {
			err = errors.New("sim: the demo's probe ended before the start")
		}
		return nil, err
	}
	window := time.Duration(backlogEvents / (0.36 * d.rate) * float64(time.Second))
	window = min(max(window, 2*time.Minute), time.Hour, d.warmup)
	s, err := build(scale, now.Add(-window), revealShare, min(nearEvents/max(n*scale/pscale, 1), 1), d.faults)
	if err != nil {
		return nil, err
	}
	s.drillFor = d.drill.Milliseconds()
	return s, nil
}

// localShift returns whole hours that move the HQ clock at now to about
// demoLocalHour (up to 18:00 where the offsets do not allow it), within the range
// that keeps every warehouse's UTC offset within ±12 h,
// and days that make a weekend day at HQ a Tuesday or Wednesday for the calendars.
func localShift(now time.Time) (time.Duration, int) {
	z := zoneCentral
	_, _, ms := z.local(now.UnixMilli())
	h := int(ms / msHour)
	shift := ((demoLocalHour-h)%24 + 24) % 24
	if shift > 16 {
		shift = max(shift-24, -4)
	}
	z.shift = int64(shift) * msHour
	days := 0
	switch _, wd, _ := z.local(now.UnixMilli()); wd {
	case 0: // Sunday: a Tuesday
		days = 2
	case 6: // Saturday: a Wednesday
		days = 4
	}
	return time.Duration(shift) * time.Hour, days
}

// Run publishes the demo stream until ctx is done, then returns nil. A failed
// publish is retried a few times with backoff; if it still fails, Run returns the
// error wrapped.
func (d *Demo) Run(ctx context.Context, publish PublishFunc) error {
	now := d.start
	if now.IsZero() {
		now = d.clock()
	}
	s, err := d.simulator(ctx, now)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	d.log.Info("demo feed started", "seed", d.seed, "rate", d.rate, "scenario", d.scenario, "warmup", d.warmup)
	d.backlogAt = time.Now()
	err = s.Run(ctx, func(ev *Emitted) error { return d.deliver(ctx, ev, publish) })
	d.log.Info("demo feed stopped", "published", d.sent, "malformed", d.bad)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// deliver waits for an event's time (or paces the backlog) and publishes it, with a
// malformed message now and then.
func (d *Demo) deliver(ctx context.Context, ev *Emitted, publish PublishFunc) error {
	if wait := ev.EmittedAt.Sub(d.clock()); wait > 0 {
		if !d.liveLogged {
			d.liveLogged = true
			d.log.Info("demo backlog published, now live", "published", d.sent)
		}
		for wait > 0 {
			if err := d.sleep(ctx, min(wait, time.Second)); err != nil {
				return err
			}
			wait = ev.EmittedAt.Sub(d.clock())
		}
	} else {
		d.backlogN++
		due := d.backlogAt.Add(time.Duration(d.backlogN / d.backlogRate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			if err := d.sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
	if d.badEvery > 0 && (d.sent+d.bad+1)%d.badEvery == 0 {
		subject, id, data := d.malformed()
		if err := d.publishRetry(ctx, publish, subject, id, data); err != nil {
			return err
		}
	}
	if err := d.publishRetry(ctx, publish, ev.Subject(), ev.ID(), ev.Data); err != nil {
		return err
	}
	d.sent++
	return nil
}

// malformed returns the next deliberately bad message, in turn: not JSON, an
// unknown event type, a hostile number (an on-time share of 1e308, which once
// stalled the pipeline) and a ship cutoff in the year 9999.
func (d *Demo) malformed() (subject, id string, data []byte) {
	d.bad++
	id = "e-" + strconv.FormatUint(uint64(d.seed), 36) + "-bad-" + strconv.FormatUint(d.bad, 10)
	at := d.clock().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	envelope := func(typ, orderID, data string) []byte {
		return []byte(`{"id":"` + id + `","type":"` + typ + `","order_id":"` + orderID + `","occurred_at":"` + at +
			`","source":"edi","actor":"edi-gw","schema":1,"data":` + data + `}`)
	}
	switch d.bad % 4 {
	case 1:
		return features.Subject(features.TypeOrderCreated, badOrder), id, []byte("{not json")
	case 2:
		return "orders.bogus.type." + badOrder, id, envelope("bogus.type", badOrder, "{}")
	case 3:
		return features.Subject(features.TypeCarrierPerformance, ""), id,
			envelope(features.TypeCarrierPerformance, "", `{"carrier":"FDXG","on_time_share":1e308}`)
	default:
		return features.Subject(features.TypeOrderChanged, badOrder), id,
			envelope(features.TypeOrderChanged, badOrder, `{"change":"cutoff","ship_cutoff":"9999-12-31T23:59:59Z"}`)
	}
}

// badOrder is the order of the demo's malformed events.
const badOrder = "SO-000000"

// publishRetry publishes one message, retrying failures with exponential backoff.
func (d *Demo) publishRetry(ctx context.Context, publish PublishFunc, subject, id string, data []byte) error {
	backoff := d.backoff
	for attempt := 1; ; attempt++ {
		err := publish(ctx, subject, id, data)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt > publishRetries {
			return fmt.Errorf("sim: publish %s to %s: %w", id, subject, err)
		}
		d.log.Debug("publish failed, retrying", "err", err, "attempt", attempt)
		if err := d.sleep(ctx, backoff); err != nil {
			return err
		}
		backoff *= 2
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
