package sim

import (
	"math/rand/v2"
	"strconv"
)

// Free text as people and systems write it. A template has literal text, choices
// {a|b|c} (no nesting) and placeholders:
//
//	%n 5-digit number   %N 7-digit number   %i 9-digit control number
//	%d days 2..45       %k count 1..24      %l line number of the order
//	%a dollar amount    %m minutes (ctx)    %h hours (ctx, one decimal)
//	%t clock time (ctx) %g date mm/dd (ctx) %w warehouse   %x other warehouse
//	%c city             %r carrier          %s SKU         %z ZIP code
//	%p PRO number       %q queue (ctx)      %u unit of measure
//
// People's texts get typos (a dropped, swapped or doubled letter) and sometimes
// all lower or upper case; systems' texts do not. No text names an exception class:
// the class is for the model to infer (a test checks).

type textSet struct {
	human bool
	tmpl  []string
}

// textCtx carries what placeholders refer to.
type textCtx struct {
	o        *order
	wh, wh2  string
	car      string
	city     string
	minutes  int64 // %m, %h
	clock    int64 // %t: local ms of day
	day      int64 // %g: local day
	queue    int64 // %q
	valueMul float64
}

var uoms = []string{"CSE", "CS", "EA", "PK", "BX", "DZ", "PL", "CT"}

// render writes a text from set into s.tbuf.
func (s *Simulator) render(set *textSet, c *textCtx) []byte {
	r := s.rText
	t := set.tmpl[r.IntN(len(set.tmpl))]
	b := s.tbuf[:0]
	for i := 0; i < len(t); i++ {
		switch ch := t[i]; {
		case ch == '{':
			j := i + 1
			for j < len(t) && t[j] != '}' {
				j++
			}
			// Count the alternatives, pick one, expand it.
			alts := 1
			for k := i + 1; k < j; k++ {
				if t[k] == '|' {
					alts++
				}
			}
			pick, start := r.IntN(alts), i+1
			for k := i + 1; k <= j; k++ {
				if k == j || t[k] == '|' {
					if pick == 0 {
						b = s.expand(b, t[start:k], c)
						break
					}
					pick--
					start = k + 1
				}
			}
			i = j
		case ch == '%' && i+1 < len(t):
			i++
			b = s.placeholder(b, t[i], c)
		default:
			b = append(b, ch)
		}
	}
	if set.human {
		b = typos(r, b)
	}
	s.tbuf = b
	return b
}

// expand appends literal text with placeholders (no choices).
func (s *Simulator) expand(b []byte, t string, c *textCtx) []byte {
	for i := 0; i < len(t); i++ {
		if t[i] == '%' && i+1 < len(t) {
			i++
			b = s.placeholder(b, t[i], c)
			continue
		}
		b = append(b, t[i])
	}
	return b
}

func (s *Simulator) placeholder(b []byte, p byte, c *textCtx) []byte {
	r := s.rText
	switch p {
	case 'n':
		return strconv.AppendInt(b, 10000+r.Int64N(90000), 10)
	case 'N':
		return strconv.AppendInt(b, 1000000+r.Int64N(9000000), 10)
	case 'i':
		return strconv.AppendInt(b, 100000000+r.Int64N(900000000), 10)
	case 'd':
		return strconv.AppendInt(b, 2+r.Int64N(44), 10)
	case 'k':
		return strconv.AppendInt(b, 1+r.Int64N(24), 10)
	case 'l':
		n := int64(1)
		if c.o != nil {
			n = int64(max(c.o.lines, 1))
		}
		return strconv.AppendInt(b, 1+r.Int64N(n), 10)
	case 'a':
		v := 500.0
		if c.o != nil {
			v = c.o.value
		}
		if c.valueMul > 0 {
			v *= c.valueMul
		}
		return strconv.AppendInt(b, int64(v*(0.3+r.Float64()*1.5))+10, 10)
	case 'm':
		return strconv.AppendInt(b, c.minutes, 10)
	case 'h':
		h := (c.minutes + 3) / 6 // tenths of an hour
		b = strconv.AppendInt(b, h/10, 10)
		if h%10 != 0 {
			b = append(b, '.', byte('0'+h%10))
		}
		return b
	case 't':
		m := (c.clock / msMinute) % (24 * 60)
		b = append2(b, m/60)
		b = append(b, ':')
		return append2(b, m%60)
	case 'g':
		_, mo, d := civil(c.day)
		b = append2(b, mo)
		b = append(b, '/')
		return append2(b, d)
	case 'w':
		return append(b, c.wh...)
	case 'x':
		return append(b, c.wh2...)
	case 'c':
		return append(b, c.city...)
	case 'r':
		return append(b, c.car...)
	case 's':
		b = strconv.AppendInt(b, 10000+r.Int64N(90000), 10)
		b = append(b, '-')
		return append2(b, r.Int64N(40))
	case 'z':
		return strconv.AppendInt(b, 10000+r.Int64N(89999), 10)
	case 'p':
		return strconv.AppendInt(b, 1000000000+r.Int64N(9000000000), 10)
	case 'q':
		return strconv.AppendInt(b, c.queue, 10)
	case 'u':
		return append(b, uoms[r.IntN(len(uoms))]...)
	case '%':
		return append(b, '%')
	}
	return append(b, '%', p)
}

// typos disturbs a person's text: a letter dropped, two swapped or one doubled in
// about a third of texts, and now and then the whole text in lower or upper case.
func typos(r *rand.Rand, b []byte) []byte {
	n := 0
	switch u := r.Float64(); {
	case u < 0.06:
		n = 2
	case u < 0.32:
		n = 1
	}
	for range n {
		i := r.IntN(len(b))
		if !isLetter(b[i]) {
			continue
		}
		switch op := r.IntN(3); {
		case op == 0 && len(b) > 8:
			b = append(b[:i], b[i+1:]...)
		case op == 1 && i+1 < len(b) && isLetter(b[i+1]):
			b[i], b[i+1] = b[i+1], b[i]
		default:
			b = append(b, 0)
			copy(b[i+1:], b[i:])
		}
	}
	switch u := r.Float64(); {
	case u < 0.08:
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
	case u < 0.11:
		for i, c := range b {
			if 'a' <= c && c <= 'z' {
				b[i] = c - ('a' - 'A')
			}
		}
	}
	return b
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// A coded message of a system: the code goes into data.code, the text into data.text.
type codedText struct {
	system, code string
	tmpl         []string
}

// Texts by situation. Words that name a class (credit, pricing, inventory,
// address, carrier, invoicing, capacity, mapping) do not occur.
var (
	// Accounts receivable on a hold.
	txtHoldNote = textSet{human: true, tmpl: []string{
		"{Cust|Customer|Acct} over limit by ${%a|%a}, AR reviewing. {Do not release|DO NOT RELEASE|pls hold}",
		"{acct|account} past due %d days, holding until {pmt|payment} posts",
		"AR: waiting on remittance for inv %n, {hold stays|keep on hold}",
		"Buyer says check mailed %g, AR to confirm w/ bank",
		"{new acct|new account}, D&B review pending, {ETA tmrw AM|should clear tomorrow}",
		"limit {incr|increase} req sent to controller, pending approval",
		"terms exceeded (net30), %d days over. Finance looking at it",
		"open balance ${%a}, {collections|AR} {called|emailed} buyer",
		"{Pls|Please} dont ship, account on stop list until {pmt|payment} rcvd",
		"CFO sign-off needed, order value > approved limit",
		"{called|emailed} AP dept at cust, promised wire {today|by EOD|tmrw}",
		"partial pmt rcvd ${%a}, still short, {holding|on hold}",
	}}
	// Price desk on an exception.
	txtPriceNote = textSet{human: true, tmpl: []string{
		"PO price ${%a} vs contract on line %l, {price desk|PD} checking",
		"contract %n expired %g, {need renewal|waiting on renewal} before we can bill old rate",
		"line %l below margin floor, {mgr|manager} sign-off {req|required}",
		"promo code not loaded in ERP, override requested",
		"cust PO shows old price list, waiting on sales rep",
		"{price|unit price} on PO {line %l|ln %l} off by %k%%, {rep|sales} to confirm",
		"quote Q-%n not applied to order, {fixing|checking w/ rep}",
	}}
	// Stock shortfalls and their resolution.
	txtShortNote = textSet{human: true, tmpl: []string{
		"SKU %s short %k ea at %w, {pulling from|transfer from|checking} %x",
		"cycle count variance bin %w-%k-%n, %k units missing",
		"{backorder|B/O} {on|for} %s, vendor PO due %g",
		"damaged on shelf, %k {cs|cases} unsellable, {recount|recount req}",
		"{stock out|stockout} on %s, {ETA|exp.} receipt {tmrw AM|%g}",
		"ATP showed %k avail but bin empty, {investigating|ICQA looking}",
		"{sub|substitute} offered {%s -> %s|%s for %s}, waiting on buyer OK",
	}}
	// Ship-to problems (people).
	txtShipToNote = textSet{human: true, tmpl: []string{
		"{Called|Emailed} cust, ship-to suite # missing, {VM left|no answer}",
		"cust gave new dock location, updating ship-to",
		"Ship-to is a PO box, {cant|can't} ship {LTL|freight} there",
		"wrong zip on order ({%z vs %z|%z, should be %z})",
		"{street|str.} name misspelled, {UPS|validation} rejects it, asked buyer to confirm",
		"{store|location} #%k closed, buyer to send new {delivery|drop} point",
		"{resi|residential} flag missing, ship-to needs update",
	}}
	// Warehouse supervisors about their floor.
	txtFloorNote = textSet{human: true, tmpl: []string{
		"%w picks running ~%h {hrs|hours} behind, wave %k not started",
		"short staffed on {2nd|1st} shift at %w, backlog %q orders",
		"%w: RF guns down since %t, picking on paper",
		"conveyor jam zone %k, pick to pack delayed ~%k min",
		"WMS {down|unreachable}, no waves released since %t",
		"{mgr|supervisor}: %q orders open on the floor at %w, {OT approved|asking for OT}",
		"{heavy|big} volume today, %w queue %q",
	}}
	// Customer service and account managers: everyday notes about nothing in
	// particular, including some that sound like trouble and are not.
	txtNote = textSet{human: true, tmpl: []string{
		"{Cust|Customer|Buyer} called for ETA, told %g",
		"Liftgate {req|required} at delivery",
		"Dock appt required, call 30 min ahead",
		"{Pls|Please|PLS} ship complete, no partials",
		"Buyer asked for tracking # once shipped",
		"Mark for store #%k, dept %k",
		"Expedite per AM{ - promo Fri|, big launch|}",
		"cust asked if we can add %k cases, told {new PO needed|to send revised PO}",
		"cust asked about terms on next PO",
		"price list for Q{3|4} requested by buyer",
		"Please use the back dock, front closed for {remodel|construction}",
		"{resi|residential} delivery, no forklift on site",
		"Customer reports possible duplicate of PO %n, checking",
		"{Delivery|Delvry} window 06:00-14:00 only",
		"{cust|buyer} wants invoice copy emailed to AP",
		"{follow up|f/u} w/ buyer %g",
	}}
	// Fixes by the EDI team.
	txtEDIFix = textSet{human: true, tmpl: []string{
		"EDI team updated xref, order reprocessed",
		"remapped UOM {CS->CA|CSE->CS|EA->PK}, {resent|reprocessed}",
		"reprocessed after fix in map v%k",
		"partner {sent corrected|resent} 850, {ok now|processed}",
		"{manually keyed|keyed in} missing {segment|field}, released",
	}}
	// Customer service closing a ship-to problem.
	txtShipToFixed = textSet{human: true, tmpl: []string{
		"{cust confirmed|buyer confirmed} {new|corrected} ship-to, updated",
		"zip corrected to %z per buyer",
		"suite # added, {ok to ship|good to go}",
	}}
)

// System messages with codes.
var (
	// Order intake: partner and API mapping failures (they block the order).
	txtMapping = []codedText{
		{"edi", "MAP_UOM", []string{"850 map fail seg PO1*%l UOM '%u' not in xref", "X12 850 PO1 loop %l: unit '%u' unknown for partner"}},
		{"edi", "XREF_ITEM", []string{"PO1 item %s no crossref for buyer part# %n", "buyer item %n not found in item xref table"}},
		{"edi", "SEG_MISSING", []string{"850 rejected: mandatory segment {DTM|REF|N1} missing, ctrl# %i", "TA1 R%k: interchange ctrl# %i segment error"}},
		{"edi", "N1_STORE", []string{"N1*ST store # %k not in DC lookup table", "ship-to store %k unknown for partner, cannot route"}},
		{"api", "SCHEMA_422", []string{"API 422: field 'qty_ordered' expected int got '%k.0'", "JSON schema validation failed at lines[%l].uom", "POST /orders 422 unprocessable: lines[%l].sku empty"}},
		{"api", "PRICE_NULL", []string{"order import stuck: unit_price null on line %l", "API 400: line %l missing unit_price"}},
	}
	// Transient errors between systems; a retry clears them (no class).
	txtTransient = []codedText{
		{"wms", "WAVE_TIMEOUT", []string{"wave release timeout after 30s, retrying", "WMS wave API timeout, retry %k of 3 ok"}},
		{"erp", "IDOC_51", []string{"IDoc ORDERS05 status 51: document %N locked by user, retry scheduled", "IDoc %N status 51, lock released on retry"}},
		{"tms", "RATE_TIMEOUT", []string{"rate shop timeout, fallback rate used", "TMS rating service 504, cached rate applied"}},
		{"erp", "DEADLOCK", []string{"deadlock victim on SO update, retried OK", "SQL timeout on order header update, retry ok"}},
		{"edi", "997_LATE", []string{"997 not received within 4h for 855 ctrl# %i", "functional ack pending for ctrl# %i"}},
	}
	// Ship-to validation by the TMS (blocks shipping until fixed).
	txtShipToSys = []codedText{
		{"tms", "AV-102", []string{"ship-to validation: ZIP %z not valid for city/state", "AV: no candidates returned for ship-to"}},
		{"tms", "AV-110", []string{"ship-to street line 1 missing", "AV-110 ship-to line1 empty or PO BOX for LTL"}},
		{"tms", "LABEL_FAIL", []string{"label print failed: consignee postal code invalid", "UPS ship API 120100: missing or invalid ship-to postal code"}},
	}
	// WMS during an outage (noise: not a mapping failure).
	txtOutageSys = []codedText{
		{"wms", "WMS_CONN", []string{"WMS connection lost, order status unknown", "wms heartbeat failed %k times, failover pending"}},
		{"wms", "RF_OFFLINE", []string{"RF network offline in zone %k, tasks suspended", "handheld sessions dropped, %q tasks suspended"}},
	}
	// Billing rejections after shipment.
	txtInvoice = []codedText{
		{"edi", "EDI810_REJ", []string{"810 rejected by partner: invoice total != ASN total", "810 AK5*R for inv %N, qty variance on line %l"}},
		{"finance", "PORTAL_REJ", []string{"buyer portal rejected inv %N: PO line %l price mismatch", "inv %N rejected: PO %n closed on buyer side"}},
		{"finance", "TAX_JUR", []string{"tax calc failed: ship-to jurisdiction not found", "tax engine error TX-%k for inv %N"}},
		{"finance", "DUP_INV", []string{"duplicate invoice number %N rejected", "inv %N bounced, already received per buyer AP"}},
	}
)

// Carrier messages. Before pickup: a late truck, a missed pickup, a full trailer.
// After: routine tracking and delays in transit.
var (
	txtTruckLate = textSet{tmpl: []string{
		"Driver delayed, new ETA %t",
		"Pickup ETA pushed %m min{ - traffic| - prior stop ran long|}",
		"Tractor breakdown, replacement dispatched, ETA %t",
		"Running late: previous stop took longer, ETA %t",
		"Weather hold at %c terminal, pickup window moved to %t",
		"{driver|drvr} hours of service, relay driver ETA %t",
	}}
	txtNoShow = textSet{tmpl: []string{
		"Pickup missed, no driver available, rescheduled next business day",
		"Attempted pickup cancelled by terminal, rebook for {tmrw|next day}",
		"No show for scheduled pickup %t, dispatch contacted",
		"%r {terminal|dispatch} at %c closed {early|due to weather}, pickup moved",
	}}
	txtRolled = textSet{tmpl: []string{
		"Trailer at {max|max weight}, %k pallets rolled to next pickup",
		"Freight left on dock, trailer full",
		"{Load|Shipment} not tendered, {no room|trailer cubed out}",
	}}
	// Routine tracking, step by step.
	txtTracking = [...]textSet{
		{tmpl: []string{"Picked up, PRO %p", "Shipment picked up at origin, PRO# %p", "PU complete, PRO %p"}},
		{tmpl: []string{"Departed %c terminal", "Loaded on linehaul to %c", "Left origin facility"}},
		{tmpl: []string{"Arrived at %c hub", "At destination terminal %c", "In transit, on schedule"}},
		{tmpl: []string{"Out for delivery", "On vehicle for delivery", "Delivery appointment set %g"}},
		{tmpl: []string{"Delivered, signed by {J.|M.|R.|K.} {SMITH|GARCIA|NGUYEN|JOHNSON|BROWN}", "Delivered, POD on file", "Delivered to dock, {%k|%k} pcs"}},
	}
	txtTransitDelay = textSet{tmpl: []string{
		"Delay: weather at %c hub, ETA +1 day",
		"Missed linehaul connection at %c, new ETA %g",
		"Delivery exception: consignee closed, reattempt next business day",
		"Appointment required, awaiting consignee callback",
		"{Shipment|Freight} held at %c terminal, {road closure|weather}",
		"Damaged in transit, inspection at %c",
	}}
)
