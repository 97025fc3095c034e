package store

import "encoding/binary"

// Key layout. Every per-order key starts with the order id so a partition of orders
// can move with its keys; 0x00 separates variable-length parts (ids are validated
// to hold no control characters).
//
//	o/<order>                      order record (opaque bytes, owned by the pipeline)
//	t/<order>\x00<nanos BE><event> timeline entry: the event's bytes, by event time
//	d/<decision>                   decision record (JSON); ids sort by time
//	r/<order>\x00<decision>        index: an order's decisions
//	q/<decision>                   outbox entry awaiting its executor
//	x/<decision>                   execution outcome of a decision
//	s/<seq BE>                     stream sequence already committed (TTL)
//	e/<event id>                   event id already applied, value its stream seq (TTL)
//	c/<name>                       durable counter, uint64 BE
//	u/<due nanos BE><order>        rescoring due for an order at that time
//	k/<kind>\x00<id>               context aggregate (warehouse, carrier, customer)
//	m/<name>                       pipeline metadata (the watermark)
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

func seqKey(seq uint64) []byte {
	b := make([]byte, len(pSeq)+8)
	copy(b, pSeq)
	binary.BigEndian.PutUint64(b[len(pSeq):], seq)
	return b
}

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
