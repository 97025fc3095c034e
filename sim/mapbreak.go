package sim

// Map breaks: a trading partner (an EDI customer) pushes a bad map. For one to four
// hours every order it sends fails mapping with one code; then the corrected map
// comes and the held orders are reprocessed together. Breaks start in office hours
// (08-17 Central, Mon-Fri): the first in the first three office hours published,
// then as a Poisson process at params.mapBreaks a weekday times the scale, the
// partner drawn by its order volume. Everything about them draws
// from their own random stream (rInc), so a scenario without them simulates the
// same network as before they existed.

// partnerHours is when trading partners change their maps (HQ time).
var partnerHours = weekdays([]span{{hm(8, 0), hm(17, 0), 1}}, nil, nil)

// partnerDay is the office time of a weekday in partnerHours.
const partnerDay = 9 * msHour

// nextMapBreak returns when the next map break after t starts.
func (s *Simulator) nextMapBreak(t int64) int64 {
	gap := int64(s.rInc.ExpFloat64() * float64(partnerDay) / (s.p.mapBreaks * s.scale))
	return partnerHours.addWork(&s.hq, t, max(gap, msMinute))
}

// mapBreak starts a map break at a trading partner not in one already.
func (s *Simulator) mapBreak() {
	r := s.rInc
	s.q.push(s.nextMapBreak(s.now), kMapBreak, 0, 0)
	cum := s.chanCum[chEDI]
	u := r.Float64() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] > u {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	c := &s.custs[s.byChan[chEDI][lo]]
	if c.channel != chEDI || s.now < c.mapTo {
		return
	}
	c.mapFrom = s.now
	c.mapTo = s.now + msHour + r.Int64N(3*msHour)
	c.mapCode = uint8(r.IntN(4)) // one of the EDI failures of txtMapping
}

// inMapBreak reports whether an order of customer c created now fails mapping by
// its partner's map break.
func (s *Simulator) inMapBreak(c *customer) bool {
	return c.channel == chEDI && s.now >= c.mapFrom && s.now < c.mapTo
}

// mapBroken is the mapping failure of an order sent during its partner's map
// break: the break's code, and the fix when the corrected map comes, within ten
// minutes of the break's end for every order of the break.
func (s *Simulator) mapBroken(i int32, o *order) {
	c := &s.custs[o.cust]
	ct := &txtMapping[c.mapCode]
	rt := s.rText
	s.rText = s.rInc
	s.head(evIntegrationError, o, ct.system, "edi-gw", 0)
	s.coded(ct, &textCtx{o: o})
	s.send()
	s.rText = rt
	if s.wantCause(o) {
		s.cause(o, CauseEDIMapping, c.id, millis(c.mapFrom))
	}
	s.schedule(i, max(c.mapTo, s.now)+s.rInc.Int64N(10*msMinute), kMappingFix, 1)
}
