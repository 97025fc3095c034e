package store

import "encoding/binary"

// Key layout. Every per-order key starts with the order id so a partition of orders
// can move with its keys; 0x00 separates variable-length parts (ids are validated
// to hold no control characters).
//
//	o/<order>                      order record (opaque bytes, owned by the pipeline)
//	t/<order>\x00<nanos BE><event> timeline entry: the event's bytes, by event time; written by
//	                               releases before issue 20 and still read (an order's timeline
//	                               now rides in its record)
//	d/<decision>                   decision record (JSON); ids sort by time
//	r/<order>\x00<decision>        index: an order's decisions
//	q/<entry>                      outbox entry awaiting its executor (see below)
//	x/<entry>                      final outcome of an outbox entry, written with its removal
//	y/<entry>\x00<n BE4>           execution attempt n (from 1) of an outbox entry; append-only
//	h/<decision>\x00<nanos BE><kind> trail of a decision: approval, rejection, escalation,
//	                               acknowledgement, each with who and why; append-only
//	p/<decision>                   open item: the decision waits for a person, to approve
//	                               (or reject) it or to acknowledge its execution
//	w/<due nanos BE><decision>     escalation timer: the current tier's SLA ends at due
//	l/<action>\x00<scope>\x00<value> rate-limit window: times of the executions of an action
//	                               for one warehouse, customer or carrier in the last hour (TTL)
//	n/<order>\x00<action>          cooldown: when the action last fired for the order (TTL)
//	v/<order>\x00<nanos BE>        score point of an order at a scoring moment (TTL)
//	g/<name>                       governance setting changed at run time (the kill switch)
//	s/<part BE2><seq BE>           stream sequence already committed, by partition (TTL)
//	e/<part BE2><event id>         event id already applied in a partition, value its stream seq (TTL)
//	c/<name>                       durable counter, uint64 BE; the counters of the stream's
//	                               messages are per partition, c/<name>@<part> (partition.go)
//	u/<due nanos BE><order>        rescoring due for an order at that time, written by
//	                               earlier releases (the order record's next_due is read
//	                               now): read once at start and deleted
//	k/<kind>\x00<id>               context aggregate (warehouse, carrier, customer)
//	j/<order>\x00<nonce BE>        a change of the order's governance, to be written to the
//	                               group's state bucket
//	I/<incident>                   incident record: exceptions of several orders with one
//	                               cause (incidents.go)
//	m/<name>                       pipeline metadata (the watermark, m/part@<part>: the
//	                               lease epoch the partition's local state is current for)
//
// An outbox entry id is the decision id for the decision's JetStream command, and
// the decision id with a suffix for the other deliveries it causes: "~webhook" (its
// webhook), "~esc<tier>" (the escalation command of a tier), "~esc<tier>~webhook".
// So x/<decision> is the outcome of the command itself, and a prefix scan of
// x/<decision>, y/<decision> finds every delivery of one decision. Decision ids have
// a fixed length, so one id is never the prefix of another.
//
// Rate-limit windows (l/) and the kill switch (g/) are per instance, not per order:
// after moving a partition, its limits start afresh. The pipeline batch is the only
// writer of l/, n/ and v/; approvals, escalations and executors write p/, w/, h/,
// q/, x/, y/ in their own transactions, which conflict (and are retried) when two
// of them race for the same decision.
const (
	pOrder    = "o/"
	pTimeline = "t/"
	pDecision = "d/"
	pOrderDec = "r/"
	pOutbox   = "q/"
	pOutcome  = "x/"
	pSeq      = "s/"
	pEventID  = "e/"
	pCounter  = "c/"
	pDue      = "u/"
	pContext  = "k/"
	pMeta     = "m/"
	pAttempt  = "y/"
	pTrail    = "h/"
	pPending  = "p/"
	pTimer    = "w/"
	pWindow   = "l/"
	pCooldown = "n/"
	pScore    = "v/"
	pSetting  = "g/"

	pGovPending = "j/"
)

func key(prefix string, parts ...string) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, prefix...)
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func seqKey(part int, seq uint64) []byte {
	b := make([]byte, 0, len(pSeq)+2+8)
	b = appendPart(append(b, pSeq...), part)
	return binary.BigEndian.AppendUint64(b, seq)
}

// appendEventKey appends the event-id marker key of id in part to b.
func appendEventKey(b []byte, part int, id string) []byte {
	return append(appendPart(append(b, pEventID...), part), id...)
}

// appendPart appends a partition number as two bytes, big endian.
func appendPart(b []byte, part int) []byte { return binary.BigEndian.AppendUint16(b, uint16(part)) }

func timelineKey(order string, nanos int64, eventID string) []byte {
	b := make([]byte, 0, len(pTimeline)+len(order)+1+8+len(eventID))
	b = append(b, pTimeline...)
	b = append(b, order...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(nanos))
	return append(b, eventID...)
}

func timelinePrefix(order string) []byte {
	b := make([]byte, 0, len(pTimeline)+len(order)+1)
	b = append(b, pTimeline...)
	b = append(b, order...)
	return append(b, 0)
}

func dueKey(at int64, order string) []byte {
	b := make([]byte, 0, len(pDue)+8+len(order))
	b = append(b, pDue...)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	return append(b, order...)
}
