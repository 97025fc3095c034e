package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
)

// OCELWriter writes a run's events as an OCEL 2.0 JSON log, the way a
// distributor's process-mining export would look: orders with timed attributes,
// shipments, customers, warehouses and carriers as objects; events named as
// activities ("Create Order", "Place Credit Hold", "Ship", ...) with qualified
// relationships and attributes. It is the history the system recorded: a
// duplicate delivery (FaultDuplicate) is left out; late and out-of-order events
// are kept, in delivery order (an importer sorts by time).
//
// Where a schema-1 event's fields go:
//   - order.created: every data field is an attribute of the order object, timed
//     at the event (customer, customer_tier, channel, warehouse, ship_cutoff,
//     lines, units, value, carrier, service_level, promised_at, region); the
//     order relates to its customer ("placed by") and warehouse ("ships from");
//   - allocation.changed: the new warehouse is a new timed value of the order's
//     warehouse attribute (and another "ships from" relationship);
//   - order.changed, pricing.approved: units and value are event attributes and
//     new timed values of the order's attributes;
//   - data.warehouse and data.carrier of other events: a relationship to the
//     warehouse ("at") or carrier ("carrier") object;
//   - pack.confirmed relates to the order and the order's shipment ("packed
//     into"); shipment.confirmed to the shipment ("shipped") and not the order:
//     it reaches the order through the shipment (object shipment -> order, "for
//     order"); carrier.status to the shipment ("tracked") once there is one;
//   - context events (warehouse.load, carrier.performance) touch no order, only
//     the warehouse or carrier;
//   - the other data fields, the envelope's source (source_system) and actor
//     (resource) are event attributes; the event id is the OCEL event id.
//
// The events are spooled to a temporary file while the objects are gathered in
// memory (OCEL lists objects first). Not safe for concurrent use; Close removes
// the spool.
type OCELWriter struct {
	spool  *os.File
	sw     *bufio.Writer
	events int
	objs   []*ocelObj
	byID   map[string]*ocelObj
	types  map[string]*ocelTypeDecl // object types
	acts   map[string]*ocelTypeDecl // event types
	actOrd []string
	rels   []ocelRelOut // scratch
	attrs  []ocelAttrOut
}

type ocelObj struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Attributes    []ocelAttrOut  `json:"attributes"`
	Relationships []ocelRelOut   `json:"relationships"`
	shipment      *ocelObj       // an order's
	related       map[string]int // relationships held, for not repeating one
}

type ocelAttrOut struct {
	Name  string          `json:"name"`
	Time  string          `json:"time,omitempty"`
	Value json.RawMessage `json:"value"`
}

type ocelRelOut struct {
	ObjectID  string `json:"objectId"`
	Qualifier string `json:"qualifier"`
}

type ocelEventOut struct {
	ID            string        `json:"id"`
	Type          string        `json:"type"`
	Time          string        `json:"time"`
	Attributes    []ocelAttrOut `json:"attributes"`
	Relationships []ocelRelOut  `json:"relationships"`
}

// ocelTypeDecl is an object or event type of the log's objectTypes and
// eventTypes: its attributes with their OCEL types.
type ocelTypeDecl struct {
	Name       string         `json:"name"`
	Attributes []ocelAttrDecl `json:"attributes"`
	seen       map[string]bool
}

type ocelAttrDecl struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func newTypeDecl(name string) *ocelTypeDecl {
	return &ocelTypeDecl{Name: name, Attributes: []ocelAttrDecl{}, seen: map[string]bool{}}
}

func (d *ocelTypeDecl) add(name, typ string) {
	if d.seen[name] {
		return
	}
	d.seen[name] = true
	d.Attributes = append(d.Attributes, ocelAttrDecl{name, typ})
}

// OCELActivities names the activity of each schema-1 event type in an OCEL log
// the simulator writes (examples/mapping/simulator-ocel2.yaml maps them back).
var OCELActivities = map[string]string{
	"order.created": "Create Order", "order.changed": "Change Order",
	"credit.hold": "Place Credit Hold", "credit.released": "Release Credit Hold",
	"pricing.exception": "Flag Price Exception", "pricing.approved": "Approve Price",
	"inventory.allocated": "Allocate Stock", "allocation.changed": "Reallocate Stock",
	"allocation.short": "Report Shortfall", "pick.released": "Release Pick",
	"pick.confirmed": "Confirm Pick", "pack.confirmed": "Confirm Pack",
	"shipment.confirmed": "Ship", "carrier.status": "Carrier Status Update",
	"invoice.created": "Create Invoice", "invoice.failed": "Invoice Failed",
	"integration.error": "Integration Error", "note.added": "Add Note",
	"order.cancelled": "Cancel Order", "warehouse.load": "Report Warehouse Load",
	"carrier.performance": "Report Carrier Performance",
}

// Object types of the log.
const (
	ocelOrder     = "order"
	ocelShipment  = "shipment"
	ocelCustomer  = "customer"
	ocelWarehouse = "warehouse"
	ocelCarrier   = "carrier"
)

// orderAttrNames renames the data fields of order.created that become order
// attributes; the others keep their names.
var orderAttrNames = map[string]string{"customer_id": "customer"}

// NewOCELWriter returns a writer whose spool file is in dir (os.TempDir() when
// empty).
func NewOCELWriter(dir string) (*OCELWriter, error) {
	f, err := os.CreateTemp(dir, "orderwatch-ocel-events-*")
	if err != nil {
		return nil, fmt.Errorf("sim: ocel: spool: %w", err)
	}
	return &OCELWriter{spool: f, sw: bufio.NewWriterSize(f, 1<<20), byID: map[string]*ocelObj{},
		types: map[string]*ocelTypeDecl{}, acts: map[string]*ocelTypeDecl{}}, nil
}

// simEvent is an emitted event as the writer reads it back.
type simEvent struct {
	ID         string                     `json:"id"`
	Type       string                     `json:"type"`
	OrderID    string                     `json:"order_id"`
	OccurredAt string                     `json:"occurred_at"`
	Source     string                     `json:"source"`
	Actor      string                     `json:"actor"`
	Data       map[string]json.RawMessage `json:"data"`
}

// Add records one emitted event; a duplicate delivery is left out. Use it in an
// EmitFunc (it copies what it keeps).
func (w *OCELWriter) Add(ev *Emitted) error {
	if ev.Fault == FaultDuplicate {
		return nil
	}
	var e simEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil {
		return fmt.Errorf("sim: ocel: event: %w", err)
	}
	act, ok := OCELActivities[e.Type]
	if !ok {
		return fmt.Errorf("sim: ocel: event type %q has no activity: add it to OCELActivities", e.Type)
	}
	w.rels, w.attrs = w.rels[:0], w.attrs[:0]
	var o *ocelObj
	if e.OrderID != "" {
		var err error
		if o, err = w.object(e.OrderID, ocelOrder); err != nil {
			return err
		}
	}
	switch e.Type {
	case "order.created":
		for _, k := range slices.Sorted(maps.Keys(e.Data)) {
			name := k
			if n, ok := orderAttrNames[k]; ok {
				name = n
			}
			w.setAttr(o, name, e.OccurredAt, e.Data[k])
		}
		if c := str(e.Data["customer_id"]); c != "" {
			cu, err := w.object(c, ocelCustomer)
			if err != nil {
				return err
			}
			if len(cu.Attributes) == 0 {
				for _, k := range []string{"customer_tier", "region"} {
					if v, ok := e.Data[k]; ok {
						w.setAttr(cu, k, e.OccurredAt, v)
					}
				}
			}
			if err := w.relate(o, c, ocelCustomer, "placed by"); err != nil {
				return err
			}
		}
		if wh := str(e.Data["warehouse"]); wh != "" {
			if err := w.relate(o, wh, ocelWarehouse, "ships from"); err != nil {
				return err
			}
		}
		clear(e.Data) // all on the order
	case "allocation.changed":
		if v, ok := e.Data["warehouse"]; ok {
			w.setAttr(o, "warehouse", e.OccurredAt, v)
			if err := w.relate(o, str(v), ocelWarehouse, "ships from"); err != nil {
				return err
			}
			delete(e.Data, "warehouse")
		}
	case "order.changed", "pricing.approved":
		for _, k := range []string{"units", "value"} {
			if v, ok := e.Data[k]; ok {
				w.setAttr(o, k, e.OccurredAt, v)
			}
		}
	}
	if o != nil {
		var err error
		switch {
		case e.Type == "shipment.confirmed":
			var sh *ocelObj
			if sh, err = w.shipment(o); err == nil {
				w.rels = append(w.rels, ocelRelOut{sh.ID, "shipped"})
				if c := str(e.Data["carrier"]); c != "" {
					err = w.relate(sh, c, ocelCarrier, "carried by")
				}
			}
		case e.Type == "pack.confirmed":
			var sh *ocelObj
			if sh, err = w.shipment(o); err == nil {
				w.rels = append(w.rels, ocelRelOut{o.ID, "order"}, ocelRelOut{sh.ID, "packed into"})
			}
		case e.Type == "carrier.status" && o.shipment != nil:
			w.rels = append(w.rels, ocelRelOut{o.shipment.ID, "tracked"})
		default:
			w.rels = append(w.rels, ocelRelOut{o.ID, "order"})
		}
		if err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		v := e.Data[k]
		switch k {
		case "warehouse", "carrier":
			typ, q := ocelWarehouse, "at"
			if k == "carrier" {
				typ, q = ocelCarrier, "carrier"
			}
			if _, err := w.object(str(v), typ); err != nil {
				return err
			}
			w.rels = append(w.rels, ocelRelOut{str(v), q})
			if k == "warehouse" && e.Type == "warehouse.load" {
				if tz, ok := e.Data["timezone"]; ok {
					if wh := w.byID[str(v)]; len(wh.Attributes) == 0 || string(wh.Attributes[len(wh.Attributes)-1].Value) != string(tz) {
						w.setAttr(wh, "timezone", e.OccurredAt, tz)
					}
				}
			}
		default:
			w.attrs = append(w.attrs, ocelAttrOut{Name: k, Value: v})
		}
	}
	w.attrs = append(w.attrs, ocelAttrOut{Name: "source_system", Value: quote(e.Source)}, ocelAttrOut{Name: "resource", Value: quote(e.Actor)})
	d := w.acts[act]
	if d == nil {
		d = newTypeDecl(act)
		w.acts[act] = d
		w.actOrd = append(w.actOrd, act)
	}
	for _, a := range w.attrs {
		d.add(a.Name, ocelType(a.Name, a.Value))
	}
	b, err := json.Marshal(ocelEventOut{ID: e.ID, Type: act, Time: e.OccurredAt, Attributes: w.attrs, Relationships: w.rels})
	if err != nil {
		return fmt.Errorf("sim: ocel: %w", err)
	}
	if w.events > 0 {
		w.sw.WriteString(",\n")
	}
	w.events++
	if _, err := w.sw.Write(b); err != nil {
		return fmt.Errorf("sim: ocel: spool: %w", err)
	}
	return nil
}

// object returns the object with the id, made with type typ when new; an id of
// another type is an error (OCEL ids are unique across types).
func (w *OCELWriter) object(id, typ string) (*ocelObj, error) {
	if o, ok := w.byID[id]; ok {
		if o.Type != typ {
			return nil, fmt.Errorf("sim: ocel: object id %q is both a %s and a %s", id, o.Type, typ)
		}
		return o, nil
	}
	o := &ocelObj{ID: id, Type: typ, Attributes: []ocelAttrOut{}, Relationships: []ocelRelOut{}}
	w.byID[id] = o
	w.objs = append(w.objs, o)
	if w.types[typ] == nil {
		w.types[typ] = newTypeDecl(typ)
	}
	return o, nil
}

// shipment returns the order's shipment, made when it has none.
func (w *OCELWriter) shipment(o *ocelObj) (*ocelObj, error) {
	if o.shipment != nil {
		return o.shipment, nil
	}
	sh, err := w.object("SH-"+o.ID, ocelShipment)
	if err != nil {
		return nil, err
	}
	o.shipment = sh
	sh.Relationships = append(sh.Relationships, ocelRelOut{o.ID, "for order"})
	return sh, nil
}

// relate adds a relationship from o to the object id (of type typ, made when
// new) unless o has it.
func (w *OCELWriter) relate(o *ocelObj, id, typ, qualifier string) error {
	if _, err := w.object(id, typ); err != nil {
		return err
	}
	if o.related == nil {
		o.related = map[string]int{}
	}
	key := qualifier + "\x00" + id
	if _, ok := o.related[key]; ok {
		return nil
	}
	o.related[key] = len(o.Relationships)
	o.Relationships = append(o.Relationships, ocelRelOut{id, qualifier})
	return nil
}

func (w *OCELWriter) setAttr(o *ocelObj, name, at string, v json.RawMessage) {
	o.Attributes = append(o.Attributes, ocelAttrOut{Name: name, Time: at, Value: slices.Clone(v)})
	w.types[o.Type].add(name, ocelType(name, v))
}

// ocelType is the OCEL attribute type of a value the simulator wrote.
func ocelType(name string, v json.RawMessage) string {
	switch {
	case len(v) == 0:
		return "string"
	case name == "ship_cutoff" || name == "promised_at":
		return "time"
	case v[0] == '"':
		return "string"
	case v[0] == 't' || v[0] == 'f':
		return "boolean"
	case name == "value" || name == "on_time_share" || name == "delay_minutes":
		return "float"
	}
	return "integer"
}

func str(v json.RawMessage) string {
	var s string
	json.Unmarshal(v, &s)
	return s
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// Events returns how many events were added (duplicates left out).
func (w *OCELWriter) Events() int { return w.events }

// Objects returns how many objects the events made.
func (w *OCELWriter) Objects() int { return len(w.objs) }

// WriteTo writes the log: objectTypes, eventTypes, objects, events (objects
// before events, so an importer can stream the events). Call it once, after the
// last Add.
func (w *OCELWriter) WriteTo(out io.Writer) (int64, error) {
	if err := w.sw.Flush(); err != nil {
		return 0, fmt.Errorf("sim: ocel: spool: %w", err)
	}
	cw := &countWriter{w: bufio.NewWriterSize(out, 1<<20)}
	bw := cw.w.(*bufio.Writer)
	enc := func(v any) {
		b, err := json.Marshal(v)
		if err != nil && cw.err == nil {
			cw.err = err
		}
		cw.Write(b)
	}
	decls := func(m map[string]*ocelTypeDecl, order []string) []*ocelTypeDecl {
		out := make([]*ocelTypeDecl, 0, len(order))
		for _, k := range order {
			out = append(out, m[k])
		}
		return out
	}
	typeOrder := []string{}
	for _, t := range []string{ocelOrder, ocelShipment, ocelCustomer, ocelWarehouse, ocelCarrier} {
		if w.types[t] != nil {
			typeOrder = append(typeOrder, t)
		}
	}
	io.WriteString(cw, `{"objectTypes":`)
	enc(decls(w.types, typeOrder))
	io.WriteString(cw, ",\n"+`"eventTypes":`)
	enc(decls(w.acts, w.actOrd))
	io.WriteString(cw, ",\n"+`"objects":[`)
	for i, o := range w.objs {
		if i > 0 {
			io.WriteString(cw, ",\n")
		}
		enc(o)
	}
	io.WriteString(cw, "],\n"+`"events":[`)
	if _, err := w.spool.Seek(0, io.SeekStart); err != nil {
		return cw.n, fmt.Errorf("sim: ocel: spool: %w", err)
	}
	if _, err := io.Copy(cw, w.spool); err != nil && cw.err == nil {
		cw.err = err
	}
	io.WriteString(cw, "]}\n")
	if err := bw.Flush(); err != nil && cw.err == nil {
		cw.err = err
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("sim: ocel: write: %w", cw.err)
	}
	return cw.n, nil
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Close removes the spool file.
func (w *OCELWriter) Close() error {
	if w.spool == nil {
		return nil
	}
	name := w.spool.Name()
	err := errors.Join(w.spool.Close(), os.Remove(name))
	w.spool = nil
	return err
}
