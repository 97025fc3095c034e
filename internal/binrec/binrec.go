// Package binrec provides the primitives of orderwatch's stored binary records:
// the order record the pipeline keeps per order and the values stored inside it
// (an order's state, a policy's memory, a model reference), each encoded by its
// own type with these. It knows no record; it fixes how each kind of value is
// written, so that the types that make up one record agree:
//
//   - strings (and byte slices) as their uvarint length, then the bytes;
//   - integers as varints (zig-zag), counts too;
//   - booleans as one byte, 0 or 1 (any other byte reads as true);
//   - float64 and float32 as their little-endian IEEE bits;
//   - times as the varint of their Unix nanoseconds, 0 for the zero time (no
//     event or clock time is at the epoch), read back in UTC.
//
// These are part of stored formats: a change needs a new form of the records
// that use them, not a change here.
//
// The Append functions write one value to the end of a buffer, as the
// encoding.BinaryAppender of a stored type does; a Decoder reads them back from
// the front of one.
package binrec

import (
	"encoding/binary"
	"math"
	"time"
)

// AppendString appends s, prefixed by its length.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendInt appends v as a varint.
func AppendInt(b []byte, v int) []byte { return binary.AppendVarint(b, int64(v)) }

// AppendBool appends v as one byte, 1 for true.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendFloat64 appends the little-endian bits of v.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// AppendFloat32 appends the little-endian bits of v.
func AppendFloat32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

// AppendTime appends t's Unix nanoseconds as a varint, 0 for the zero time. The
// zone is not kept.
func AppendTime(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.AppendVarint(b, n)
}
