package sim

import (
	"math"
	"strings"
)

// Kinds of queue items. Order items refer to an order slot (ref) and count in its
// pending; network items refer to a warehouse, a carrier or a pickup.
const (
	kCredit uint8 = iota
	kCreditRelease
	kCreditNote
	kCreditCancel
	kPricing
	kPricingApprove
	kPricingNote
	kMapping    // arg 1: the partner's map break
	kMappingFix // arg 1: the partner's fixed map
	kShipTo     // arg 0: found at intake; 1: found at the label printer after packing
	kShipToFix
	kAllocate
	kShortResolve
	kAllocated
	kShortNote
	kCustCancel
	kQtyChange
	kNote
	kTransient
	kReadyAt
	kRelease
	kPickDone
	kPackDone
	kShip
	kCarrierMsg // arg: minutes late; -1 no-show; -2 left on the dock; aux: the pickup's scheduled time, Unix minutes
	kTracking   // arg: the step of txtTracking; -1: a delay
	kInvoice
	kFloorNote
	kOutageMsg // arg: the warehouse down when it was scheduled; aux 1: an outage notice (rInc)
	numOrderKinds
)

// Network item kinds follow the order kinds.
const (
	kArrival = numOrderKinds + iota
	kStaff
	kWave
	kLoad
	kPerf
	kPickupPlan
	kPickupCheck
	kTruck
	kNoShow
	kBilling
	kOutage
	kOutageEnd // arg 1: a big outage, recovery follows
	kRecovered
	kBigOutage
	kMoveWork
	kStorm
	kStormEnd
	kDrill
	kMapBreak
)

// schedule files an order item.
func (s *Simulator) schedule(i int32, at int64, kind uint8, arg int32) {
	s.orders[i].pending++
	s.q.push(max(at, s.now), kind, i, arg)
}

// scheduleAux files an order item with a second argument.
func (s *Simulator) scheduleAux(i int32, at int64, kind uint8, arg, aux int32) {
	s.orders[i].pending++
	s.q.pushAux(max(at, s.now), kind, i, arg, aux)
}

func (s *Simulator) dispatch(it *item) {
	if it.kind < numOrderKinds {
		o := &s.orders[it.ref]
		o.pending--
		s.orderStep(it.ref, o, it.kind, it.arg, it.aux)
		if o.finished() && o.pending == 0 {
			s.freeOrder(it.ref)
		}
		return
	}
	switch it.kind {
	case kArrival:
		s.arrival()
	case kStaff:
		s.staffChange(int(it.ref))
	case kWave:
		s.releaseReady(int(it.ref))
		s.q.push(s.now+15*msMinute, kWave, it.ref, 0)
	case kLoad:
		s.loadReport(int(it.ref))
	case kPerf:
		s.scorecard(int(it.ref))
	case kPickupPlan:
		s.pickupPlan(int(it.ref))
	case kPickupCheck:
		s.pickupLate(int(it.ref))
	case kTruck:
		s.truck(int(it.ref))
	case kNoShow:
		s.noShow(int(it.ref))
	case kBilling:
		s.billingRun()
	case kOutage:
		s.smallOutage(int(it.ref))
	case kOutageEnd:
		s.outageEnd(int(it.ref), it.arg == 1)
	case kRecovered:
		w := &s.whs[it.ref]
		w.slow = 1
		s.setCapacity(w)
		s.dispatchWh(int(it.ref))
	case kBigOutage:
		s.bigOutage(int(it.ref))
	case kMoveWork:
		s.moveWork(int(it.ref))
	case kStorm:
		s.storm()
	case kStormEnd:
		s.stormWh = 0
	case kDrill:
		s.drill()
	case kMapBreak:
		s.mapBreak()
	}
}

func (s *Simulator) newOrder() int32 {
	s.live++
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		return i
	}
	s.orders = append(s.orders, order{})
	return int32(len(s.orders) - 1)
}

func (s *Simulator) freeOrder(i int32) {
	tok := s.orders[i].tok + 1
	s.orders[i] = order{tok: tok}
	s.free = append(s.free, i)
	s.live--
}

func (s *Simulator) refOf(i int32) ref { return ref{i, s.orders[i].tok} }

// get returns the order a list entry refers to, or nil if the slot was reused.
func (s *Simulator) get(r ref) *order {
	o := &s.orders[r.i]
	if o.tok != r.tok {
		return nil
	}
	return o
}

// orderStep handles an order item.
func (s *Simulator) orderStep(i int32, o *order, kind uint8, arg, aux int32) {
	if o.finished() && kind != kTracking {
		return
	}
	r := s.rOrd
	w := &s.whs[o.wh]
	switch kind {
	case kCredit:
		o.blocks |= blkCredit
		o.exc(clsCredit, s.now)
		c := &s.custs[o.cust]
		reason := creditReasons[r.IntN(len(creditReasons))]
		if s.now >= c.pastDueFrom && s.now < c.pastDueTo {
			reason = "past_due"
		}
		s.head(evCreditHold, o, "finance", "credit-engine", 0)
		s.str("reason", reason)
		s.send()
		switch {
		case o.plan&planHoldNever != 0:
			work := (1 + r.Int64N(3)) * 9 * msHour
			s.schedule(i, financeHours.addWork(&s.hq, s.now, work), kCreditCancel, 0)
		case o.plan&planHoldAuto != 0:
			s.schedule(i, s.now+5*msMinute+r.Int64N(55*msMinute), kCreditRelease, 1)
		default:
			work := minutes(lognormal(r, 80, 0.9) * s.p.review)
			s.schedule(i, financeHours.addWork(&s.hq, s.now+5*msMinute+r.Int64N(25*msMinute), work), kCreditRelease, 0)
		}
		if r.Float64() < 0.45+0.35*b2f(o.plan&planHoldNever != 0) {
			s.schedule(i, financeHours.addWork(&s.hq, s.now, 5*msMinute+r.Int64N(40*msMinute)), kCreditNote, 0)
		}
	case kCreditRelease:
		if o.blocks&blkCredit == 0 {
			return
		}
		o.blocks &^= blkCredit
		o.resolve(clsCredit, s.now)
		if arg == 1 {
			s.head(evCreditReleased, o, "finance", "payment-auto", 0)
			s.str("reason", "payment_received")
		} else {
			s.head(evCreditReleased, o, "finance", "ar-analyst", s.actorNum(6))
			s.str("reason", releaseReasons[r.IntN(len(releaseReasons))])
		}
		s.send()
		s.tryReady(i, o)
	case kCreditNote:
		if o.stage >= stShipped {
			return
		}
		s.head(evNoteAdded, o, "finance", "ar-analyst", s.actorNum(6))
		s.text(&txtHoldNote, &textCtx{o: o, day: s.localDay(s.now)})
		s.send()
	case kCreditCancel:
		if o.blocks&blkCredit == 0 {
			return
		}
		s.cancel(o, "credit_not_released", "finance", "ar-analyst", s.actorNum(6))
	case kPricing:
		o.blocks |= blkPricing
		o.exc(clsPricing, s.now)
		reason := pricingReasons[r.IntN(len(pricingReasons))]
		c := &s.custs[o.cust]
		if s.now >= c.contractFrom && s.now < c.contractTo {
			reason = "contract_expired"
		}
		s.head(evPricingException, o, "erp", "pricing-engine", 0)
		s.str("reason", reason)
		s.send()
		if reason == "contract_expired" && s.wantCause(o) {
			s.cause(o, CausePriceContract, c.id, millis(c.contractFrom))
		}
		work := minutes(lognormal(r, 100, 0.9) * s.p.review)
		s.schedule(i, priceDesk.addWork(&s.hq, s.now+5*msMinute+r.Int64N(15*msMinute), work), kPricingApprove, 0)
		if r.Float64() < 0.5 {
			s.schedule(i, priceDesk.addWork(&s.hq, s.now, 10*msMinute+r.Int64N(50*msMinute)), kPricingNote, 0)
		}
	case kPricingApprove:
		if o.blocks&blkPricing == 0 {
			return
		}
		o.blocks &^= blkPricing
		o.resolve(clsPricing, s.now)
		s.head(evPricingApproved, o, "erp", "price-desk", s.actorNum(4))
		if r.Float64() < 0.5 {
			o.value = cents(o.value * (0.95 + 0.07*r.Float64()))
			s.float("value", o.value)
		}
		s.send()
		s.tryReady(i, o)
	case kPricingNote:
		if o.stage >= stShipped {
			return
		}
		s.head(evNoteAdded, o, "erp", "price-desk", s.actorNum(4))
		s.text(&txtPriceNote, &textCtx{o: o, day: s.localDay(s.now)})
		s.send()
	case kMapping:
		o.blocks |= blkMapping
		o.exc(clsEDI, s.now)
		if arg == 1 {
			s.mapBroken(i, o)
			return
		}
		ct := &txtMapping[r.IntN(4)]
		actor := "edi-gw"
		if o.ch != chEDI {
			ct, actor = &txtMapping[4+r.IntN(2)], "api-gw"
		}
		s.head(evIntegrationError, o, ct.system, actor, 0)
		s.coded(ct, &textCtx{o: o})
		s.send()
		if s.wantCause(o) {
			var idb [48]byte
			s.cause(o, CauseEDIMapping, string(s.appendOrderID(idb[:0], o)))
		}
		fix := s.now + 5*msMinute + r.Int64N(20*msMinute)
		if o.plan&planMappingAuto == 0 {
			fix = itHours.addWork(&s.whs[1].zone, s.now+10*msMinute+r.Int64N(20*msMinute), minutes(lognormal(r, 60, 1.0)*s.p.review))
		}
		s.schedule(i, fix, kMappingFix, 0)
	case kMappingFix:
		if o.blocks&blkMapping == 0 {
			return
		}
		o.blocks &^= blkMapping
		o.resolve(clsEDI, s.now)
		rn, rt := r, s.rText
		if arg == 1 { // a map break's orders draw from its own stream
			rn, s.rText = s.rInc, s.rInc
		}
		if rn.Float64() < 0.45 {
			s.head(evNoteAdded, o, "edi", "edi-support", s.actorNum(3))
			s.text(&txtEDIFix, &textCtx{o: o})
			s.send()
		}
		s.rText = rt
		s.tryReady(i, o)
	case kShipTo:
		if o.stage >= stShipping {
			return
		}
		o.exc(clsAddress, s.now)
		tc := textCtx{o: o}
		if arg == 1 {
			s.head(evIntegrationError, o, "tms", "label-print", s.actorNum(6))
			s.coded(&txtShipToSys[2], &tc)
			s.send()
		} else {
			o.blocks |= blkShipTo
			if r.Float64() < 0.55 {
				s.head(evIntegrationError, o, "tms", "tms-av", 0)
				s.coded(&txtShipToSys[r.IntN(2)], &tc)
			} else {
				s.head(evNoteAdded, o, "cs", "cs-agent", s.actorNum(25))
				s.text(&txtShipToNote, &tc)
			}
			s.send()
		}
		work := minutes(lognormal(r, 150, 1.0) * s.p.review)
		s.schedule(i, csHours.addWork(&s.hq, s.now+5*msMinute+r.Int64N(25*msMinute), work), kShipToFix, arg)
	case kShipToFix:
		o.resolve(clsAddress, s.now)
		s.head(evOrderChanged, o, "cs", "cs-agent", s.actorNum(25))
		s.str("change", "address")
		s.send()
		if r.Float64() < 0.4 {
			s.head(evNoteAdded, o, "cs", "cs-agent", s.actorNum(25))
			s.text(&txtShipToFixed, &textCtx{o: o})
			s.send()
		}
		if arg == 1 {
			if o.stage == stHeld {
				s.dock(o, i)
			}
			return
		}
		o.blocks &^= blkShipTo
		s.tryReady(i, o)
	case kAllocate:
		if o.plan&planShort == 0 {
			s.allocated(i, o)
			return
		}
		o.exc(clsInventory, s.now)
		s.head(evAllocationShort, o, "erp", "atp", 0)
		s.str("warehouse", w.def.code)
		s.int("short_units", int64(1+r.Int32N(max(1, o.units/3))))
		s.str("reason", shortReasons[r.IntN(len(shortReasons))])
		s.send()
		switch o.short {
		case shortRealloc:
			s.schedule(i, s.now+20*msMinute+r.Int64N(130*msMinute), kShortResolve, shortRealloc)
		case shortSub:
			work := minutes(lognormal(r, 80, 0.9) * s.p.review)
			s.schedule(i, csHours.addWork(&s.hq, s.now+10*msMinute+r.Int64N(20*msMinute), work), kShortResolve, shortSub)
		default:
			at := w.def.recv.addWork(&w.zone, s.now+20*msMinute+r.Int64N(40*msMinute), 30*msMinute+r.Int64N(150*msMinute))
			s.schedule(i, at, kShortResolve, shortReceipt)
		}
		if r.Float64() < 0.35 {
			s.schedule(i, s.now+5*msMinute+r.Int64N(55*msMinute), kShortNote, 0)
		}
	case kShortResolve:
		switch arg {
		case shortRealloc:
			nw := s.otherWarehouse(o)
			s.head(evAllocationChanged, o, "erp", "atp", 0)
			s.str("warehouse", warehouseDefs[nw].code)
			s.str("reason", "reallocated")
			s.send()
			s.moveTo(o, nw)
		case shortSub:
			o.value = cents(o.value * (0.9 + 0.25*r.Float64()))
			s.head(evOrderChanged, o, "cs", "cs-agent", s.actorNum(25))
			s.str("change", "substitution")
			s.int("units", int64(o.units))
			s.float("value", o.value)
			s.send()
		default:
			s.head(evAllocationChanged, o, "erp", "atp", 0)
			s.str("warehouse", w.def.code)
			s.str("reason", "backorder_filled")
			s.send()
		}
		s.schedule(i, s.now+msMinute+r.Int64N(4*msMinute), kAllocated, 0)
	case kAllocated:
		o.resolve(clsInventory, s.now)
		s.allocated(i, o)
	case kShortNote:
		if o.stage >= stShipped {
			return
		}
		s.head(evNoteAdded, o, "erp", "inv-control", s.actorNum(5))
		s.text(&txtShortNote, &textCtx{o: o, wh: w.def.code, wh2: warehouseDefs[(int(o.wh)+1+r.IntN(numWarehouses-1))%numWarehouses].code, day: s.localDay(s.now + msDay)})
		s.send()
	case kCustCancel:
		if o.stage > stQueued {
			return
		}
		s.cancel(o, cancelReasons[r.IntN(len(cancelReasons))], "cs", "cs-agent", s.actorNum(25))
	case kQtyChange:
		if o.stage > stQueued {
			return
		}
		d := 1 + r.Int32N(max(2, o.units/4))
		if r.Float64() < 0.4 && o.units > d {
			d = -d
		}
		per := o.value / float64(o.units)
		o.units += d
		o.value = cents(per * float64(o.units))
		s.head(evOrderChanged, o, "cs", "cs-agent", s.actorNum(25))
		s.str("change", "quantity")
		s.int("units", int64(o.units))
		s.float("value", o.value)
		s.send()
	case kNote:
		if o.stage >= stShipped {
			return
		}
		s.head(evNoteAdded, o, "cs", "cs-agent", s.actorNum(25))
		s.text(&txtNote, &textCtx{o: o, day: s.localDay(s.now + msDay + r.Int64N(3*msDay))})
		s.send()
	case kTransient:
		if o.stage >= stShipped {
			return
		}
		ct := &txtTransient[r.IntN(len(txtTransient))]
		s.head(evIntegrationError, o, ct.system, ct.system+"-gw", 0)
		s.coded(ct, &textCtx{o: o})
		s.send()
	case kReadyAt:
		s.tryReady(i, o)
	case kRelease:
		if o.stage != stReleasing {
			return
		}
		s.head(evPickReleased, o, "wms", "wave-planner", 0)
		s.str("warehouse", w.def.code)
		s.send()
		o.stage = stQueued
		o.releasedAt = s.now
		o.relOpen = w.openClock(s.now)
		key := o.cutoff + r.Int64N(180*msMinute) - 90*msMinute
		if o.svc == svcNextDay {
			key -= 45 * msMinute
		}
		if s.custs[o.cust].tier == 3 {
			key -= 30 * msMinute
		}
		w.queue.push(pickEntry{key: key, ref: i, tok: o.tok})
		w.queued++
		s.dispatchWh(int(o.wh))
	case kPickDone:
		w.busy--
		s.head(evPickConfirmed, o, "wms", "scanner", s.actorNum(60))
		s.str("warehouse", w.def.code)
		s.int("units", int64(o.units))
		s.send()
		o.stage = stPacking
		pack := minutes(lognormal(r, 4+0.5*float64(o.lines), 0.35))
		s.schedule(i, s.now+min(pack, 3*msHour), kPackDone, 0)
		s.dispatchWh(int(o.wh))
	case kPackDone:
		s.head(evPackConfirmed, o, "wms", "pack-station", s.actorNum(24))
		s.str("warehouse", w.def.code)
		s.send()
		if o.plan&planShipToLate != 0 {
			o.stage = stHeld
			s.schedule(i, s.now+msMinute+r.Int64N(7*msMinute), kShipTo, 1)
			return
		}
		s.dock(o, i)
	case kShip:
		if o.stage != stShipping {
			return
		}
		s.head(evShipmentConfirmed, o, "tms", "dock", s.actorNum(12))
		s.str("warehouse", w.def.code)
		s.str("carrier", carrierDefs[o.carrier].code)
		s.str("service_level", serviceNames[o.svc])
		s.send()
		o.stage = stShipped
		o.shipAt = s.now
		if o.carrierHit != 0 {
			o.excDelay[clsCarrier] = max(o.excDelay[clsCarrier], s.now-o.carrierHit)
		}
		if r.Float64() < 0.55 { // a few tracking updates, in their order
			at := s.now
			for step := range 1 + r.IntN(len(txtTracking)) {
				at += 30*msMinute + r.Int64N(8*msHour)
				s.schedule(i, at, kTracking, int32(step))
			}
		}
		p := 0.03 * s.p.transit
		if s.stormWh&(1<<o.wh) != 0 && s.now < s.stormEnd {
			p *= 5
		}
		if r.Float64() < p {
			at := s.now + 3*msHour + r.Int64N(27*msHour)
			o.exc(clsCarrier, at)
			s.schedule(i, at, kTracking, -1)
		}
		s.billing = append(s.billing, s.refOf(i))
	case kCarrierMsg:
		if o.stage >= stShipped {
			return
		}
		tc := textCtx{o: o, car: carrierDefs[o.carrier].code, city: w.def.cities[r.IntN(len(w.def.cities))]}
		s.head(evCarrierStatus, o, "tms", carrierActors[o.carrier], 0)
		s.str("carrier", tc.car)
		s.str("code", pickupCode(arg))
		switch {
		case arg >= 0:
			tc.minutes = int64(arg)
			eta := o.carrierHit + int64(arg)*msMinute
			tc.clock = eta + w.zone.offset(eta)
			tc.clock -= floorDiv(tc.clock, msDay) * msDay
			s.text(&txtTruckLate, &tc)
		case arg == -1:
			tc.clock = o.carrierHit + w.zone.offset(o.carrierHit)
			tc.clock -= floorDiv(tc.clock, msDay) * msDay
			s.text(&txtNoShow, &tc)
		default:
			s.text(&txtRolled, &tc)
		}
		s.send()
		if sched := int64(aux) * msMinute; sched != o.causedBy && s.wantCause(o) {
			o.causedBy = sched
			s.cause(o, CauseCarrierPickup, w.def.code, tc.car, kindNames[serviceKind[o.svc]], millis(sched))
		}
	case kTracking:
		dest := &warehouseDefs[r.IntN(numWarehouses)]
		tc := textCtx{o: o, city: dest.cities[r.IntN(len(dest.cities))], day: s.localDay(s.now + msDay + r.Int64N(2*msDay))}
		s.head(evCarrierStatus, o, "tms", carrierActors[o.carrier], 0)
		s.str("carrier", carrierDefs[o.carrier].code)
		if arg < 0 {
			s.str("code", codeTransitDelay)
			s.text(&txtTransitDelay, &tc)
		} else {
			s.str("code", codeTransit)
			s.text(&txtTracking[arg], &tc)
		}
		s.send()
	case kInvoice:
		if o.stage != stShipped {
			return
		}
		if o.plan&planInvoiceFail != 0 && !o.invFailed {
			o.invFailed = true
			o.exc(clsInvoicing, s.now)
			ct := &txtInvoice[r.IntN(len(txtInvoice))]
			s.head(evInvoiceFailed, o, "finance", "billing-run", 0)
			s.str("code", ct.code)
			s.text(&textSet{tmpl: ct.tmpl}, &textCtx{o: o})
			s.send()
			work := minutes(lognormal(r, 180, 0.8))
			s.schedule(i, financeHours.addWork(&s.hq, s.now+10*msMinute+r.Int64N(50*msMinute), work), kInvoice, 0)
			return
		}
		s.head(evInvoiceCreated, o, "finance", "billing-run", 0)
		s.float("value", o.value)
		s.send()
		o.stage = stInvoiced
		s.finish(o)
	case kFloorNote:
		if o.stage > stPicking {
			return
		}
		backlog := int64(0)
		if w.capacity > 0 {
			backlog = int64(w.queued+w.busy) * 60 / int64(w.capacity)
		}
		s.head(evNoteAdded, o, "wms", "floor-lead", s.actorNum(8))
		s.text(&txtFloorNote, &textCtx{o: o, wh: w.def.code, minutes: max(backlog, 20), queue: int64(w.queued + w.busy), clock: s.localMs(w, s.now-r.Int64N(90*msMinute))})
		s.send()
	case kOutageMsg:
		if o.stage > stPicking || aux == 1 && int32(o.wh) != arg { // a notice: moved to another WMS meanwhile
			return
		}
		rt := s.rText
		var ct *codedText
		if aux == 1 { // a download the WMS did not take
			ct, s.rText = &txtOutageSys[0], s.rInc
		} else {
			ct = &txtOutageSys[r.IntN(len(txtOutageSys))]
		}
		s.head(evIntegrationError, o, "wms", "wms-"+strings.ToLower(w.def.code), 0)
		s.coded(ct, &textCtx{o: o, queue: int64(w.queued)})
		s.send()
		s.rText = rt
		if s.wantCause(o) {
			s.cause(o, CauseWarehouseOutage, warehouseDefs[arg].code, millis(s.whs[arg].outageFrom))
		}
	}
}

// Codes of carrier.status (data.code): a failed pickup before shipment, then
// tracking after it.
const (
	codeNoShow       = "NO_SHOW"
	codePickupLate   = "PICKUP_LATE"
	codeRolled       = "ROLLED"
	codeTransitDelay = "TRANSIT_DELAY"
	codeTransit      = "TRANSIT"
)

// pickupCode is the code of a kCarrierMsg by its arg: minutes late (>= 0), -1 a
// no-show, -2 left on the dock.
func pickupCode(arg int32) string {
	switch {
	case arg >= 0:
		return codePickupLate
	case arg == -1:
		return codeNoShow
	}
	return codeRolled
}

var (
	creditReasons  = []string{"over_limit", "over_limit", "past_due", "terms_exceeded", "new_account_review"}
	releaseReasons = []string{"reviewed", "limit_increased", "payment_confirmed", "reviewed"}
	pricingReasons = []string{"price_mismatch", "price_mismatch", "below_margin_floor", "promo_not_loaded", "quote_not_applied"}
	shortReasons   = []string{"stockout", "stockout", "damaged", "cycle_count_variance"}
	cancelReasons  = []string{"customer_request", "customer_request", "duplicate_po", "found_other_source"}
	carrierActors  = func() (a [numCarriers]string) {
		for i, d := range carrierDefs {
			a[i] = strings.ToLower(d.code) + "-api"
		}
		return a
	}()
)

// allocated emits inventory.allocated and lets the order go to the warehouse once
// nothing else holds it.
func (s *Simulator) allocated(i int32, o *order) {
	s.head(evInventoryAllocated, o, "erp", "atp", 0)
	s.str("warehouse", s.whs[o.wh].def.code)
	s.int("lines", int64(o.lines))
	s.int("units", int64(o.units))
	s.send()
	o.blocks &^= blkAlloc
	s.tryReady(i, o)
}

// tryReady puts an order on its warehouse's list for the next wave once nothing
// holds it and its requested ship date is near.
func (s *Simulator) tryReady(i int32, o *order) {
	if o.stage != stNew || o.blocks != 0 {
		return
	}
	if o.notBefore > s.now {
		s.schedule(i, o.notBefore, kReadyAt, 0)
		return
	}
	o.stage = stReady
	w := &s.whs[o.wh]
	w.ready = append(w.ready, ref{i, o.tok})
}

func (s *Simulator) dock(o *order, i int32) {
	o.stage = stDocked
	o.dockedAt = s.now
	w := &s.whs[o.wh]
	k := serviceKind[o.svc]
	w.dock[o.carrier][k] = append(w.dock[o.carrier][k], ref{i, o.tok})
}

// otherWarehouse picks where a short or stranded order goes: the warehouse with the
// loosest stock among those its service is shipped from, with some noise.
func (s *Simulator) otherWarehouse(o *order) uint8 {
	best, bestScore := o.wh, math.Inf(1)
	for w := range numWarehouses {
		if uint8(w) == o.wh || len(s.serving[w][serviceKind[o.svc]]) == 0 {
			continue
		}
		score := s.whs[w].tight * (0.7 + 0.6*s.rOrd.Float64())
		if score < bestScore {
			best, bestScore = uint8(w), score
		}
	}
	return best
}

// moveTo assigns the order to warehouse nw and a carrier that serves it there.
func (s *Simulator) moveTo(o *order, nw uint8) {
	o.wh = nw
	kind := serviceKind[o.svc]
	if !containsU8(s.serving[nw][kind], o.carrier) {
		o.carrier = s.chooseCarrier(nw, kind, &s.custs[o.cust])
	}
}

// cancel ends an order that has not been picked.
func (s *Simulator) cancel(o *order, reason, source, actor string, n int) {
	if o.stage == stQueued {
		s.whs[o.wh].queued--
	}
	o.stage = stCancelled
	o.endAt = s.now
	s.resolveOpen(o)
	s.head(evOrderCancelled, o, source, actor, n)
	s.str("reason", reason)
	s.send()
	s.finish(o)
}

// resolveOpen closes the delays of exceptions still open at now.
func (s *Simulator) resolveOpen(o *order) {
	for cls, blk := range [...]uint8{clsCredit: blkCredit, clsPricing: blkPricing, clsEDI: blkMapping, clsAddress: blkShipTo} {
		if blk != 0 && o.blocks&blk != 0 {
			o.resolve(cls, s.now)
		}
	}
	if o.blocks&blkAlloc != 0 || o.stage == stHeld {
		o.resolve(clsInventory, s.now)
		if o.stage == stHeld {
			o.resolve(clsAddress, s.now)
		}
	}
}

func (s *Simulator) localDay(t int64) int64 {
	d, _, _ := s.hq.local(t)
	return d
}

func (s *Simulator) localMs(w *whState, t int64) int64 {
	_, _, ms := w.zone.local(t)
	return ms
}

// text writes data.text from a set of templates.
func (s *Simulator) text(set *textSet, c *textCtx) {
	if s.skip {
		return
	}
	b := s.render(set, c)
	s.key("text")
	s.buf = appendJSONString(s.buf, b)
}

// coded writes data.system, data.code and data.text of a system message.
func (s *Simulator) coded(ct *codedText, c *textCtx) {
	if s.skip {
		return
	}
	s.str("system", ct.system)
	s.str("code", ct.code)
	s.text(&textSet{tmpl: ct.tmpl}, c)
}
