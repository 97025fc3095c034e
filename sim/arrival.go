package sim

import "math"

// Orders arrive: the arrival process, who orders what, and what will happen to each
// order (its exceptions, drawn from their drivers when it is created).

// maxDayDemand caps a day's demand multiplier; thinning runs against it.
const maxDayDemand = 1.5

// arrival is the arrival process: a non-homogeneous Poisson process by thinning
// against the busiest hour's intensity, the channel drawn by its share of the hour.
func (s *Simulator) arrival() {
	if s.opts.Orders > 0 && s.stats.Orders >= s.opts.Orders {
		return
	}
	day, wd, ms := s.hq.local(s.now)
	if day != s.demandDay { // some days are busier than others
		s.demandDay = day
		common := s.rNet.NormFloat64()
		for ch := range s.demandMul {
			s.demandMul[ch] = min(math.Exp(0.06*common+0.08*s.rNet.NormFloat64()), maxDayDemand)
		}
	}
	rates := &s.arrRate[wd][ms/msHour]
	u := s.rNet.Float64() * s.arrMax * maxDayDemand
	for ch := range numChannels {
		rate := rates[ch] * s.demandMul[ch]
		if u < rate {
			s.createOrder(uint8(ch))
			break
		}
		u -= rate
	}
	s.q.push(s.now+1+int64(s.rNet.ExpFloat64()/(s.arrMax*maxDayDemand)), kArrival, 0, 0)
}

var (
	lineBase     = [numChannels]float64{2, 1, 1, 1}
	lineMean     = [numChannels]float64{10, 4, 0.8, 2.5}
	unitsPerLine = [numChannels][2]int32{{2, 24}, {2, 18}, {1, 3}, {1, 10}}
	leadMinutes  = [numKinds]int64{90, 75, 150}
	futureShare  = [numChannels]float64{0.14, 0.07, 0, 0.05}
	transitDays  = [numServices][2]int64{{2, 5}, {2, 2}, {1, 1}, {2, 6}}
	pricingBase  = [numChannels]float64{0.035, 0.02, 0.004, 0.03}
	shipToBase   = [numChannels]float64{0.004, 0.015, 0.035, 0.01}
	invoiceBase  = [numChannels]float64{0.035, 0.015, 0.008, 0.012}
	holdBase     = [3]float64{0.008, 0.05, 0.17}
)

// setVisible decides whether order o is published; published orders are numbered from
// 100001.
func (s *Simulator) setVisible(o *order, visible bool) {
	o.visible = visible
	o.seq = -s.created
	if o.visible {
		s.stats.Orders++
		o.seq = 100000 + s.stats.Orders
		if s.stats.Orders == s.opts.Orders { // the last one: stop at the latest a month on
			s.end = s.now + 30*msDay
		}
	}
}

// revealed reports whether a warm-up order that drew u (uniform in [0,1)) and has
// its ship cutoff at cutoff is published all the same: a share revealNear of the
// orders whose cutoff falls in [nearFrom, nearTo), a share reveal of the others.
func (s *Simulator) revealed(u float64, cutoff int64) bool {
	if cutoff >= s.nearFrom && cutoff < s.nearTo {
		return u < s.revealNear
	}
	return u < s.reveal
}

func (s *Simulator) pickCustomer(ch uint8) int32 {
	cum := s.chanCum[ch]
	u := s.rOrd.Float64() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] > u {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return s.byChan[ch][lo]
}

func (s *Simulator) createOrder(ch uint8) {
	r := s.rOrd
	ci := s.pickCustomer(ch)
	c := &s.custs[ci]
	i := s.newOrder()
	o := &s.orders[i]
	s.created++
	s.lastArr = s.now
	o.created, o.cust, o.ch = s.now, ci, ch
	// Orders of the warm-up are simulated, not published (but for a share the live
	// demo reveals, drawn here and decided once the cutoff is known).
	hidden, reveal := s.now < s.hideBefore, 0.0
	if hidden {
		reveal = r.Float64()
	}
	o.wh = c.wh
	if r.Float64() < 0.1 { // sourced from another warehouse
		o.wh = uint8(weightedIndex(r, 0.27, 0.23, 0.20, 0.17, 0.13))
	}
	o.lines = int32(lineBase[ch] + math.Floor(r.ExpFloat64()*lineMean[ch]*c.lineMul))
	o.lines = min(o.lines, 120)
	upl := unitsPerLine[ch]
	o.units = o.lines * (upl[0] + r.Int32N(upl[1]-upl[0]+1))
	price := c.priceLvl * math.Exp(math.Log(14)+0.6*r.NormFloat64())
	o.value = cents(float64(o.units) * price)
	switch u := r.Float64(); {
	case o.units >= 320 || o.lines >= 36:
		o.svc = svcLTL
	case u < c.rush:
		o.svc = svcNextDay
	case u < c.rush+0.14:
		o.svc = svc2Day
	default:
		o.svc = svcGround
	}
	kind := serviceKind[o.svc]
	o.carrier = s.chooseCarrier(o.wh, kind, c)
	lead := leadMinutes[kind]*msMinute + int64(o.lines)*msMinute + r.Int64N(30*msMinute)
	t := s.now + lead
	future := r.Float64() < futureShare[ch]
	if future { // a requested ship date a few days out
		t += (1 + r.Int64N(3)) * msDay
	}
	o.cutoff = s.nextPickup(o.wh, o.carrier, kind, t)
	s.setVisible(o, !hidden || s.revealed(reveal, o.cutoff))
	if future {
		o.notBefore = o.cutoff - 12*msHour
	}
	td := transitDays[o.svc]
	o.promised = o.cutoff + (td[0]+r.Int64N(td[1]-td[0]+1))*msDay

	// What will happen to it: the causes, each with its drivers.
	s.customerEpisodes(c)
	pastDue := s.now >= c.pastDueFrom && s.now < c.pastDueTo
	expired := s.now >= c.contractFrom && s.now < c.contractTo
	pHold := holdBase[c.credit]
	if c.typical > 0 && o.value > 3*c.typical {
		pHold *= 2.5
	}
	if pastDue {
		pHold = 0.7
	}
	if r.Float64() < pHold*s.p.creditHold {
		o.plan |= planHold
		switch u, never := r.Float64(), 0.07+0.08*b2f(pastDue || c.credit == 2); {
		case u < never:
			o.plan |= planHoldNever
		case u < never+0.18:
			o.plan |= planHoldAuto
		}
	}
	c.typical = 0.9*c.typical + 0.1*o.value
	if c.typical == 0.1*o.value {
		c.typical = o.value
	}
	pPrice := pricingBase[ch]
	if expired {
		pPrice = 0.4
	}
	if r.Float64() < pPrice*s.p.pricing {
		o.plan |= planPricing
	}
	if (ch == chEDI && r.Float64() < 0.045) || (ch == chPortal && r.Float64() < 0.012) {
		o.plan |= planMapping
		if r.Float64() < 0.3 {
			o.plan |= planMappingAuto
		}
	}
	mapBreak := s.p.mapBreaks > 0 && s.inMapBreak(c)
	if mapBreak {
		o.plan &^= planMapping | planMappingAuto
	}
	if r.Float64() < shipToBase[ch]*c.shipToMul {
		if r.Float64() < 0.4 {
			o.plan |= planShipToLate
		} else {
			o.plan |= planShipToEarly
		}
	}
	q := 0.0032 * s.whs[o.wh].tight * s.p.shortage
	if r.Float64() < 1-math.Pow(1-q, float64(o.lines)) {
		o.plan |= planShort
		switch u := r.Float64(); {
		case u < 0.4:
			o.short = shortRealloc
		case u < 0.65 && o.lines > 1:
			o.short = shortSub
		default:
			o.short = shortReceipt
		}
	}
	for _, x := range [...]struct {
		p    float64
		plan uint32
	}{{0.012, planCancel}, {0.035, planQty}, {0.07, planNote}, {0.025, planTransient}} {
		if r.Float64() < x.p {
			o.plan |= x.plan
		}
	}
	if r.Float64() < invoiceBase[ch]+0.08*b2f(o.plan&planPricing != 0) {
		o.plan |= planInvoiceFail
	}

	w := &s.whs[o.wh]
	src := intakeSources[ch]
	s.head(evOrderCreated, o, src.source, src.actor, s.actorNum(src.people))
	s.str("warehouse", w.def.code)
	s.time("ship_cutoff", o.cutoff, w.zone.offset(o.cutoff))
	s.str("customer_id", c.id)
	s.str("customer_tier", tierNames[c.tier])
	s.str("channel", channelNames[ch])
	s.int("lines", int64(o.lines))
	s.int("units", int64(o.units))
	s.float("value", o.value)
	s.str("carrier", carrierDefs[o.carrier].code)
	s.str("service_level", serviceNames[o.svc])
	s.time("promised_at", o.promised, w.zone.offset(o.promised))
	s.str("region", c.region)
	s.send()

	check := func() int64 { return s.now + 20*msSecond + r.Int64N(4*msMinute) }
	if o.plan&planHold != 0 {
		s.schedule(i, check(), kCredit, 0)
	}
	if o.plan&planPricing != 0 {
		s.schedule(i, check(), kPricing, 0)
	}
	if o.plan&planMapping != 0 {
		s.schedule(i, check(), kMapping, 0)
	}
	if mapBreak {
		s.schedule(i, s.now+20*msSecond+s.rInc.Int64N(4*msMinute), kMapping, 1)
	}
	if o.plan&planShipToEarly != 0 {
		s.schedule(i, check(), kShipTo, 0)
	}
	o.blocks = blkAlloc
	s.schedule(i, ceilTo(s.now+5*msMinute, 15*msMinute)+r.Int64N(2*msMinute), kAllocate, 0)
	if o.plan&planCancel != 0 {
		s.schedule(i, s.now+10*msMinute+r.Int64N(8*msHour), kCustCancel, 0)
	}
	if o.plan&planQty != 0 {
		s.schedule(i, s.now+5*msMinute+r.Int64N(3*msHour), kQtyChange, 0)
	}
	if o.plan&planNote != 0 {
		s.schedule(i, s.now+2*msMinute+r.Int64N(10*msHour), kNote, 0)
	}
	if o.plan&planTransient != 0 {
		s.schedule(i, s.now+msMinute+r.Int64N(6*msHour), kTransient, 0)
	}
}

func (s *Simulator) chooseCarrier(wh, kind uint8, c *customer) uint8 {
	cands := s.serving[wh][kind]
	pref := c.parcel
	if kind == kindLTL {
		pref = c.ltl
	}
	if containsU8(cands, pref) {
		return pref
	}
	return cands[s.rOrd.IntN(len(cands))]
}

// customerEpisodes moves a customer's past-due and expired-contract episodes forward
// to now.
func (s *Simulator) customerEpisodes(c *customer) {
	r := s.rOrd
	for s.now >= c.pastDueTo {
		mean := [3]float64{150, 25, 7}[c.credit]
		c.pastDueFrom = c.pastDueTo + s.expDays(r, mean)
		c.pastDueTo = c.pastDueFrom + msDay + r.Int64N(5*msDay)
	}
	for s.now >= c.contractTo {
		c.contractFrom = c.contractTo + s.expDays(r, 70)
		c.contractTo = c.contractFrom + 2*msDay + r.Int64N(8*msDay)
	}
}

// lognormal returns median * e^(sigma N(0,1)).
func lognormal(r interface{ NormFloat64() float64 }, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

func minutes(x float64) int64 { return int64(x * float64(msMinute)) }

func cents(x float64) float64 { return math.Round(x*100) / 100 }

type intakeSource struct {
	source, actor string
	people        int // actor is one of this many people or devices, numbered; 0: one system
}

var intakeSources = [numChannels]intakeSource{
	{"edi", "edi-gw", 0}, {"erp", "b2b-portal", 0}, {"erp", "webshop", 0}, {"cs", "cs-agent", 25},
}

func (s *Simulator) actorNum(people int) int {
	if people == 0 {
		return 0
	}
	return 1 + s.rText.IntN(people)
}
