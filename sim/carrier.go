package sim

import "math"

// Carriers: every scheduled pickup is planned an hour ahead. The truck comes on time
// with the carrier's current reliability (a mean-reverting drift, lowered by storms);
// otherwise it is late by a log-normal delay or does not come at all. At arrival it
// takes what was packed by then, LTL trailers up to their pallet limit,
// orders due on this truck first. Orders whose cutoff is this pickup and that the
// truck fails get a carrier exception and, often, a carrier message.

func (s *Simulator) scorecard(ci int) {
	c := &s.cars[ci]
	d := &carrierDefs[ci]
	r := s.rNet
	base := min(d.onTime+s.p.onTime, 0.995)
	c.rel += 0.03*(base-c.rel) + 0.004*r.NormFloat64()
	c.rel = min(max(c.rel, 0.4), 0.995)
	share := math.Round(c.share*1000) / 1000
	s.head(evCarrierPerformance, nil, "tms", "carrier-scorecard", 0)
	s.str("carrier", d.code)
	s.float("on_time_share", share)
	s.float("delay_minutes", math.Round(c.delay*10)/10)
	s.send()
	s.q.push(s.now+30*msMinute, kPerf, int32(ci), 0)
}

// stormHits reports whether the current storm affects pickups of carrier ci at
// warehouse wh: strongly for the two carriers named, mildly for the others.
func (s *Simulator) stormHits(wh, ci uint8) (hit, named bool) {
	if s.stormWh&(1<<wh) == 0 || s.now >= s.stormEnd {
		return false, false
	}
	return true, ci == s.stormCar[0] || ci == s.stormCar[1]
}

func (s *Simulator) pickupPlan(pi int) {
	pd := &pickupDefs[pi]
	ps := &s.pickups[pi]
	d := &carrierDefs[pd.carrier]
	c := &s.cars[pd.carrier]
	r := s.rNet
	rel, delayMed, noShow := c.rel, d.delayMed, d.noShow
	switch hit, named := s.stormHits(pd.wh, pd.carrier); {
	case named:
		rel, delayMed, noShow = rel*0.3, delayMed*3, min(noShow*2.5, 0.6)
	case hit:
		rel, delayMed = rel-0.15, delayMed*1.5
	}
	ps.late, ps.noShow = false, false
	if r.Float64() < rel {
		// On time: the truck is at the dock 20 to 45 minutes before the pickup time and
		// loaded before it.
		ps.arrive = ps.sched - 20*msMinute - r.Int64N(25*msMinute)
		c.share = 0.97*c.share + 0.03
	} else {
		c.share *= 0.97
		if r.Float64() < noShow {
			ps.noShow = true
			c.delay = 0.9*c.delay + 0.1*600
			s.q.push(ps.sched+20*msMinute+r.Int64N(70*msMinute), kNoShow, int32(pi), 0)
			return
		}
		delay := max(5, min(lognormal(r, delayMed, 0.6), 480))
		c.delay = 0.9*c.delay + 0.1*delay
		ps.late = true
		ps.arrive = ps.sched + minutes(delay)
		s.q.push(ps.sched, kPickupCheck, int32(pi), 0)
	}
	s.q.push(max(ps.arrive, s.now), kTruck, int32(pi), 0)
}

// failedBy marks the orders on the dock for pickup pi whose cutoff it is (or was) as
// failed by the truck, and lets the carrier say so to some of them.
func (s *Simulator) failedBy(pi int, msgArg int32, msgShare float64, msgWithin int64) {
	pd := &pickupDefs[pi]
	ps := &s.pickups[pi]
	r := s.rNet
	for _, rf := range s.whs[pd.wh].dock[pd.carrier][pd.kind] {
		o := s.get(rf)
		if o == nil || o.stage != stDocked || o.dockedAt > ps.sched-20*msMinute || o.cutoff > ps.sched {
			continue
		}
		if o.carrierHit == 0 {
			o.carrierHit = ps.sched
		}
		o.exc(clsCarrier, s.now)
		if r.Float64() < msgShare {
			s.scheduleAux(rf.i, s.now+r.Int64N(max(msgWithin, 1)), kCarrierMsg, msgArg, int32(ps.sched/msMinute))
		}
	}
}

// pickupLate runs at the scheduled time of a late truck.
func (s *Simulator) pickupLate(pi int) {
	ps := &s.pickups[pi]
	late := ps.arrive - ps.sched
	s.failedBy(pi, int32(late/msMinute), 0.55, late-msMinute)
}

// noShow: the truck did not come. Mostly the carrier sends a recovery truck a few
// hours later; otherwise the freight waits for the next scheduled pickup.
func (s *Simulator) noShow(pi int) {
	s.failedBy(pi, -1, 0.6, 30*msMinute)
	if r := s.rNet; r.Float64() < 0.7 {
		ps := &s.pickups[pi]
		ps.arrive = s.now + msHour + r.Int64N(4*msHour)
		s.q.push(ps.arrive, kTruck, int32(pi), 0)
		return
	}
	s.nextPickupPlan(pi)
}

// truck loads what is on the dock when the truck arrives: shipment.confirmed for
// each, spread over the loading time (at most 15 minutes).
func (s *Simulator) truck(pi int) {
	pd := &pickupDefs[pi]
	ps := &s.pickups[pi]
	w := &s.whs[pd.wh]
	r := s.rNet
	list := w.dock[pd.carrier][pd.kind]
	ltl := pd.kind == kindLTL
	capLeft := int64(math.MaxInt64)
	if ltl {
		// The carrier sends trailers for the lane's recent volume (a moving average of
		// the pallets due on this pickup) with some room; a surge does not fit.
		var due int64
		for _, rf := range list {
			if o := s.get(rf); o != nil && o.stage == stDocked && o.dockedAt <= ps.arrive && o.cutoff <= ps.sched {
				due += pallets(o)
			}
		}
		if ps.volume > 0 {
			capLeft = int64(math.Round((12*s.scale + 2*ps.volume) * s.p.trailer))
		}
		ps.volume = 0.75*ps.volume + 0.25*float64(due)
		if ps.volume == 0.25*float64(due) {
			ps.volume = float64(due)
		}
	}
	gap := min(15*msSecond, 15*msMinute/int64(len(list)+1))
	j := int64(0)
	// Orders due on this truck first, then the others, each in dock order.
	for pass := 0; pass < 2; pass++ {
		for _, rf := range list {
			o := s.get(rf)
			if o == nil || o.stage != stDocked || o.dockedAt > ps.arrive || (o.cutoff <= ps.sched) != (pass == 0) {
				continue
			}
			if pal := pallets(o); ltl {
				if pal > capLeft {
					if o.cutoff <= ps.sched {
						if o.carrierHit == 0 {
							o.carrierHit = ps.sched
						}
						o.exc(clsCarrier, s.now)
						if r.Float64() < 0.5 {
							s.scheduleAux(rf.i, s.now+msMinute+r.Int64N(20*msMinute), kCarrierMsg, -2, int32(ps.sched/msMinute))
						}
					}
					continue
				}
				capLeft -= pal
			}
			o.stage = stShipping
			s.schedule(rf.i, s.now+j*gap+r.Int64N(gap+1), kShip, 0)
			j++
		}
	}
	keep := list[:0]
	for _, rf := range list {
		if o := s.get(rf); o != nil && o.stage == stDocked {
			keep = append(keep, rf)
		}
	}
	clear(list[len(keep):])
	w.dock[pd.carrier][pd.kind] = keep
	s.nextPickupPlan(pi)
}

func (s *Simulator) nextPickupPlan(pi int) {
	ps := &s.pickups[pi]
	ps.sched = s.nextPickupOf(pi, ps.sched+msMinute)
	s.q.push(max(s.now, ps.sched-msHour), kPickupPlan, int32(pi), 0)
}

// pallets an LTL order takes on a trailer.
func pallets(o *order) int64 { return min(max(int64(o.units+79)/80, 1), 10) }

// Storm regions: the warehouses a storm hits.
var stormRegions = [...]uint8{1<<1 | 1<<2, 1<<0 | 1<<1, 1<<3 | 1<<4} // east, south, west

// storm starts an episode of the carrier-disruption scenario: one parcel and one
// LTL carrier fail often in a region for one to two and a half days.
func (s *Simulator) storm() {
	r := s.rNet
	region := 0
	if s.stormEnd > 0 {
		region = r.IntN(len(stormRegions))
	}
	s.stormWh = stormRegions[region]
	s.stormCar = [2]uint8{uint8(r.IntN(2)), uint8(2 + r.IntN(3))}
	s.stormEnd = s.now + 30*msHour + r.Int64N(30*msHour)
	s.q.push(s.stormEnd, kStormEnd, 0, 0)
	s.q.push(s.stormEnd+msDay+r.Int64N(int64(s.p.episodeDays*float64(msDay))), kStorm, 0, 0)
}

// billingRun invoices what shipped since the last run.
func (s *Simulator) billingRun() {
	if n := len(s.billing); n > 0 {
		gap := min(2*msSecond, 30*msMinute/int64(n))
		j := int64(0)
		for _, rf := range s.billing {
			if o := s.get(rf); o != nil && o.stage == stShipped {
				s.schedule(rf.i, s.now+j*gap, kInvoice, 0)
				j++
			}
		}
		clear(s.billing)
		s.billing = s.billing[:0]
	}
	s.q.push(s.nextBilling(s.now), kBilling, 0, 0)
}
