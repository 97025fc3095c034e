package sim

// The distribution network: warehouses with shifts and time zones, carriers with
// pickup schedules, the offices whose hours decide when holds are released, and the
// channels orders come in through. All tables here are read-only; the simulator
// copies what it mutates.

// US time zones, standard offsets.
var (
	zoneCentral  = zone{name: "America/Chicago", std: -6 * msHour, dst: true}
	zoneEastern  = zone{name: "America/New_York", std: -5 * msHour, dst: true}
	zonePacific  = zone{name: "America/Los_Angeles", std: -8 * msHour, dst: true}
	zoneMountain = zone{name: "America/Phoenix", std: -7 * msHour, dst: false}
)

// Service levels, as they appear in order.created and shipment.confirmed.
const (
	svcGround = iota
	svc2Day
	svcNextDay
	svcLTL
	numServices
)

var serviceNames = [numServices]string{"ground", "2day", "next_day", "ltl"}

// Pickup kinds: which trucks take which service levels.
const (
	kindGround = iota // parcel ground
	kindAir           // parcel 2day and next_day
	kindLTL           // less than truckload
	numKinds
)

var serviceKind = [numServices]uint8{kindGround, kindAir, kindAir, kindLTL}

// Channels orders arrive through.
const (
	chEDI = iota
	chPortal
	chEcommerce
	chCS
	numChannels
)

var channelNames = [numChannels]string{"edi", "portal", "ecommerce", "customer_service"}

var tierNames = [4]string{"standard", "silver", "gold", "platinum"}

// warehouseDef describes one warehouse. Staff are pickers on shift at scale 1.
type warehouseDef struct {
	code    string
	zone    zone
	share   float64 // share of the network's orders
	regions []string
	cities  []string // for carrier messages
	shifts  calendar
	recv    calendar // receiving dock: replenishment arrives in these hours
}

// weekdays builds a calendar with the same spans Monday to Friday and others on
// Saturday and Sunday.
func weekdays(mf, sat, sun []span) calendar {
	return calendar{sun, mf, mf, mf, mf, mf, sat}
}

// withMonday staffs Monday's shifts by f: overtime for the weekend's orders.
func withMonday(c calendar, f float64) calendar {
	mon := make([]span, len(c[1]))
	for i, sp := range c[1] {
		sp.staff = int32(float64(sp.staff)*f + 0.5)
		mon[i] = sp
	}
	c[1] = mon
	return c
}

func hm(h, m int32) int32 { return h*60 + m }

var warehouseDefs = [...]warehouseDef{
	{
		code: "DAL", zone: zoneCentral, share: 0.27,
		regions: []string{"TX", "OK", "LA", "AR", "KS"},
		cities:  []string{"Dallas", "Fort Worth", "Oklahoma City", "Shreveport", "Memphis"},
		shifts: withMonday(weekdays(
			[]span{{hm(6, 0), hm(14, 30), 17}, {hm(14, 30), hm(23, 0), 13}},
			[]span{{hm(7, 0), hm(15, 0), 8}}, []span{{hm(14, 0), hm(22, 0), 6}}), 1.3),
		recv: weekdays([]span{{hm(6, 0), hm(12, 0), 1}}, []span{{hm(7, 0), hm(11, 0), 1}}, nil),
	},
	{
		code: "ATL", zone: zoneEastern, share: 0.23,
		regions: []string{"GA", "FL", "SC", "AL", "TN"},
		cities:  []string{"Atlanta", "Jacksonville", "Charlotte", "Birmingham", "Nashville"},
		shifts: withMonday(weekdays(
			[]span{{hm(7, 0), hm(15, 30), 15}, {hm(15, 30), hm(24, 0), 11}},
			[]span{{hm(8, 0), hm(14, 0), 7}}, []span{{hm(14, 0), hm(22, 0), 5}}), 1.3),
		recv: weekdays([]span{{hm(7, 0), hm(13, 0), 1}}, []span{{hm(8, 0), hm(12, 0), 1}}, nil),
	},
	{
		code: "CMH", zone: zoneEastern, share: 0.20,
		regions: []string{"OH", "PA", "MI", "IN", "NY"},
		cities:  []string{"Columbus", "Pittsburgh", "Detroit", "Indianapolis", "Buffalo"},
		shifts: calendar{
			{{hm(22, 0), hm(24, 0), 5}}, // Sunday night shift starts the week
			{{0, hm(6, 0), 5}, {hm(6, 0), hm(14, 0), 14}, {hm(14, 0), hm(22, 0), 13}, {hm(22, 0), hm(24, 0), 5}},
			{{0, hm(6, 0), 5}, {hm(6, 0), hm(14, 0), 11}, {hm(14, 0), hm(22, 0), 10}, {hm(22, 0), hm(24, 0), 5}},
			{{0, hm(6, 0), 5}, {hm(6, 0), hm(14, 0), 11}, {hm(14, 0), hm(22, 0), 10}, {hm(22, 0), hm(24, 0), 5}},
			{{0, hm(6, 0), 5}, {hm(6, 0), hm(14, 0), 11}, {hm(14, 0), hm(22, 0), 10}, {hm(22, 0), hm(24, 0), 5}},
			{{0, hm(6, 0), 5}, {hm(6, 0), hm(14, 0), 11}, {hm(14, 0), hm(22, 0), 9}},
			{{hm(6, 0), hm(14, 0), 6}},
		},
		recv: weekdays([]span{{hm(5, 0), hm(13, 0), 1}}, []span{{hm(6, 0), hm(10, 0), 1}}, nil),
	},
	{
		code: "RNO", zone: zonePacific, share: 0.17,
		regions: []string{"NV", "CA", "OR", "WA", "UT"},
		cities:  []string{"Reno", "Sacramento", "Portland", "Salt Lake City", "Oakland"},
		shifts: withMonday(weekdays(
			[]span{{hm(6, 0), hm(16, 30), 21}},
			[]span{{hm(6, 0), hm(16, 30), 11}}, nil), 1.3),
		recv: weekdays([]span{{hm(6, 0), hm(11, 0), 1}}, []span{{hm(6, 0), hm(10, 0), 1}}, nil),
	},
	{
		code: "PHX", zone: zoneMountain, share: 0.13,
		regions: []string{"AZ", "NM", "CO", "NV"},
		cities:  []string{"Phoenix", "Tucson", "Albuquerque", "Denver", "Las Vegas"},
		shifts: withMonday(weekdays(
			[]span{{hm(5, 0), hm(13, 30), 8}, {hm(13, 30), hm(22, 0), 6}},
			[]span{{hm(6, 0), hm(12, 0), 4}}, nil), 1.3),
		recv: weekdays([]span{{hm(5, 0), hm(11, 0), 1}}, nil, nil),
	},
}

const numWarehouses = len(warehouseDefs)

// Carriers. Parcel carriers serve ground, 2day and next_day; LTL carriers serve ltl.
type carrierDef struct {
	code     string
	parcel   bool
	onTime   float64 // long-run share of pickups on time
	delayMed float64 // median delay of a late pickup, minutes
	noShow   float64 // share of late pickups that do not happen at all
}

var carrierDefs = [...]carrierDef{
	{code: "UPSN", parcel: true, onTime: 0.994, delayMed: 25, noShow: 0.06},
	{code: "FDXG", parcel: true, onTime: 0.99, delayMed: 30, noShow: 0.08},
	{code: "ODFL", onTime: 0.975, delayMed: 50, noShow: 0.12},
	{code: "XPO", onTime: 0.95, delayMed: 65, noShow: 0.2},
	{code: "SAIA", onTime: 0.96, delayMed: 55, noShow: 0.15},
}

const numCarriers = len(carrierDefs)

// pickupDef is one scheduled daily pickup of a carrier at a warehouse, local time.
// days is a weekday bit mask (bit 0 Sunday).
type pickupDef struct {
	wh, carrier, kind uint8
	minute            int32
	days              uint8
}

const (
	monFri = 0b0111110
	sat    = 0b1000000
)

// pickupDefs is the pickup schedule. ship_cutoff of an order is the scheduled time
// of the first pickup of its carrier and kind that leaves enough lead time.
var pickupDefs = func() []pickupDef {
	var p []pickupDef
	add := func(wh, car, kind int, h, m int32, days uint8) {
		p = append(p, pickupDef{uint8(wh), uint8(car), uint8(kind), hm(h, m), days})
	}
	const (
		ups, fdx, odfl, xpo, saia = 0, 1, 2, 3, 4
		dal, atl, cmh, rno, phx   = 0, 1, 2, 3, 4
	)
	// Parcel: a ground truck in the afternoon, an air truck later; Saturday ground at the
	// big sites.
	for _, g := range []struct {
		wh   int
		h, m int32
	}{{dal, 17, 0}, {atl, 16, 30}, {cmh, 17, 30}, {rno, 16, 0}, {phx, 15, 30}} {
		add(g.wh, ups, kindGround, g.h, g.m, monFri)
		add(g.wh, ups, kindAir, g.h+1, g.m+15, monFri)
		add(g.wh, fdx, kindGround, g.h, g.m-30, monFri)
		add(g.wh, fdx, kindAir, g.h+1, g.m, monFri)
	}
	// Morning air pickups at the big sites: next-day orders of the night ship early.
	for _, wh := range []int{dal, atl, cmh} {
		add(wh, ups, kindAir, 10, 0, monFri)
	}
	add(dal, fdx, kindAir, 10, 30, monFri)
	add(atl, fdx, kindAir, 10, 30, monFri)
	for _, wh := range []int{dal, atl, cmh} {
		add(wh, ups, kindGround, 12, 0, sat)
		add(wh, fdx, kindAir, 12, 30, sat)
	}
	// LTL: ODFL twice a day at the big sites, the others once.
	for _, wh := range []int{dal, atl, cmh} {
		add(wh, odfl, kindLTL, 10, 30, monFri)
		add(wh, odfl, kindLTL, 15, 0, monFri)
		add(wh, xpo, kindLTL, 14, 30, monFri)
	}
	add(rno, odfl, kindLTL, 14, 0, monFri)
	add(rno, xpo, kindLTL, 13, 30, monFri)
	add(phx, odfl, kindLTL, 14, 0, monFri)
	for _, wh := range []int{dal, atl, phx} {
		add(wh, saia, kindLTL, 13, 0, monFri)
	}
	return p
}()

// Offices whose hours decide when people resolve exceptions (HQ in Dallas, IT in
// Atlanta).
var (
	financeHours = weekdays([]span{{hm(8, 0), hm(17, 0), 1}}, nil, nil)
	priceDesk    = weekdays([]span{{hm(7, 30), hm(18, 0), 1}}, nil, nil)
	csHours      = weekdays([]span{{hm(7, 0), hm(19, 0), 1}}, []span{{hm(8, 0), hm(14, 0), 1}}, nil)
	itHours      = weekdays([]span{{hm(7, 0), hm(19, 0), 1}}, []span{{hm(8, 0), hm(12, 0), 1}}, nil)
	anyHours     = calendar{{{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}, {{0, hm(24, 0), 1}}}
)

// Order arrivals at scale 1: weekday orders per day by channel, and profiles over the
// week (Sunday first) and the hours of the day, HQ local time. EDI arrives in
// translator batches, the portal in office hours, web shops into the evening and on
// weekends, customer service while the phones are staffed.
const ordersPerWeekday = 5600

var (
	channelShare = [numChannels]float64{0.34, 0.26, 0.26, 0.14}
	weekProfile  = [numChannels][7]float64{
		{0.08, 1.15, 1.05, 1, 1, 0.95, 0.15},
		{0.05, 1.15, 1.05, 1, 1, 0.9, 0.12},
		{0.9, 1.1, 1, 1, 0.95, 0.95, 0.9},
		{0, 1.15, 1.05, 1, 1, 0.95, 0.2},
	}
	hourProfile = [numChannels][24]float64{
		{0.3, 4, 0.6, 0.3, 0.3, 4, 0.8, 0.8, 0.8, 4, 0.8, 0.8, 0.8, 4, 0.8, 0.8, 4, 0.8, 0.6, 0.5, 2.5, 0.4, 0.3, 0.3},
		{0.2, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 2.5, 3, 3, 2.5, 2, 2.8, 3, 2.6, 2.2, 1.3, 0.8, 0.5, 0.5, 0.4, 0.3, 0.3},
		{0.6, 0.4, 0.3, 0.3, 0.3, 0.4, 0.6, 1, 1.2, 1.5, 1.5, 1.6, 2, 2, 1.6, 1.6, 1.6, 1.7, 2, 2.3, 2.4, 2.2, 1.8, 1.2},
		{0, 0, 0, 0, 0, 0, 0, 0.8, 3, 3, 3, 3, 2, 3, 3, 3, 2.8, 1.2, 0.3, 0, 0, 0, 0, 0},
	}
)
