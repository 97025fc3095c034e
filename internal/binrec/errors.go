package binrec

import "errors"

// ErrShort is returned (by a Decoder's Err and End) when a record ends within a
// value: it was cut, or a length in it is damaged.
var ErrShort = errors.New("binrec: record ends early")
