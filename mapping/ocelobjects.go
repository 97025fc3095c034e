package mapping

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"unicode/utf8"
)

// ocelObjects is the compact table of an OCEL log's objects, which stays in
// memory while the events stream (a million-event log has more than half a
// million objects). Every part is pointer-free, so the collector does not scan
// it, and there is no allocation per object:
//
//   - ids: length-prefixed, back to back in one arena (strs); an object is 12
//     bytes (the id's offset, its type, its attributes' offset);
//   - id -> object: an open-addressing table of int32s (slots) hashed over the
//     arena, instead of a map[string]int32 whose every key is an allocation;
//   - relationships: pairs while the objects are read, then a CSR (adj0, adj)
//     of the directions a via path follows only, 4 bytes each;
//   - an order's attributes: one varint-encoded record in the arena (name and
//     kind, time as a delta from the previous attribute's, value), decoded per
//     event; about 65 bytes for six attributes instead of about 280 as Go
//     values.
type ocelObjects struct {
	strs  strings.Builder // ids and order attribute records, back to back
	objs  []ocelObject
	slots []int32 // 1 + index into objs; 0: empty
	seed  maphash.Seed
	pairs []ocelPair // relationships as read; nil once linked
	adj0  []uint32   // object i's relationships are adj[adj0[i]:adj0[i+1]]
	adj   []int32
	enc   []byte // scratch for encoding an order's attributes
}

// ocelObject is one object as kept.
type ocelObject struct {
	id    uint32 // offset in strs of the id (uvarint length, bytes)
	typ   int32  // -1: referenced, not (yet) defined
	attrs uint32 // offset in strs of an order's attributes; noAttrs for other types
}

const noAttrs = math.MaxUint32

// ocelPair is one relationship as read.
type ocelPair struct{ a, b int32 }

// Kinds of an attribute value in an order's record (the low 3 bits of its
// first uvarint, the name's index above them).
const (
	attrNull   = iota
	attrString // uvarint length, bytes
	attrInt    // zig-zag varint
	attrFloat  // 8 bytes, little-endian bits
	attrFalse
	attrTrue
	attrJSON // an object or array: uvarint length, its JSON
)

// errOCELTooLarge is returned when the objects of a log outgrow the table's
// 32-bit offsets and indexes.
var errOCELTooLarge = errors.New("mapping: ocel: the log's objects pass 4 GiB of ids and attributes or 2^31 objects or relationships: split the log")

// str returns the length-prefixed string at off in the arena.
func (o *ocelObjects) str(off uint32) string {
	s := o.strs.String()[off:]
	n, k := uvarint(s)
	return s[k : k+int(n)]
}

// uvarint reads a uvarint from the start of s: its value and its length.
func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, i + 1
		}
	}
	return 0, len(s) // not reached for what the arena holds
}

// find returns the index of the object with the id, if there is one.
func (o *ocelObjects) find(id string) (int32, bool) {
	if len(o.slots) == 0 {
		return -1, false
	}
	mask := uint64(len(o.slots) - 1)
	for h := maphash.String(o.seed, id) & mask; ; h = (h + 1) & mask {
		k := o.slots[h]
		if k == 0 {
			return -1, false
		}
		if o.str(o.objs[k-1].id) == id {
			return k - 1, true
		}
	}
}

// intern returns the index of the object with the id, adding it (undefined)
// when there is none.
func (o *ocelObjects) intern(id string) (int32, error) {
	if i, ok := o.find(id); ok {
		return i, nil
	}
	if len(o.objs) >= math.MaxInt32-1 {
		return -1, errOCELTooLarge
	}
	if (len(o.objs)+1)*4 > len(o.slots)*3 {
		o.grow()
	}
	o.enc = binary.AppendUvarint(o.enc[:0], uint64(len(id)))
	o.enc = append(o.enc, id...)
	off, err := o.add(o.enc)
	if err != nil {
		return -1, err
	}
	i := int32(len(o.objs))
	o.objs = append(o.objs, ocelObject{id: off, typ: -1, attrs: noAttrs})
	o.place(i, id)
	return i, nil
}

func (o *ocelObjects) place(i int32, id string) {
	mask := uint64(len(o.slots) - 1)
	h := maphash.String(o.seed, id) & mask
	for o.slots[h] != 0 {
		h = (h + 1) & mask
	}
	o.slots[h] = i + 1
}

// grow doubles the table and places every object again.
func (o *ocelObjects) grow() {
	if len(o.slots) == 0 {
		o.seed = maphash.MakeSeed()
	}
	o.slots = make([]int32, max(1024, 2*len(o.slots)))
	for i, ob := range o.objs {
		o.place(int32(i), o.str(ob.id))
	}
}

// add appends b to the arena and returns its offset.
func (o *ocelObjects) add(b []byte) (uint32, error) {
	off := o.strs.Len()
	if off+len(b) >= noAttrs {
		return 0, errOCELTooLarge
	}
	o.strs.Write(b)
	return uint32(off), nil
}

// relate records a relationship between objects a and b.
func (o *ocelObjects) relate(a, b int32) error {
	if len(o.pairs) >= math.MaxInt32/2 {
		return errOCELTooLarge
	}
	o.pairs = append(o.pairs, ocelPair{a, b})
	return nil
}

// link turns the pairs into the CSR once every object is read, keeping a
// direction a -> b only when step(type of a, type of b) says a via path takes it.
func (o *ocelObjects) link(step func(from, to int32) bool) {
	keep := func(a, b int32) bool {
		return o.objs[a].typ >= 0 && o.objs[b].typ >= 0 && step(o.objs[a].typ, o.objs[b].typ)
	}
	o.adj0 = make([]uint32, len(o.objs)+1)
	for _, p := range o.pairs {
		if keep(p.a, p.b) {
			o.adj0[p.a]++
		}
		if keep(p.b, p.a) {
			o.adj0[p.b]++
		}
	}
	var sum uint32
	for i, c := range o.adj0 { // adj0[i]: the end of i's relationships
		sum += c
		o.adj0[i] = sum
	}
	o.adj = make([]int32, sum)
	for _, p := range o.pairs { // counting down: adj0[i] ends as i's start
		if keep(p.a, p.b) {
			o.adj0[p.a]--
			o.adj[o.adj0[p.a]] = p.b
		}
		if keep(p.b, p.a) {
			o.adj0[p.b]--
			o.adj[o.adj0[p.b]] = p.a
		}
	}
	o.pairs = nil
}

// related returns the objects object i has a relationship with, in the
// directions a via path takes.
func (o *ocelObjects) related(i int32) []int32 {
	return o.adj[o.adj0[i]:o.adj0[i+1]]
}

// id returns the id of object i.
func (o *ocelObjects) id(i int32) string { return o.str(o.objs[i].id) }

// ocelAttrIn is an attribute of an object as read: its value kept as JSON until
// it is encoded.
type ocelAttrIn struct {
	Name  string          `json:"name"`
	Time  string          `json:"time"`
	Value json.RawMessage `json:"value"`
}

// setAttrs encodes the attributes of order i into the arena; name gives an
// attribute name's index.
func (o *ocelObjects) setAttrs(i int32, attrs []ocelAttrIn, name func(string) int32) error {
	b := binary.AppendUvarint(o.enc[:0], uint64(len(attrs)))
	var prev int64
	for _, a := range attrs {
		t := unixNano(a.Time)
		var err error
		b, err = appendAttr(b, name(a.Name), t-prev, a.Value)
		if err != nil {
			o.enc = b
			return fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		prev = t
	}
	o.enc = b
	off, err := o.add(b)
	if err != nil {
		return err
	}
	o.objs[i].attrs = off
	return nil
}

// appendAttr appends one attribute: uvarint name<<3|kind, zig-zag varint time
// delta, the value.
func appendAttr(b []byte, name int32, dt int64, raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	head := func(kind int) []byte {
		b = binary.AppendUvarint(b, uint64(name)<<3|uint64(kind))
		return binary.AppendVarint(b, dt)
	}
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return head(attrNull), nil
	case raw[0] == '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(s) { // as encoding/json reads it
			var u string
			if err := json.Unmarshal(raw, &u); err != nil {
				return b, err
			}
			s = []byte(u)
		}
		b = head(attrString)
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...), nil
	case string(raw) == "true":
		return head(attrTrue), nil
	case string(raw) == "false":
		return head(attrFalse), nil
	case raw[0] == '{' || raw[0] == '[':
		b = head(attrJSON)
		b = binary.AppendUvarint(b, uint64(len(raw)))
		return append(b, raw...), nil
	}
	switch n := numbers(json.Number(raw)).(type) {
	case int64:
		b = head(attrInt)
		return binary.AppendVarint(b, n), nil
	case float64:
		b = head(attrFloat)
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(n)), nil
	}
	return head(attrNull), nil
}

// orderAttr is one attribute of an order as decoded from the arena.
type orderAttr struct {
	name int32
	t    int64 // Unix ns it holds from; 0 when none or not RFC 3339
	v    any
}

// eachAttr calls f with the attributes of object i (an order), in the log's
// order.
func (o *ocelObjects) eachAttr(i int32, f func(orderAttr)) {
	off := o.objs[i].attrs
	if off == noAttrs {
		return
	}
	s := o.strs.String()[off:]
	n, k := uvarint(s)
	s = s[k:]
	var t int64
	for range n {
		head, k := uvarint(s)
		s = s[k:]
		dt, k := varint(s)
		s = s[k:]
		t += dt
		a := orderAttr{name: int32(head >> 3), t: t}
		switch head & 7 {
		case attrString:
			m, k := uvarint(s)
			a.v, s = s[k:k+int(m)], s[k+int(m):]
		case attrInt:
			v, k := varint(s)
			a.v, s = v, s[k:]
		case attrFloat:
			var bits uint64
			for j := range 8 {
				bits |= uint64(s[j]) << (8 * j)
			}
			a.v, s = math.Float64frombits(bits), s[8:]
		case attrFalse:
			a.v = false
		case attrTrue:
			a.v = true
		case attrJSON:
			m, k := uvarint(s)
			a.v, s = decodeJSONValue(s[k:k+int(m)]), s[k+int(m):]
		}
		f(a)
	}
}

func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

// decodeJSONValue decodes an object or array attribute as ocelValue gives it.
func decodeJSONValue(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return ocelValue(v)
}
