package sim

import (
	"math"
	"strconv"
)

// build sets up the network's state and the first happenings of every recurring
// process: arrivals, waves, shifts, load reports, carrier scorecards, pickups,
// billing runs, outages and the scenario's episodes.
func (s *Simulator) build() {
	for i := range s.whs {
		w := &s.whs[i]
		w.def = &warehouseDefs[i]
		w.zone = w.def.zone
		w.zone.shift, w.zone.days = s.hq.shift, s.hq.days
		w.tight, w.slow = 1, 1
		s.q.push(s.start, kStaff, int32(i), 0)
		s.q.push(ceilTo(s.start, 15*msMinute), kWave, int32(i), 0)
		s.q.push(s.start+int64(i)*msMinute, kLoad, int32(i), 0)
		s.q.push(s.start+s.expDays(s.rNet, s.p.outageDays), kOutage, int32(i), 0)
	}
	for i := range s.cars {
		d := &carrierDefs[i]
		c := &s.cars[i]
		c.rel = min(d.onTime+s.p.onTime, 0.995)
		c.share, c.delay = c.rel, d.delayMed
		s.q.push(s.start+int64(2*i+1)*msMinute, kPerf, int32(i), 0)
	}
	s.pickups = make([]pickupState, len(pickupDefs))
	for i := range pickupDefs {
		pd := &pickupDefs[i]
		sched := s.nextPickupOf(i, s.start)
		s.pickups[i].sched = sched
		s.q.push(max(s.start, sched-msHour), kPickupPlan, int32(i), 0)
		kinds := &s.serving[pd.wh][pd.kind]
		if !containsU8(*kinds, pd.carrier) {
			*kinds = append(*kinds, pd.carrier)
		}
	}
	s.q.push(s.nextBilling(s.start), kBilling, 0, 0)
	if s.p.storms { // the first on the first day published
		s.q.push(s.pubAt+8*msHour+s.rNet.Int64N(8*msHour), kStorm, 0, 0)
	}
	s.buildCustomers()
	s.buildArrivals()
	s.planStaff()
	if s.p.bigOutages { // the first hits the busiest site on the first weekday morning
		for w := range s.whs {
			if s.whs[w].work > s.whs[s.outTurn].work {
				s.outTurn = w
			}
		}
		s.q.push(s.outageStart(s.outTurn, s.pubAt+6*msHour), kBigOutage, int32(s.outTurn), 0)
	}
	if s.p.mapBreaks > 0 { // the first in the first office hours published
		s.q.push(partnerHours.addWork(&s.hq, s.pubAt, s.rInc.Int64N(3*msHour)), kMapBreak, 0, 0)
	}
	if s.drillFor > 0 {
		s.q.push(s.pubAt, kDrill, 0, 0)
	}
	s.q.push(s.start, kArrival, 0, 0)
}

func (s *Simulator) buildCustomers() {
	r := s.rNet
	n := int(math.Round(600 * s.scale))
	n = min(max(n, 60), 30000)
	s.custs = make([]customer, n)
	var whCum [numWarehouses]float64
	total := 0.0
	for i := range warehouseDefs {
		total += warehouseDefs[i].share
		whCum[i] = total
	}
	for i := range s.custs {
		c := &s.custs[i]
		c.id = "C-" + strconv.Itoa(10001+i)
		c.channel = uint8(weightedIndex(r, 0.16, 0.30, 0.38, 0.16))
		c.weight = math.Exp(r.NormFloat64())
		u := r.Float64() * total
		for w := range whCum {
			if u < whCum[w] || w == numWarehouses-1 {
				c.wh = uint8(w)
				break
			}
		}
		regions := warehouseDefs[c.wh].regions
		c.region = regions[r.IntN(len(regions))]
		switch u := r.Float64(); {
		case u < 0.06+0.12*b2f(c.weight > 2.5):
			c.tier = 3
		case u < 0.22+0.12*b2f(c.weight > 2.5):
			c.tier = 2
		case u < 0.47:
			c.tier = 1
		}
		c.credit = uint8(weightedIndex(r, 0.78, 0.16, 0.06))
		c.lineMul = math.Exp(0.35 * r.NormFloat64())
		c.priceLvl = math.Exp(0.25 * r.NormFloat64())
		c.rush = [4]float64{0.06, 0.1, 0.18, 0.3}[c.tier]
		c.shipToMul = 1
		if c.channel == chEcommerce || c.channel == chPortal {
			c.shipToMul = math.Exp(0.7 * r.NormFloat64())
		}
		c.parcel = uint8(weightedIndex(r, 0.55, 0.45))
		c.ltl = uint8(2 + r.IntN(3))
		mean := [3]float64{150, 25, 7}[c.credit]
		c.pastDueFrom = s.start + int64((r.ExpFloat64()-0.3)*mean*float64(msDay))
		c.pastDueTo = c.pastDueFrom + msDay + r.Int64N(5*msDay)
		c.contractFrom = s.start + int64((r.ExpFloat64()-0.2)*70*float64(msDay))
		c.contractTo = c.contractFrom + 2*msDay + r.Int64N(8*msDay)
		s.byChan[c.channel] = append(s.byChan[c.channel], int32(i))
	}
	for ch := range s.byChan {
		if len(s.byChan[ch]) == 0 { // tiny networks: every channel has someone
			s.byChan[ch] = append(s.byChan[ch], int32(ch%len(s.custs)))
		}
		cum := make([]float64, len(s.byChan[ch]))
		t := 0.0
		for j, ci := range s.byChan[ch] {
			t += s.custs[ci].weight
			cum[j] = t
		}
		s.chanCum[ch] = cum
	}
}

// buildArrivals tabulates the order arrival intensity per ms by HQ weekday, hour and
// channel, and its maximum for thinning.
func (s *Simulator) buildArrivals() {
	for ch := range numChannels {
		sum := 0.0
		for _, v := range hourProfile[ch] {
			sum += v
		}
		for wd := range 7 {
			for h := range 24 {
				s.arrRate[wd][h][ch] = ordersPerWeekday * channelShare[ch] * weekProfile[ch][wd] *
					hourProfile[ch][h] / sum / float64(msHour) * s.scale * s.p.demand
			}
		}
	}
	for wd := range 7 {
		for h := range 24 {
			t := 0.0
			for ch := range numChannels {
				t += s.arrRate[wd][h][ch]
			}
			s.arrMax = max(s.arrMax, t)
		}
	}
}

// nextPickupOf returns the first scheduled time of pickup definition i at or after t.
func (s *Simulator) nextPickupOf(i int, t int64) int64 {
	pd := &pickupDefs[i]
	z := &s.whs[pd.wh].zone
	day, _, _ := z.local(t)
	for d := int64(0); d <= 8; d++ {
		if pd.days&(1<<z.weekday(day+d)) == 0 {
			continue
		}
		if at := z.at(day+d, int64(pd.minute)*msMinute); at >= t {
			return at
		}
	}
	return t + 7*msDay
}

// nextPickup returns the scheduled time of the first pickup of carrier car with kind
// at warehouse wh at or after t.
func (s *Simulator) nextPickup(wh, car, kind uint8, t int64) int64 {
	best := int64(math.MaxInt64)
	for i := range pickupDefs {
		pd := &pickupDefs[i]
		if pd.wh == wh && pd.carrier == car && pd.kind == kind {
			best = min(best, s.nextPickupOf(i, t))
		}
	}
	if best == math.MaxInt64 {
		return t + msDay
	}
	return best
}

// Billing runs at 06:00, 13:00 and 21:00 HQ time every day.
var billingHours = [...]int64{6, 13, 21}

func (s *Simulator) nextBilling(t int64) int64 {
	day, _, ms := s.hq.local(t)
	for d := int64(0); d < 2; d++ {
		for _, h := range billingHours {
			if d > 0 || h*msHour > ms {
				return s.hq.at(day+d, h*msHour)
			}
		}
	}
	return t + msDay
}

// outageStart returns a time between 09:00 and 11:00 local on the first weekday at
// warehouse wh at or after t.
func (s *Simulator) outageStart(wh int, t int64) int64 {
	z := &s.whs[wh].zone
	day, _, ms := z.local(t)
	if ms > 9*msHour {
		day++
	}
	for z.weekday(day) == 0 || z.weekday(day) == 6 {
		day++
	}
	return z.at(day, 9*msHour+s.rNet.Int64N(2*msHour))
}

func (s *Simulator) expDays(r interface{ ExpFloat64() float64 }, days float64) int64 {
	return int64(r.ExpFloat64() * days * float64(msDay))
}

func ceilTo(t, step int64) int64 { return floorDiv(t+step-1, step) * step }

func containsU8(xs []uint8, x uint8) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// weightedIndex draws an index with the given weights (they need not sum to 1).
func weightedIndex(r interface{ Float64() float64 }, w ...float64) int {
	t := 0.0
	for _, x := range w {
		t += x
	}
	u := r.Float64() * t
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// targetUtilization is the share of the week's shift time the forecast picking
// work fills: sites are staffed for their customers' expected volume, with room for
// the daily peaks and the Monday backlog but not for a surge.
const targetUtilization = 0.86

// planStaff sets each warehouse's staffing multiplier so that its shifts, at the
// calendar's proportions, cover the picking work its customers are expected to
// bring in a week at targetUtilization.
func (s *Simulator) planStaff() {
	var work [numWarehouses]float64 // expected picking minutes per week
	var chanWeight [numChannels]float64
	for i := range s.custs {
		chanWeight[s.custs[i].channel] += s.custs[i].weight
	}
	for i := range s.custs {
		c := &s.custs[i]
		week := 0.0
		for _, f := range weekProfile[c.channel] {
			week += f
		}
		orders := ordersPerWeekday * channelShare[c.channel] * week * c.weight / chanWeight[c.channel]
		lines := lineBase[c.channel] + lineMean[c.channel]*c.lineMul - 0.5
		mins := (2 + 0.9*max(lines, 1)) * 1.046
		work[c.wh] += 0.9 * orders * mins
		for w := range numWarehouses {
			work[w] += 0.1 * orders * mins * warehouseDefs[w].share
		}
	}
	for w := range numWarehouses {
		var pickerMinutes float64
		for _, day := range warehouseDefs[w].shifts {
			for _, sp := range day {
				pickerMinutes += float64((sp.to - sp.from) * sp.staff)
			}
		}
		s.whs[w].staffMul = work[w] / (pickerMinutes * targetUtilization)
		s.whs[w].work = work[w]
	}
}
