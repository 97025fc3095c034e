package actions

import (
	"fmt"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// Memory is what the policy remembers of one order between batches: per rule, the
// current episode and whether its conditions hold. It is stored with the order.
type Memory map[string]RuleMemory

// RuleMemory is the episode state of one rule for one order.
type RuleMemory struct {
	Episode int  `json:"e"`
	Active  bool `json:"a"`
}

// The binary form of a Memory, as the pipeline stores it inside its order record
// (see internal/binrec): the count of rules, then each rule's id, episode and
// whether it is active, in id order so that equal memories have equal bytes (a
// reader takes them in any order). It is part of the stored format of order
// records. An empty memory reads back nil.

// AppendBinary appends the binary form of m to b. It never fails; it returns an
// error to be an encoding.BinaryAppender.
func (m Memory) AppendBinary(b []byte) ([]byte, error) {
	var buf [16]entry[RuleMemory] // a policy has few rules: sorted on the stack
	b = binrec.AppendInt(b, len(m))
	for _, r := range sortedEntries(buf[:0], m) {
		b = binrec.AppendString(b, r.k)
		b = binrec.AppendInt(b, r.v.Episode)
		b = binrec.AppendBool(b, r.v.Active)
	}
	return b, nil
}

// DecodeBinary sets *m to the memory AppendBinary wrote at the front of b, and
// returns the bytes that follow it.
func (m *Memory) DecodeBinary(b []byte) (rest []byte, err error) {
	d := binrec.NewDecoder(b)
	*m = nil
	if n := d.Count(); n > 0 {
		*m = make(Memory, n)
		for range n {
			id := d.Str()
			(*m)[id] = RuleMemory{Episode: d.Int(), Active: d.Bool()}
		}
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("actions: decode policy memory: %w", err)
	}
	return d.Rest(), nil
}
