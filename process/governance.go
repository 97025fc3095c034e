package process

import (
	"errors"
	"fmt"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// RestoreGovernance writes the governance of a partition's orders, read from the
// group's state bucket (actions.Replica.Load), over what the rebuild of the
// partition left: each order's rule memory goes into its record, its cooldowns
// and decisions in flight into the store (actions.Policy.Restore). Call it after
// the partition's rebuild, between batches. It reports how many orders it
// restored.
func (p *Processor) RestoreGovernance(govs []actions.OrderGovernance) (int, error) {
	if p.flight != nil {
		return 0, errors.New("process: restore governance while a batch commits")
	}
	policy := p.opts.Policy.Policy()
	const chunk = 256
	for start := 0; start < len(govs); start += chunk {
		b := p.opts.Store.NewBatch()
		for i := start; i < min(start+chunk, len(govs)); i++ {
			g := &govs[i]
			delete(p.cache, g.Order)
			raw, err := b.Order(g.Order)
			switch {
			case err == nil && raw == nil:
				// No event of the order up to the previous owner's ack floor
				// (it wrote the governance, then died before its ack): the
				// events come again, and the record made of them starts with
				// the rules' episodes as they were.
				if len(g.Memory) > 0 {
					p.heldMemory[g.Order] = g.Memory
				}
			case err != nil:
				b.Discard()
				return start, fmt.Errorf("process: restore governance of order %s: %w", g.Order, err)
			default:
				var rec orderRecord
				if err := decodeRecord(raw, &rec); err != nil {
					b.Discard()
					return start, fmt.Errorf("process: restore governance of order %s: %w", g.Order, err)
				}
				rec.Policy = g.Memory
				enc, err := encodeRecord(nil, &rec)
				if err != nil {
					b.Discard()
					return start, fmt.Errorf("process: restore governance of order %s: %w", g.Order, err)
				}
				var ttl = p.opts.Retention
				if rec.State.Open() {
					ttl = 0
				}
				if err := b.PutOrder(g.Order, enc, ttl); err != nil {
					b.Discard()
					return start, err
				}
			}
			if err := policy.Restore(b, g); err != nil {
				b.Discard()
				return start, err
			}
		}
		err := b.Commit()
		b.Discard()
		if err != nil {
			return start, fmt.Errorf("process: restore governance: %w", err)
		}
	}
	return len(govs), nil
}

// ReadMemory reads an order's rule memory from its stored record, and whether
// the order is open; found is false when no record is stored.
func ReadMemory(st *store.Store, order string) (mem actions.Memory, open, found bool, err error) {
	raw, err := st.OrderRecord(order)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, err
	}
	var rec orderRecord
	if err := decodeRecord(raw, &rec); err != nil {
		return nil, false, true, fmt.Errorf("process: order record %s: %w", order, err)
	}
	return rec.Policy, rec.State.Open(), true, nil
}
