package sim

import (
	"fmt"
	"strings"
)

// Scenario names the conditions the network runs under.
type Scenario string

// The scenarios. The README describes what each models and its measured base rates.
const (
	// Normal is an ordinary week: queues build in the mornings and after weekends,
	// carriers are mostly on time, a short warehouse outage now and then.
	Normal Scenario = "normal"
	// Peak is the holiday season: 40% more orders against 10% more staff (plus the
	// overtime a backlog brings), more stock shortfalls, promotions that trip
	// prices, customers over their limits, slower offices, carriers a little less
	// reliable and LTL trailers that fill up.
	Peak Scenario = "peak"
	// CarrierDisruption adds storms: from the first morning on, and again one to
	// five days after the last one ended, a region's pickups of one parcel and one
	// LTL carrier become unreliable for 30 to 60 hours, the region's other carriers
	// suffer a little, and its shipments are delayed in transit.
	CarrierDisruption Scenario = "carrier-disruption"
	// WarehouseOutage adds system outages: on the first weekday morning the busiest
	// warehouse loses its WMS for five to ten hours and recovers at half speed while
	// a fifth of its open work is moved to other warehouses; another site follows
	// one to two and a half days later, and so on. Short outages come twice as often.
	WarehouseOutage Scenario = "warehouse-outage"
	// Incidents is WarehouseOutage with map breaks and outage notices, so that
	// every kind of cause that touches many orders shows in the orders' events
	// from the first day on, for measuring incident grouping against the ground
	// truth of Options.Causes. Map breaks: in office hours, an EDI trading partner
	// pushes a bad map and every order it sends for one to four hours fails
	// mapping with one code, until the fixed map comes and they are reprocessed
	// together; the first in the first office hours published, then
	// MapBreaksPerDay a weekday at scale 1. Outage notices: while a warehouse's
	// WMS is down, the orders waiting for its next wave get an integration.error
	// (WMS_CONN) as their download fails, not only some of those already queued.
	// The models are not trained on it.
	Incidents Scenario = "incidents"
)

// MapBreaksPerDay is the rate of map breaks of the Incidents scenario and of the
// live demo: across the network at scale 1, per weekday (more trading partners,
// more breaks: it grows with the scale).
const MapBreaksPerDay = 0.6

// Scenarios lists every scenario.
var Scenarios = []Scenario{Normal, Peak, CarrierDisruption, WarehouseOutage, Incidents}

// ParseScenario returns the scenario named s.
func ParseScenario(s string) (Scenario, error) {
	for _, sc := range Scenarios {
		if string(sc) == s {
			return sc, nil
		}
	}
	names := make([]string, len(Scenarios))
	for i, sc := range Scenarios {
		names[i] = string(sc)
	}
	return "", fmt.Errorf("%w %q: want %s", ErrUnknownScenario, s, strings.Join(names, ", "))
}

// params are a scenario's knobs; 1 means as in Normal.
type params struct {
	demand      float64 // order arrivals
	staff       float64 // pickers on shift
	shortage    float64 // per-line chance of a stock shortfall
	creditHold  float64 // chance of a credit hold
	pricing     float64 // chance of a pricing exception
	review      float64 // time people take to resolve exceptions
	onTime      float64 // added to every carrier's on-time share
	trailer     float64 // LTL trailer capacity
	outageDays  float64 // mean days between short outages per warehouse
	transit     float64 // chance of a delay in transit
	storms      bool    // carrier disruption episodes
	bigOutages  bool    // warehouse outage episodes
	episodeDays float64 // episodes come one day plus up to this many days after the last
	mapBreaks   float64 // EDI map breaks a weekday at scale 1; 0: none
	outageNotes bool    // outages reach the orders waiting for a wave (integration.error)
}

func (sc Scenario) params() params {
	p := params{demand: 1, staff: 1, shortage: 1, creditHold: 1, pricing: 1, review: 1,
		trailer: 1, outageDays: 18, transit: 1, episodeDays: 4}
	switch sc {
	case Peak:
		p.demand, p.staff, p.shortage, p.creditHold, p.pricing, p.review = 1.4, 1.1, 2.5, 1.5, 2.0, 1.5
		p.onTime, p.trailer, p.transit = -0.03, 0.7, 1.6
	case CarrierDisruption:
		p.storms, p.transit = true, 1.5
	case WarehouseOutage:
		p.bigOutages, p.outageDays, p.episodeDays = true, 9, 1.5
	case Incidents:
		p.bigOutages, p.outageDays, p.episodeDays = true, 9, 1.5
		p.mapBreaks, p.outageNotes = MapBreaksPerDay, true
	}
	return p
}
