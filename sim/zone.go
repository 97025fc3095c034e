package sim

import "strconv"

// Simulation time is an int64 of milliseconds since the Unix epoch (UTC): cheap to
// compare and to keep in a heap. Local time at a warehouse comes from zone, which
// knows the US daylight-saving rule, so the simulator needs no tz database and gives
// the same result on every machine.

const (
	msSecond = int64(1000)
	msMinute = 60 * msSecond
	msHour   = 60 * msMinute
	msDay    = 24 * msHour
)

// zone is a US time zone: a standard offset and whether daylight saving time
// applies (second Sunday of March 02:00 to first Sunday of November 02:00 local, the
// rule since 2007). It caches the daylight-saving period of the last year asked for,
// so it is not safe for concurrent use.
type zone struct {
	name  string // IANA name, for documentation and tests
	std   int64  // standard offset east of UTC, ms
	dst   bool   // observes daylight saving time
	shift int64  // added to every offset (a live demo moves the network's clocks)
	days  int64  // added to the local day when asking for its weekday (a live demo avoids weekends)

	yFrom, yTo     int64 // the cached year, UTC ms
	dstFrom, dstTo int64 // its daylight-saving period, UTC ms
}

// offset returns the zone's UTC offset at t, ms east of UTC.
func (z *zone) offset(t int64) int64 {
	if !z.dst {
		return z.std + z.shift
	}
	if t < z.yFrom || t >= z.yTo {
		z.fill(t)
	}
	if t >= z.dstFrom && t < z.dstTo {
		return z.std + msHour + z.shift
	}
	return z.std + z.shift
}

func (z *zone) fill(t int64) {
	y, _, _ := civil(floorDiv(t+z.std, msDay))
	z.yFrom = daysFromCivil(y, 1, 1)*msDay - z.std
	z.yTo = daysFromCivil(y+1, 1, 1)*msDay - z.std
	mar1 := daysFromCivil(y, 3, 1)
	secondSunday := mar1 + int64((7-weekday(mar1))%7) + 7
	z.dstFrom = secondSunday*msDay + 2*msHour - z.std
	nov1 := daysFromCivil(y, 11, 1)
	firstSunday := nov1 + int64((7-weekday(nov1))%7)
	z.dstTo = firstSunday*msDay + 2*msHour - z.std - msHour
}

// tzName is the zone's IANA name; for a zone whose clock a live demo moved, the
// fixed-offset Etc zone of its offset at t (Etc/GMT+5 is UTC-5).
func (z *zone) tzName(t int64) string {
	if z.shift == 0 {
		return z.name
	}
	h := -z.offset(t) / msHour
	switch {
	case h == 0:
		return "Etc/GMT"
	case h > 0:
		return "Etc/GMT+" + strconv.FormatInt(h, 10)
	}
	return "Etc/GMT-" + strconv.FormatInt(-h, 10)
}

// local splits t into the local day (days since the epoch), the local weekday
// (Sunday = 0) and the milliseconds into that local day.
func (z *zone) local(t int64) (day int64, wd int, msOfDay int64) {
	lt := t + z.offset(t)
	day = floorDiv(lt, msDay)
	return day, z.weekday(day), lt - day*msDay
}

// weekday of a local day as the network's calendars see it.
func (z *zone) weekday(day int64) int { return weekday(day + z.days) }

// at returns the UTC time of msOfDay on local day; daylight-saving changes are
// taken from the offset at the start of that day.
func (z *zone) at(day, msOfDay int64) int64 {
	t := day*msDay + msOfDay
	return t - z.offset(t-z.std-z.shift)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// weekday of a day counted from 1970-01-01 (a Thursday); Sunday = 0.
func weekday(day int64) int {
	w := (day + 4) % 7
	if w < 0 {
		w += 7
	}
	return int(w)
}

// daysFromCivil and civil convert between proleptic Gregorian dates and days since
// 1970-01-01 (Howard Hinnant's algorithms).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func civil(days int64) (y, m, d int64) {
	days += 719468
	era := floorDiv(days, 146097)
	doe := days - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendMillis appends t as RFC 3339 in UTC with milliseconds:
// 2026-05-18T14:03:11.250Z.
func appendMillis(b []byte, t int64) []byte {
	day := floorDiv(t, msDay)
	b = appendDate(b, day)
	ms := t - day*msDay
	b = appendClock(b, ms)
	b = append(b, '.')
	b = append3(b, ms%1000)
	return append(b, 'Z')
}

// appendLocal appends t as RFC 3339 with seconds in the local time of offset off:
// 2026-05-18T17:00:00-05:00.
func appendLocal(b []byte, t, off int64) []byte {
	lt := t + off
	day := floorDiv(lt, msDay)
	b = appendDate(b, day)
	b = appendClock(b, lt-day*msDay)
	if off == 0 {
		return append(b, 'Z')
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	mins := off / msMinute
	b = append(b, sign)
	b = append2(b, mins/60)
	b = append(b, ':')
	return append2(b, mins%60)
}

func appendDate(b []byte, day int64) []byte {
	y, m, d := civil(day)
	b = append2(b, y/100)
	b = append2(b, y%100)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	return append(b, 'T')
}

func appendClock(b []byte, msOfDay int64) []byte {
	s := msOfDay / 1000
	b = append2(b, s/3600)
	b = append(b, ':')
	b = append2(b, s/60%60)
	b = append(b, ':')
	return append2(b, s%60)
}

func append2(b []byte, n int64) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

func append3(b []byte, n int64) []byte {
	return append(b, byte('0'+n/100), byte('0'+n/10%10), byte('0'+n%10))
}

// span is a period of a local day, [from, to) in minutes, with a staffing level
// (people on shift; 1 for an office that is simply open).
type span struct{ from, to, staff int32 }

// calendar holds a week of spans by local weekday, Sunday = 0, each day's spans
// sorted and not overlapping.
type calendar [7][]span

// staffAt returns the staffing at t and when it next changes.
func (c *calendar) staffAt(z *zone, t int64) (staff int32, next int64) {
	day, wd, ms := z.local(t)
	min := int32(ms / msMinute)
	for _, sp := range c[wd] {
		if min < sp.from {
			return 0, t + int64(sp.from)*msMinute - ms
		}
		if min < sp.to {
			return sp.staff, t + int64(sp.to)*msMinute - ms
		}
	}
	// Closed for the rest of the day: the next change is the first span of a later day.
	for d := int64(1); d <= 7; d++ {
		if sps := c[z.weekday(day+d)]; len(sps) > 0 {
			return 0, t + d*msDay - ms + int64(sps[0].from)*msMinute
		}
	}
	return 0, t + 7*msDay // never open
}

// addWork returns when work ms of working time started at t are done, counting only
// the calendar's open spans: a task begun at 16:45 in an office that closes at 17:00
// finishes the next working morning. work 0 gives the next open moment.
func (c *calendar) addWork(z *zone, t, work int64) int64 {
	for range 60 { // at most 60 days ahead; calendars open at least weekly
		_, wd, ms := z.local(t)
		for _, sp := range c[wd] {
			from, to := int64(sp.from)*msMinute, int64(sp.to)*msMinute
			if ms >= to {
				continue
			}
			start := max(ms, from)
			if avail := to - start; work <= avail {
				return t + (start - ms) + work
			} else {
				work -= avail
			}
			t += to - ms
			ms = to
		}
		t += msDay - ms
	}
	return t + work
}
