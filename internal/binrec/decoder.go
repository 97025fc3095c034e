package binrec

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// A Decoder reads the values the Append functions wrote, in the order they were
// written, from the front of a buffer. The first error sticks: every read after
// it returns the zero value, and Err and End report it. Values read share no
// memory with the buffer. A Decoder is not safe for concurrent use.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder that reads from the front of b.
func NewDecoder(b []byte) Decoder { return Decoder{b: b} }

// Rest returns what is left to read: nil after an error.
func (d *Decoder) Rest() []byte { return d.b }

// Err returns the first error.
func (d *Decoder) Err() error { return d.err }

// End returns the first error or, when there was none, an error if bytes are
// left: for the end of a whole record.
func (d *Decoder) End() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("binrec: %d bytes left after the record", len(d.b))
	}
	return d.err
}

// Fail records err, unless an error came first, and stops reading.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

// A BinaryDecoder reads itself from the front of b, as its AppendBinary wrote
// it, and returns what follows.
type BinaryDecoder interface {
	DecodeBinary(b []byte) (rest []byte, err error)
}

// Decode has v read itself from the front of what is left.
func (d *Decoder) Decode(v BinaryDecoder) {
	if d.err != nil {
		return
	}
	rest, err := v.DecodeBinary(d.b)
	if err != nil {
		d.Fail(err)
		return
	}
	d.b = rest
}

func (d *Decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail(ErrShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail(ErrShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Int reads what AppendInt wrote.
func (d *Decoder) Int() int { return int(d.varint()) }

// Count reads a count of elements written with AppendInt. It must fit in what is
// left, each element taking a byte at least, so a damaged count cannot make the
// caller allocate more than the record's size.
func (d *Decoder) Count() int {
	n := d.Int()
	if n < 0 || n > len(d.b) {
		d.Fail(fmt.Errorf("binrec: count %d out of range", n))
		return 0
	}
	return n
}

// Str reads what AppendString wrote.
func (d *Decoder) Str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.Fail(ErrShort)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Bool reads what AppendBool wrote.
func (d *Decoder) Bool() bool {
	if len(d.b) < 1 {
		d.Fail(ErrShort)
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

// Float64 reads what AppendFloat64 wrote.
func (d *Decoder) Float64() float64 {
	if len(d.b) < 8 {
		d.Fail(ErrShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// Float32 reads what AppendFloat32 wrote.
func (d *Decoder) Float32() float32 {
	if len(d.b) < 4 {
		d.Fail(ErrShort)
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	return v
}

// Time reads what AppendTime wrote, in UTC.
func (d *Decoder) Time() time.Time {
	n := d.varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
