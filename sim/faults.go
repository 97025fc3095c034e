package sim

import (
	"bytes"
	"math"
	"math/rand/v2"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// Faults sets the delivery faults of a real bus, each a share of the events. They
// change the order and number of deliveries, never an event's bytes, and draw from
// their own random stream: the same seed with other fault rates simulates the same
// network.
type Faults struct {
	// Duplicates is the share of events delivered twice: the copy, same id and
	// bytes, comes 1 to 400 events later.
	Duplicates float64
	// OutOfOrder is the share of events delivered after 1 to 32 events that
	// happened later.
	OutOfOrder float64
	// Late is the share of events delivered 10 minutes to 4 hours (event time) after
	// they happened: occurred_at well before their neighbours'.
	Late float64
}

func (f Faults) validate() error {
	for _, x := range []struct {
		name string
		v    float64
	}{{"Duplicates", f.Duplicates}, {"OutOfOrder", f.OutOfOrder}, {"Late", f.Late}} {
		if !(x.v >= 0 && x.v <= 0.5) {
			return invalidf("Faults.%s %v: want 0..0.5", x.name, x.v)
		}
	}
	if f.OutOfOrder+f.Late > 0.5 {
		return invalidf("Faults.OutOfOrder+Late %v: want at most 0.5", f.OutOfOrder+f.Late)
	}
	return nil
}

// Fault says how an emitted event was disturbed on its way.
type Fault uint8

// The faults.
const (
	FaultNone       Fault = iota
	FaultDuplicate        // a second delivery of an event already emitted
	FaultOutOfOrder       // delivered after events that happened later
	FaultLate             // delivered long after it happened
)

var faultNames = [...]string{"none", "duplicate", "out_of_order", "late"}

func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return "unknown"
}

// Emitted is one event as it leaves the simulator, in delivery order. It and Data
// are valid only until the EmitFunc returns; copy what you keep.
type Emitted struct {
	Data       []byte    // the event, JSON without a trailing newline
	Type       string    // its type, e.g. features.TypePickConfirmed
	OccurredAt time.Time // its occurred_at (millisecond precision)
	EmittedAt  time.Time // the simulation time it was delivered at; later than OccurredAt for a late event
	Fault      Fault
	typ        evType
	idLen      int
}

// ID returns the event's id (its Nats-Msg-Id). It allocates.
func (e *Emitted) ID() string { return string(e.Data[len(idPrefix) : len(idPrefix)+e.idLen]) }

// Subject returns the JetStream subject of the event, features.Subject(e.Type,
// order id): orders.<type>.<order> for an order event, orders.<type> for a
// context event. It allocates for an order event.
func (e *Emitted) Subject() string {
	oid := e.orderID()
	if oid == nil {
		return evSubjects[e.typ]
	}
	return features.Subject(e.Type, string(oid))
}

// orderID returns the order id in Data, nil for a context event: the encoder
// writes it right after the id and the type (head).
func (e *Emitted) orderID() []byte {
	const typeKey, orderKey = `","type":"`, `","order_id":"`
	rest := e.Data[min(len(idPrefix)+e.idLen+len(typeKey)+len(evNames[e.typ]), len(e.Data)):]
	if !bytes.HasPrefix(rest, []byte(orderKey)) {
		return nil
	}
	rest = rest[len(orderKey):]
	if end := bytes.IndexByte(rest, '"'); end > 0 {
		return rest[:end]
	}
	return nil
}

// EmitFunc receives the simulator's events in delivery order. An error stops the
// simulation and is returned by Run.
type EmitFunc func(ev *Emitted) error

// heldEvent is an event kept back to be delivered out of order, late or again.
type heldEvent struct {
	key   int64  // release when the delivery count (or, for late ones, sim time) reaches it
	seq   uint64 // ties
	data  []byte
	at    int64
	idLen int32
	typ   evType
	fault Fault
}

type heldHeap []heldEvent

func (h *heldHeap) push(e heldEvent) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !heldBefore(&s[i], &s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *heldHeap) pop() heldEvent {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = heldEvent{}
	s = s[:n]
	*h = s
	for i := 0; ; {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && heldBefore(&s[r], &s[c]) {
			c = r
		}
		if !heldBefore(&s[c], &s[i]) {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	return top
}

func heldBefore(a, b *heldEvent) bool { return a.key < b.key || a.key == b.key && a.seq < b.seq }

// emitter applies the delivery faults between the simulation and the EmitFunc. What
// it holds back is bounded by the rates times the delays, independent of run length.
type emitter struct {
	f       Faults
	any     bool
	r       *rand.Rand
	sink    EmitFunc
	n       int64    // fresh events seen
	byCount heldHeap // out-of-order and duplicates, by delivery count
	byTime  heldHeap // late events, by sim time
	seq     uint64
	pool    [][]byte
	ev      Emitted
	stats   *Stats
}

// fresh delivers (or holds back) an event just generated at sim time now.
func (e *emitter) fresh(data []byte, typ evType, at int64, idLen int, now int64) error {
	for len(e.byTime) > 0 && e.byTime[0].key <= now {
		if err := e.release(e.byTime.pop(), now); err != nil {
			return err
		}
	}
	if !e.any {
		e.n++
		return e.out(data, typ, at, idLen, FaultNone, now)
	}
	e.n++
	switch u := e.r.Float64(); {
	case u < e.f.Late:
		// Log-uniform between 10 minutes and 4 hours.
		d := int64(10 * float64(msMinute) * math.Exp(e.r.Float64()*math.Log(24)))
		e.hold(&e.byTime, now+d, data, typ, at, idLen, FaultLate)
	case u < e.f.Late+e.f.OutOfOrder:
		e.hold(&e.byCount, e.n+1+e.r.Int64N(32), data, typ, at, idLen, FaultOutOfOrder)
	default:
		if err := e.out(data, typ, at, idLen, FaultNone, now); err != nil {
			return err
		}
		// Only events delivered at once are duplicated, so a copy never comes first.
		if e.f.Duplicates > 0 && e.r.Float64() < e.f.Duplicates/(1-e.f.Late-e.f.OutOfOrder) {
			e.hold(&e.byCount, e.n+1+e.r.Int64N(400), data, typ, at, idLen, FaultDuplicate)
		}
	}
	for len(e.byCount) > 0 && e.byCount[0].key <= e.n {
		if err := e.release(e.byCount.pop(), now); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) hold(h *heldHeap, key int64, data []byte, typ evType, at int64, idLen int, f Fault) {
	var buf []byte
	if n := len(e.pool); n > 0 {
		buf, e.pool = e.pool[n-1][:0], e.pool[:n-1]
	}
	e.seq++
	h.push(heldEvent{key: key, seq: e.seq, data: append(buf, data...), at: at, idLen: int32(idLen), typ: typ, fault: f})
}

func (e *emitter) release(h heldEvent, now int64) error {
	err := e.out(h.data, h.typ, h.at, int(h.idLen), h.fault, now)
	e.pool = append(e.pool, h.data)
	return err
}

func (e *emitter) out(data []byte, typ evType, at int64, idLen int, f Fault, now int64) error {
	ev := &e.ev
	ev.Data, ev.Type, ev.typ, ev.idLen, ev.Fault = data, evNames[typ], typ, idLen, f
	ev.OccurredAt, ev.EmittedAt = time.UnixMilli(at).UTC(), time.UnixMilli(now).UTC()
	e.stats.Events++
	switch f {
	case FaultDuplicate:
		e.stats.Duplicates++
	case FaultOutOfOrder:
		e.stats.OutOfOrder++
	case FaultLate:
		e.stats.Late++
	}
	return e.sink(ev)
}

// flush delivers everything still held: first what waits for later events, then the
// late ones by their release time.
func (e *emitter) flush(now int64) error {
	for len(e.byCount) > 0 {
		if err := e.release(e.byCount.pop(), now); err != nil {
			return err
		}
	}
	for len(e.byTime) > 0 {
		h := e.byTime.pop()
		if err := e.release(h, max(now, h.key)); err != nil {
			return err
		}
	}
	return nil
}
