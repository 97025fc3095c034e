package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// maxOCELPath bounds the steps of one ocel.via path.
const maxOCELPath = 8

// ocelShape is the `ocel` section of a mapping file: which object type is an order,
// and the paths from other object types to orders.
type ocelShape struct {
	OrderType string              `yaml:"order_type"`
	Via       map[string][]string `yaml:"via"`
}

// ocelConfig is a compiled ocel section.
type ocelConfig struct {
	orderType string
	via       map[string][]string
}

func compileOCEL(s *ocelShape) (*ocelConfig, error) {
	if s == nil {
		return nil, nil
	}
	if s.OrderType == "" {
		return nil, badMapping("ocel: no order_type: name the object type that is an order (`order_type: order`)")
	}
	for from, path := range s.Via {
		switch {
		case from == s.OrderType:
			return nil, badMapping("ocel: via.%s: the order type needs no path: remove it", from)
		case len(path) == 0 || len(path) > maxOCELPath:
			return nil, badMapping("ocel: via.%s: %d steps: give 1 to %d object types ending with %s", from, len(path), maxOCELPath, s.OrderType)
		case path[len(path)-1] != s.OrderType:
			return nil, badMapping("ocel: via.%s: ends with %q: end the path with the order type %s", from, path[len(path)-1], s.OrderType)
		}
	}
	return &ocelConfig{orderType: s.OrderType, via: s.Via}, nil
}

// ErrBadOCEL is returned (wrapped, with the event's number) by OCELLog.Next for an
// event that is not an OCEL 2.0 event (no id, type or time; a field of another
// JSON type); the log can be read on past it.
var ErrBadOCEL = errors.New("mapping: bad ocel event")

// ErrOCELOversize is wrapped with ErrBadOCEL for an event over MaxRecordBytes
// (its reason is ReasonOversize).
var ErrOCELOversize = errors.New("event is oversize")

// OCELLog reads an OCEL 2.0 JSON log as records, one per (event, order the event
// touches). It keeps the objects compactly and streams the events, one in memory
// at a time: ids and order attributes varint-encoded in one arena, found
// through an open-addressing table of int32s, relationships as one int32 slice
// (ocelObjects: about 50 bytes an object). The file must list
// "objects" before "events" (the standard's order); one with events first is
// refused. Not safe for concurrent use.
type OCELLog struct {
	cfg   *ocelConfig
	in    *valueBound
	dec   *json.Decoder
	types []string         // object types by index
	typ   map[string]int32 // object type -> index
	names []string         // order attribute names by index
	name  map[string]int32 // order attribute name -> index
	order int32            // index of cfg.orderType in types
	via   map[int32][]int32
	steps map[[2]int32]bool // (from, to) object types a via path steps through
	ocelObjects

	n       int // events read
	pending []Record
	ev      ocelEvent
	done    bool
}

type ocelAttr struct {
	Name  string `json:"name"`
	Time  string `json:"time"`
	Value any    `json:"value"`
}

type ocelRel struct {
	ObjectID  string `json:"objectId"`
	Qualifier string `json:"qualifier"`
}

type ocelEvent struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	Time          string     `json:"time"`
	Attributes    []ocelAttr `json:"attributes"`
	Relationships []ocelRel  `json:"relationships"`
}

// NewOCELLog reads r up to its events: the objects are loaded (compactly), the
// events are left for Next. The mapping must have an `ocel` section.
func NewOCELLog(r io.Reader, m *Mapping) (*OCELLog, error) {
	if m.ocel == nil {
		return nil, errors.New("mapping: the mapping file has no `ocel` section: add ocel.order_type (and ocel.via) to import an OCEL 2.0 log")
	}
	l := &OCELLog{cfg: m.ocel, in: &valueBound{r: r}, typ: map[string]int32{}, name: map[string]int32{}, via: map[int32][]int32{}, steps: map[[2]int32]bool{}}
	l.dec = json.NewDecoder(l.in)
	l.dec.UseNumber()
	l.order = l.typeIndex(m.ocel.orderType)
	for from, path := range m.ocel.via {
		steps := make([]int32, len(path))
		prev := l.typeIndex(from)
		for i, p := range path {
			steps[i] = l.typeIndex(p)
			l.steps[[2]int32{prev, steps[i]}] = true
			prev = steps[i]
		}
		l.via[l.typeIndex(from)] = steps
	}
	if t, err := l.next().Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("mapping: ocel: not a JSON object (%v): want an OCEL 2.0 JSON log", errOr(err, t))
	}
	seenObjects := false
	for l.dec.More() {
		t, err := l.next().Token()
		if err != nil {
			return nil, fmt.Errorf("mapping: ocel: %w", err)
		}
		key, _ := t.(string)
		switch key {
		case "objects":
			if err := l.readObjects(); err != nil {
				return nil, err
			}
			seenObjects = true
		case "events":
			if !seenObjects {
				return nil, errors.New(`mapping: ocel: "events" comes before "objects" in the file: put objects first (jq '{objectTypes, eventTypes, objects, events}' does), so events can be streamed`)
			}
			if t, err := l.next().Token(); err != nil || t != json.Delim('[') {
				return nil, fmt.Errorf("mapping: ocel: events is not an array (%v)", errOr(err, t))
			}
			return l, nil
		default:
			var skip json.RawMessage // objectTypes, eventTypes: not needed
			if err := l.next().Decode(&skip); err != nil {
				return nil, fmt.Errorf("mapping: ocel: %s: %w", key, err)
			}
		}
	}
	return nil, errors.New(`mapping: ocel: no "events" array: want an OCEL 2.0 JSON log`)
}

func errOr(err error, t json.Token) any {
	if err != nil {
		return err
	}
	return t
}

func (l *OCELLog) typeIndex(t string) int32 {
	i, ok := l.typ[t]
	if !ok {
		i = int32(len(l.types))
		l.types = append(l.types, t)
		l.typ[t] = i
	}
	return i
}

func (l *OCELLog) nameIndex(n string) int32 {
	i, ok := l.name[n]
	if !ok {
		i = int32(len(l.names))
		l.names = append(l.names, n)
		l.name[n] = i
	}
	return i
}

// unixNano is an RFC 3339 time in Unix ns, or 0 when s is not one.
func unixNano(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixNano()
}

// ocelObjectIn is an object as read.
type ocelObjectIn struct {
	ID            string       `json:"id"`
	Type          string       `json:"type"`
	Attributes    []ocelAttrIn `json:"attributes"`
	Relationships []ocelRel    `json:"relationships"`
}

func (l *OCELLog) readObjects() error {
	if t, err := l.next().Token(); err != nil || t != json.Delim('[') {
		return fmt.Errorf("mapping: ocel: objects is not an array (%v)", errOr(err, t))
	}
	var o ocelObjectIn // reused: its slices keep their room, emptied
	for n := 1; l.dec.More(); n++ {
		clear(o.Attributes[:cap(o.Attributes)])
		clear(o.Relationships[:cap(o.Relationships)])
		o = ocelObjectIn{Attributes: o.Attributes[:0], Relationships: o.Relationships[:0]}
		if err := l.next().Decode(&o); err != nil {
			return fmt.Errorf("mapping: ocel: object %d: %w: want {id, type, attributes, relationships}", n, err)
		}
		if o.ID == "" || o.Type == "" {
			return fmt.Errorf("mapping: ocel: object %d: no id or type: give every object both", n)
		}
		i, err := l.intern(o.ID)
		if err != nil {
			return err
		}
		if l.objs[i].typ >= 0 {
			return fmt.Errorf("mapping: ocel: object %q twice: give each object once", o.ID)
		}
		l.objs[i].typ = l.typeIndex(o.Type)
		if l.objs[i].typ == l.order {
			if err := l.setAttrs(i, o.Attributes, l.nameIndex); err != nil {
				return fmt.Errorf("mapping: ocel: object %q: %w", o.ID, err)
			}
		}
		for _, r := range o.Relationships {
			j, err := l.intern(r.ObjectID)
			if err != nil {
				return err
			}
			if err := l.relate(i, j); err != nil {
				return err
			}
		}
	}
	l.link(func(from, to int32) bool { return l.steps[[2]int32{from, to}] })
	_, err := l.next().Token() // ]
	return err
}

// ocelValue is an attribute's value as CEL sees it: json.Numbers become int64 or
// float64.
func ocelValue(v any) any { return numbers(v) }

// Next returns the next record with the number of its event (1-based, in the
// file's order). It returns io.EOF at the end, and an error wrapping ErrBadOCEL for
// an event that is not an OCEL 2.0 event, after which Next may be called again.
//
// The record r: id, type and time (as the log gives it) of the event; attributes
// (name -> value); objects (the event's relationships: [{id, type, qualifier}]);
// and order: {id, attributes (as of the event's time), via (the object type the
// event reached it through), qualifier (of that relationship)}. An event that
// touches no order gives one record without order. Raw, what a derived id hashes,
// is the event id and the order id.
func (l *OCELLog) Next() (Record, int, error) {
	if len(l.pending) > 0 {
		r := l.pending[0]
		l.pending = l.pending[1:]
		return r, l.n, nil
	}
	if l.done || !l.dec.More() {
		l.done = true
		return Record{}, 0, io.EOF
	}
	l.n++
	start := l.dec.InputOffset()
	l.ev = ocelEvent{}
	if err := l.next().Decode(&l.ev); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Record{}, l.n, fmt.Errorf("%w %d: %v", ErrBadOCEL, l.n, err)
		}
		return Record{}, l.n, fmt.Errorf("mapping: ocel: event %d: %w", l.n, err)
	}
	if size := l.dec.InputOffset() - start; size > MaxRecordBytes {
		return Record{}, l.n, fmt.Errorf("%w %d: %w: %d bytes, limit %d", ErrBadOCEL, l.n, ErrOCELOversize, size, MaxRecordBytes)
	}
	ev := &l.ev
	if ev.ID == "" || ev.Type == "" || ev.Time == "" {
		return Record{}, l.n, fmt.Errorf("%w %d: no id, type or time: want {id, type, time, attributes, relationships}", ErrBadOCEL, l.n)
	}
	at := unixNano(ev.Time)
	attrs := make(map[string]any, len(ev.Attributes))
	for _, a := range ev.Attributes {
		attrs[a.Name] = ocelValue(a.Value)
	}
	objects := make([]any, 0, len(ev.Relationships))
	type hit struct {
		obj       int32
		via, qual string
	}
	var orders []hit
	seen := func(o int32) bool {
		for _, h := range orders {
			if h.obj == o {
				return true
			}
		}
		return false
	}
	for _, r := range ev.Relationships {
		i, ok := l.find(r.ObjectID)
		typ := ""
		if ok && l.objs[i].typ >= 0 {
			typ = l.types[l.objs[i].typ]
		}
		objects = append(objects, map[string]any{"id": r.ObjectID, "type": typ, "qualifier": r.Qualifier})
		if !ok || l.objs[i].typ < 0 {
			continue
		}
		if l.objs[i].typ == l.order {
			if !seen(i) {
				orders = append(orders, hit{i, typ, r.Qualifier})
			}
			continue
		}
		path, ok := l.via[l.objs[i].typ]
		if !ok {
			continue
		}
		for _, o := range l.follow(i, path) {
			if !seen(o) {
				orders = append(orders, hit{o, typ, r.Qualifier})
			}
		}
	}
	base := map[string]any{"id": ev.ID, "type": ev.Type, "time": ev.Time, "attributes": attrs, "objects": objects}
	if len(orders) == 0 {
		return Record{Fields: base, Raw: ocelRaw(ev.ID, "")}, l.n, nil
	}
	for _, h := range orders {
		f := make(map[string]any, len(base)+1)
		for k, v := range base {
			f[k] = v
		}
		id := l.id(h.obj)
		f["order"] = map[string]any{"id": id, "attributes": l.asOf(h.obj, at), "via": h.via, "qualifier": h.qual}
		l.pending = append(l.pending, Record{Fields: f, Raw: ocelRaw(ev.ID, id)})
	}
	r := l.pending[0]
	l.pending = l.pending[1:]
	return r, l.n, nil
}

// follow returns the objects reached from obj through the types of path, in turn.
func (l *OCELLog) follow(obj int32, path []int32) []int32 {
	cur := []int32{obj}
	for _, step := range path {
		var next []int32
		for _, c := range cur {
			for _, r := range l.related(c) {
				if l.objs[r].typ == step && !contains(next, r) {
					next = append(next, r)
				}
			}
		}
		cur = next
	}
	slices.Sort(cur) // the objects' order in the file, not the relationships'.
	return cur
}

func contains(s []int32, x int32) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// asOf gives the attributes of order obj as of t: for each name, the latest
// value whose time is not after t, or the earliest when all are after it (an
// attribute with no time or a time that is not RFC 3339 holds from the start).
func (l *OCELLog) asOf(obj int32, t int64) map[string]any {
	out := make(map[string]any, 8)
	best := make(map[int32]int64, 8)
	l.eachAttr(obj, func(a orderAttr) {
		bt, ok := best[a.name]
		switch {
		case !ok:
		case a.t <= t && (bt > t || a.t >= bt):
		case a.t < bt && bt > t:
		default:
			return
		}
		out[l.names[a.name]] = a.v
		best[a.name] = a.t
	})
	return out
}

func ocelRaw(eventID, orderID string) []byte {
	b := make([]byte, 0, len("ocel2")+len(eventID)+len(orderID)+2)
	b = append(b, "ocel2\x00"...)
	b = append(b, eventID...)
	b = append(b, 0)
	return append(b, orderID...)
}

// Row returns a record read by Next as strings, for a rejects file: the event's id,
// type and time and the order's id.
func (l *OCELLog) Row(rec Record) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"id", "type", "time"} {
		if s, ok := rec.Fields[k].(string); ok {
			out[k] = s
		}
	}
	if o, ok := rec.Fields["order"].(map[string]any); ok {
		out["order_id"], _ = o["id"].(string)
	}
	return out
}

// MaxOCELValueBytes bounds one value of an OCEL log: an object, an event, a
// section the import skips, a key. encoding/json holds a value whole while it
// decodes it, so a larger one (a broken or hostile file) stops the import
// rather than the memory; an event over MaxRecordBytes but under this bound is
// only rejected, as oversize, and the import goes on.
const MaxOCELValueBytes = 4 << 20

// valueBound is the log's reader: it refuses to read more than
// MaxOCELValueBytes past where the decoder stands when the next value starts.
type valueBound struct {
	r           io.Reader
	read, limit int64
}

func (b *valueBound) Read(p []byte) (int, error) {
	rest := b.limit - b.read
	if rest <= 0 {
		return 0, fmt.Errorf("mapping: ocel: a value of the log runs past %d bytes, the limit of one object or event (MaxOCELValueBytes): the file is broken or not an OCEL 2.0 log", MaxOCELValueBytes)
	}
	if int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// next bounds the next token or value the decoder reads, and returns it.
func (l *OCELLog) next() *json.Decoder {
	l.in.limit = l.dec.InputOffset() + MaxOCELValueBytes
	return l.dec
}
