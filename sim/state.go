package sim

import "math"

// What the simulation keeps: the network's state and one slot per open order. Slots
// are reused once an order is finished and nothing refers to it any more, so memory
// follows the open orders, not the length of the run.

// ref names an order slot in a list (ready, dock, billing); tok tells a stale entry
// (the slot was reused) from a live one.
type ref struct {
	i   int32
	tok uint32
}

// Order stages.
const (
	stNew       = iota // created; checks and allocation under way
	stReady            // released to the warehouse at its next wave
	stReleasing        // in a wave, pick.released coming
	stQueued           // waiting for a picker
	stPicking
	stPacking
	stHeld // packed, waiting for a ship-to fix
	stDocked
	stShipping // on the truck, shipment.confirmed coming
	stShipped
	stInvoiced
	stCancelled
)

// Blocks: what keeps an order from the warehouse.
const (
	blkAlloc = 1 << iota // not allocated yet, or short
	blkCredit
	blkPricing
	blkMapping
	blkShipTo
)

// Plans: what will happen to an order, drawn when it is created.
const (
	planHold = 1 << iota
	planHoldNever
	planHoldAuto
	planPricing
	planMapping
	planMappingAuto
	planShipToEarly
	planShipToLate
	planShort
	planCancel
	planQty
	planNote
	planTransient
	planInvoiceFail
)

// Ways a shortfall is resolved.
const (
	shortRealloc = iota // allocated at another warehouse
	shortSub            // customer accepts a substitute
	shortReceipt        // waits for the next receipt
)

type order struct {
	seq                 int64
	created, cutoff     int64
	promised, notBefore int64
	value               float64
	plan                uint32
	cust                int32
	lines, units        int32
	pending             int32  // queue items that refer to the order
	tok                 uint32 // incarnation of the slot
	wh, carrier, svc    uint8
	ch, stage, blocks   uint8
	short               uint8
	visible, labelled   bool
	invFailed, noted    bool

	relOpen    int64 // warehouse open-clock when released
	whWait     int64 // open time spent waiting for a picker so far
	releasedAt int64
	dockedAt   int64
	shipAt     int64
	endAt      int64
	carrierHit int64 // scheduled pickup (at or after the cutoff) the truck failed
	causedBy   int64 // the scheduled pickup of the last carrier_pickup cause reported

	excAt    [numClasses]int64 // when each exception happened, 0 if not
	excDelay [numClasses]int64 // the delay it caused
}

func (o *order) finished() bool { return o.stage == stInvoiced || o.stage == stCancelled }

// exc records an exception the first time it happens.
func (o *order) exc(cls int, at int64) {
	if o.excAt[cls] == 0 {
		o.excAt[cls] = at
	}
}

// resolve sets the delay an exception caused: from when it happened to now.
func (o *order) resolve(cls int, now int64) {
	if o.excAt[cls] != 0 {
		o.excDelay[cls] = max(o.excDelay[cls], now-o.excAt[cls])
	}
}

type whState struct {
	def         *warehouseDef
	zone        zone
	staff       int32 // pickers scheduled now (scaled)
	busy        int32
	outage      bool
	outageUntil int64   // the end of the longest outage under way
	outageFrom  int64   // the start of the outage under way, or of the last one
	slow        float64 // staffing factor while recovering from an outage
	queue       pickQueue
	queued      int32 // live entries of queue
	ready       []ref
	dock        [numCarriers][numKinds][]ref
	tight       float64 // stock tightness; 1 normal
	openAcc     int64   // scheduled-open time so far, ms
	openSince   int64   // when the current open period began (staff > 0)
	capacity    int32   // orders per hour at the current staffing
	staffMul    float64 // staffing for the site's expected volume, times the calendar
	work        float64 // expected picking minutes a week
}

// openClock is the warehouse's scheduled-open time up to t: waiting overnight does
// not count as waiting for a picker.
func (w *whState) openClock(t int64) int64 {
	if w.staff > 0 {
		return w.openAcc + t - w.openSince
	}
	return w.openAcc
}

// pickers is how many orders can be picked at once now.
func (w *whState) pickers() int32 {
	if w.outage {
		return 0
	}
	return int32(math.Round(float64(w.staff) * w.slow))
}

type carState struct {
	rel   float64 // current chance of an on-time pickup (drifts)
	share float64 // measured on-time share of pickups (moving average)
	delay float64 // measured minutes late of late pickups (moving average)
}

type pickupState struct {
	sched  int64   // scheduled time of the pickup under way
	arrive int64   // when the truck is at the dock and loading starts
	volume float64 // LTL: moving average of the pallets due, sizes the trailers
	late   bool
	noShow bool
}

type customer struct {
	id                       string
	region                   string
	weight                   float64 // share of its channel's orders
	lineMul, priceLvl        float64
	rush, shipToMul          float64
	typical                  float64 // moving average of its order values
	pastDueFrom, pastDueTo   int64   // current or next past-due episode
	contractFrom, contractTo int64   // current or next expired price contract
	mapFrom, mapTo           int64   // EDI partners: the current or last map break
	mapCode                  uint8   // its failure, an index of txtMapping
	tier, channel, wh        uint8
	credit                   uint8 // 0 good, 1 watch, 2 risky
	parcel, ltl              uint8 // preferred carriers
}
