package sim

import "math"

// Warehouses: shifts set how many pickers work, waves every quarter hour release the
// orders nothing holds any more, pickers take the most urgent released order, and
// what is picked is packed and put on the dock for its carrier. Outages stop picking
// and waves. Every five minutes the WMS reports queue, capacity (orders picked per
// hour at the current staffing), outage and the warehouse's time zone.

// meanPickMinutes is the average time to pick one order (2 min + 0.9 min a line at
// about 8 lines, with the noise); capacity in orders per hour is pickers * 60 / it.
const meanPickMinutes = 9.5

func (s *Simulator) setCapacity(w *whState) {
	w.capacity = int32(math.Round(float64(w.staff) * w.slow * 60 / meanPickMinutes))
}

func (s *Simulator) staffChange(wi int) {
	w := &s.whs[wi]
	staff, next := w.def.shifts.staffAt(&w.zone, s.now)
	scaled := int32(0)
	if staff > 0 {
		// Absence and overtime: a shift is rarely staffed exactly as planned, and a
		// backlog of more than an hour and a half of work brings overtime and temps
		// (up to 40% more).
		absent := math.Exp(0.1 * s.rNet.NormFloat64())
		planned := float64(staff) * w.staffMul * s.scale * s.p.staff
		backlog := float64(w.queued) * meanPickMinutes / 60 / planned // hours
		overtime := 1 + min(0.4, 0.1*max(0, backlog-1.5))
		scaled = max(1, int32(math.Round(planned*absent*overtime)))
	}
	if w.staff > 0 {
		w.openAcc += s.now - w.openSince
	}
	wasClosed := w.staff == 0
	w.staff = scaled
	if scaled > 0 {
		w.openSince = s.now
	}
	s.setCapacity(w)
	s.q.push(max(next, s.now+msMinute), kStaff, int32(wi), 0)
	if wasClosed && scaled > 0 {
		s.releaseReady(wi) // the shift's first wave
	}
	s.dispatchWh(wi)
}

// releaseReady is a wave: every ready order of the warehouse is released, spread
// over the next minutes.
func (s *Simulator) releaseReady(wi int) {
	w := &s.whs[wi]
	if w.pickers() == 0 || len(w.ready) == 0 {
		return
	}
	gap := min(800*msMillis, 10*msMinute/int64(len(w.ready)))
	j := int64(0)
	for _, rf := range w.ready {
		o := s.get(rf)
		if o == nil || o.stage != stReady || int(o.wh) != wi {
			continue
		}
		o.stage = stReleasing
		s.schedule(rf.i, s.now+j*gap+s.rNet.Int64N(gap+1), kRelease, 0)
		j++
	}
	w.ready = w.ready[:0]
}

const msMillis = int64(1)

// dispatchWh starts picks while pickers are free.
func (s *Simulator) dispatchWh(wi int) {
	w := &s.whs[wi]
	for w.busy < w.pickers() && w.queued > 0 {
		e := w.queue.pop()
		o := &s.orders[e.ref]
		if o.tok != e.tok || o.stage != stQueued || int(o.wh) != wi {
			continue
		}
		w.queued--
		w.busy++
		o.stage = stPicking
		o.whWait += w.openClock(s.now) - o.relOpen
		if excess := o.whWait - 30*msMinute; excess > 0 {
			o.exc(clsWarehouse, o.releasedAt+30*msMinute)
			o.excDelay[clsWarehouse] = excess
		}
		pick := minutes(lognormal(s.rNet, 2+0.9*float64(o.lines), 0.3))
		s.schedule(e.ref, s.now+min(pick, 4*msHour), kPickDone, 0)
	}
	if len(w.queue.h) > 2*int(w.queued)+256 { // drop entries of orders that left the queue
		h := w.queue.h[:0]
		for _, e := range w.queue.h {
			if o := &s.orders[e.ref]; o.tok == e.tok && o.stage == stQueued && int(o.wh) == wi {
				h = append(h, e)
			}
		}
		w.queue.h = w.queue.h[:0]
		for _, e := range h {
			w.queue.push(e)
		}
	}
}

// loadReport emits warehouse.load, moves the stock tightness and, when the floor is
// behind, has supervisors write about some of the waiting orders.
func (s *Simulator) loadReport(wi int) {
	w := &s.whs[wi]
	r := s.rNet
	lt := math.Log(w.tight)
	lt += -0.01*lt + 0.03*r.NormFloat64()
	w.tight = min(max(math.Exp(lt), 0.3), 4)

	s.emitLoad(w)

	behind := w.outage || w.capacity > 0 && float64(w.queued) > 1.5*float64(w.capacity)
	if behind && len(w.queue.h) > 0 {
		for n := min(3, 1+int(w.queued)/(200*int(math.Ceil(s.scale)))); n > 0; n-- {
			e := w.queue.h[r.IntN(len(w.queue.h))]
			o := &s.orders[e.ref]
			if o.tok != e.tok || o.stage != stQueued || o.noted || r.Float64() < 0.5 {
				continue
			}
			o.noted = true
			kind := kFloorNote
			if w.outage && r.Float64() < 0.5 {
				kind = kOutageMsg
			}
			s.schedule(e.ref, s.now+r.Int64N(5*msMinute), kind, int32(wi)) // kOutageMsg: the warehouse down
		}
	}
	if w.outage && s.p.outageNotes {
		s.outageNotices(wi)
	}
	s.q.push(s.now+5*msMinute, kLoad, int32(wi), 0)
}

// outageNotices (Incidents scenario, demo): while the WMS is down, the orders
// waiting for the next wave fail their download to it, each about half of the
// load reports until it got its notice; drawn from rInc.
func (s *Simulator) outageNotices(wi int) {
	w := &s.whs[wi]
	r := s.rInc
	for _, rf := range w.ready {
		o := s.get(rf)
		if o == nil || o.stage != stReady || int(o.wh) != wi || o.noted || r.Float64() < 0.5 {
			continue
		}
		o.noted = true
		s.scheduleAux(rf.i, s.now+r.Int64N(5*msMinute), kOutageMsg, int32(wi), 1)
	}
}

// emitLoad emits warehouse.load: the warehouse's queue, capacity and outage.
func (s *Simulator) emitLoad(w *whState) {
	s.head(evWarehouseLoad, nil, "wms", "wms-monitor", 0)
	s.str("warehouse", w.def.code)
	s.int("queue", int64(w.queued+w.busy))
	s.int("capacity", int64(w.capacity))
	s.bool("outage", w.outage)
	s.str("timezone", w.zone.tzName(s.now))
	s.send()
}

// drill takes the staffed warehouse with the most queued work down for drillFor
// and reports it at once, so the live stream opens with an incident (the demo's,
// which shows the automatic actions within its first minute). It draws no random
// numbers: the rest of the simulation is the same with or without it.
func (s *Simulator) drill() {
	wi := -1
	for i := range s.whs {
		if w := &s.whs[i]; w.staff > 0 && !w.outage && (wi < 0 || w.queued > s.whs[wi].queued) {
			wi = i
		}
	}
	if wi < 0 {
		return
	}
	s.outage(wi, s.now+s.drillFor, false)
	s.emitLoad(&s.whs[wi])
}

// smallOutage: now and then a warehouse loses its WMS or a conveyor for half an
// hour to two hours.
func (s *Simulator) smallOutage(wi int) {
	w := &s.whs[wi]
	r := s.rNet
	if w.staff > 0 && !w.outage {
		s.outage(wi, s.now+30*msMinute+r.Int64N(90*msMinute), false)
	}
	s.q.push(s.now+msHour+s.expDays(r, s.p.outageDays), kOutage, int32(wi), 0)
}

// outage takes warehouse wi down until end.
func (s *Simulator) outage(wi int, end int64, big bool) {
	w := &s.whs[wi]
	if !w.outage {
		w.outageFrom = s.now
	}
	w.outage = true
	w.outageUntil = max(w.outageUntil, end)
	arg := int32(0)
	if big {
		arg = 1
	}
	s.q.push(end, kOutageEnd, int32(wi), arg)
}

func (s *Simulator) outageEnd(wi int, big bool) {
	w := &s.whs[wi]
	if s.now < w.outageUntil { // a longer outage is still going on
		return
	}
	w.outage = false
	if big { // back at reduced speed while the backlog is worked off
		w.slow = 0.5
		s.setCapacity(w)
		s.q.push(s.now+4*msHour+s.rNet.Int64N(4*msHour), kRecovered, int32(wi), 0)
	}
	s.releaseReady(wi)
	s.dispatchWh(wi)
}

// bigOutage is an episode of the warehouse-outage scenario: the WMS is down for four
// to nine hours in the middle of a shift; after an hour or two planners move part
// of the open work to other warehouses.
func (s *Simulator) bigOutage(wi int) {
	r := s.rNet
	s.outage(wi, s.now+5*msHour+r.Int64N(5*msHour), true)
	s.q.push(s.now+msHour+r.Int64N(msHour), kMoveWork, int32(wi), 0)
	s.outTurn = (s.outTurn + 1 + r.IntN(numWarehouses-1)) % numWarehouses
	next := s.now + msDay + r.Int64N(int64(s.p.episodeDays*float64(msDay)))
	s.q.push(s.outageStart(s.outTurn, next), kBigOutage, int32(s.outTurn), 0)
}

func (s *Simulator) moveWork(wi int) {
	w := &s.whs[wi]
	if !w.outage {
		return
	}
	r := s.rNet
	move := func(i int32, o *order) {
		nw := s.otherWarehouse(o)
		if nw == o.wh {
			return
		}
		if o.stage == stQueued {
			w.queued--
			o.whWait += w.openClock(s.now) - o.relOpen
		}
		s.head(evAllocationChanged, o, "erp", "planner", s.actorNum(3))
		s.str("warehouse", warehouseDefs[nw].code)
		s.str("reason", "reallocated")
		s.send()
		s.moveTo(o, nw)
		o.stage = stReady
		nwh := &s.whs[nw]
		nwh.ready = append(nwh.ready, ref{i, o.tok})
	}
	for _, e := range w.queue.h {
		if o := &s.orders[e.ref]; o.tok == e.tok && o.stage == stQueued && int(o.wh) == wi && r.Float64() < 0.2 {
			move(e.ref, o)
		}
	}
	keep := w.ready[:0]
	for _, rf := range w.ready {
		o := s.get(rf)
		if o == nil || o.stage != stReady || int(o.wh) != wi {
			continue
		}
		if r.Float64() < 0.2 {
			move(rf.i, o)
			continue
		}
		keep = append(keep, rf)
	}
	w.ready = keep
}
