package sim

import (
	"strconv"

	"github.com/orderwatch/orderwatch/features"
)

// Events are encoded by hand into one reused buffer: the envelope in the field order
// of features.Event, data fields as the event type needs them. What comes out is the
// JSON encoding/json would decode into the same features.Event (the tests compare).

type evType uint8

const (
	evOrderCreated evType = iota
	evOrderChanged
	evCreditHold
	evCreditReleased
	evPricingException
	evPricingApproved
	evInventoryAllocated
	evAllocationChanged
	evAllocationShort
	evPickReleased
	evPickConfirmed
	evPackConfirmed
	evShipmentConfirmed
	evCarrierStatus
	evInvoiceCreated
	evInvoiceFailed
	evIntegrationError
	evNoteAdded
	evOrderCancelled
	evWarehouseLoad
	evCarrierPerformance
	numEvTypes
)

var evNames = [numEvTypes]string{
	features.TypeOrderCreated, features.TypeOrderChanged, features.TypeCreditHold,
	features.TypeCreditReleased, features.TypePricingException, features.TypePricingApproved,
	features.TypeInventoryAllocated, features.TypeAllocationChanged, features.TypeAllocationShort,
	features.TypePickReleased, features.TypePickConfirmed, features.TypePackConfirmed,
	features.TypeShipmentConfirmed, features.TypeCarrierStatus, features.TypeInvoiceCreated,
	features.TypeInvoiceFailed, features.TypeIntegrationError, features.TypeNoteAdded,
	features.TypeOrderCancelled, features.TypeWarehouseLoad, features.TypeCarrierPerformance,
}

// evSubjects are the subjects of the context events, indexed by type.
var evSubjects = func() (s [numEvTypes]string) {
	for i, n := range evNames {
		if features.IsContext(n) {
			s[i] = features.Subject(n, "")
		}
	}
	return s
}()

const idPrefix = `{"id":"`

// head starts an event of type t at the current sim time; o is nil for context
// events. Events of orders the run does not publish are built as no-ops.
func (s *Simulator) head(t evType, o *order, source, actor string, actorNum int) {
	s.skip = o != nil && !o.visible
	if s.skip {
		return
	}
	s.typ = t
	b := append(s.buf[:0], idPrefix...)
	b = append(b, "e-"...)
	b = append(b, s.seed36...)
	b = append(b, '-')
	s.nEvents++
	b = strconv.AppendUint(b, s.nEvents, 36)
	s.idLen = len(b) - len(idPrefix)
	b = append(b, `","type":"`...)
	b = append(b, evNames[t]...)
	if o != nil {
		b = append(b, `","order_id":"`...)
		b = s.appendOrderID(b, o)
	}
	b = append(b, `","occurred_at":"`...)
	b = appendMillis(b, s.now)
	b = append(b, `","source":"`...)
	b = append(b, source...)
	b = append(b, `","actor":"`...)
	b = append(b, actor...)
	if actorNum > 0 {
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(actorNum), 10)
	}
	b = append(b, `","schema":1,"data":{`...)
	s.buf, s.first = b, true
}

func (s *Simulator) appendOrderID(b []byte, o *order) []byte {
	b = append(b, "SO-"...)
	b = append(b, s.seed36...)
	b = append(b, '-')
	return strconv.AppendInt(b, o.seq, 10)
}

func (s *Simulator) key(k string) {
	if !s.first {
		s.buf = append(s.buf, ',')
	}
	s.first = false
	s.buf = append(s.buf, '"')
	s.buf = append(s.buf, k...)
	s.buf = append(s.buf, '"', ':')
}

func (s *Simulator) str(k, v string) {
	if s.skip {
		return
	}
	s.key(k)
	s.buf = appendJSONString(s.buf, v)
}

func (s *Simulator) int(k string, v int64) {
	if s.skip {
		return
	}
	s.key(k)
	s.buf = strconv.AppendInt(s.buf, v, 10)
}

func (s *Simulator) float(k string, v float64) {
	if s.skip {
		return
	}
	s.key(k)
	s.buf = strconv.AppendFloat(s.buf, v, 'f', -1, 64)
}

func (s *Simulator) bool(k string, v bool) {
	if s.skip {
		return
	}
	s.key(k)
	s.buf = strconv.AppendBool(s.buf, v)
}

// time writes t in the local time of offset off, seconds precision.
func (s *Simulator) time(k string, t, off int64) {
	if s.skip {
		return
	}
	s.key(k)
	s.buf = append(s.buf, '"')
	s.buf = appendLocal(s.buf, t, off)
	s.buf = append(s.buf, '"')
}

// send closes the event and hands it to the fault injection and the EmitFunc. The
// first error of the EmitFunc is kept in s.err and ends the run.
func (s *Simulator) send() {
	if s.skip || s.err != nil {
		return
	}
	s.buf = append(s.buf, '}', '}')
	s.err = s.em.fresh(s.buf, s.typ, s.now, s.idLen, s.now)
}

// appendJSONString appends v as a JSON string. The simulator's strings are valid
// UTF-8; only quotes, backslashes and control characters need escaping.
func appendJSONString[T string | []byte](b []byte, v T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, v[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, v[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
