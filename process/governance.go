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
// the partition's rebuild, between batches. An order whose governance cannot be
// restored (a damaged value in the bucket) is left out, logged and counted: it
// never holds the partition back. It reports how many orders it restored; an
// error means the store failed.
func (p *Processor) RestoreGovernance(govs []actions.OrderGovernance) (int, error) {
	if p.flight != nil {
		return 0, errors.New("process: restore governance while a batch commits")
	}
	policy := p.opts.Policy.Policy()
	const chunk = 256
	restored := 0
	for start := 0; start < len(govs); start += chunk {
		part := govs[start:min(start+chunk, len(govs))]
		n, bad, err := p.restore(policy, part)
		if err != nil {
			return restored, err
		}
		if bad < 0 {
			restored += n
			continue
		}
		// One order's governance is bad: the rest of the chunk one at a time.
		for i := range part {
			n, bad, err := p.restore(policy, part[i:i+1])
			if err != nil {
				return restored, err
			}
			if bad >= 0 {
				p.m.governanceSkipped.Inc()
				p.log.Error("order governance from the group's state bucket not restored: left out", "order", part[i].Order, "err", p.lastBad)
				continue
			}
			restored += n
		}
	}
	return restored, nil
}

// restore restores govs in one commit. bad is the index of an order whose
// governance cannot be restored (p.lastBad says why; nothing is committed),
// -1 when none; err is a failure of the store.
func (p *Processor) restore(policy *actions.Policy, govs []actions.OrderGovernance) (n, bad int, err error) {
	b := p.opts.Store.NewBatch()
	defer b.Discard()
	for i := range govs {
		g := &govs[i]
		delete(p.cache, g.Order)
		raw, err := b.Order(g.Order)
		if err != nil {
			return 0, -1, err
		}
		if raw == nil {
			// No event of the order up to the previous owner's ack floor (it
			// wrote the governance, then died before its ack): the events come
			// again, and the record made of them starts with the rules'
			// episodes as they were.
			if len(g.Memory) > 0 {
				p.heldMemory[g.Order] = g.Memory
			}
		} else {
			var rec orderRecord
			if err := decodeRecord(raw, &rec); err != nil {
				p.lastBad = fmt.Errorf("stored record: %w", err)
				return 0, i, nil
			}
			rec.Policy = g.Memory
			enc, err := encodeRecord(nil, &rec)
			if err != nil {
				p.lastBad = err
				return 0, i, nil
			}
			if err := b.PutOrder(g.Order, enc, p.recordTTL(&rec, rec.State.Open())); err != nil {
				return 0, -1, err
			}
		}
		if err := policy.Restore(b, g); err != nil {
			p.lastBad = err
			return 0, i, nil
		}
	}
	if err := b.Commit(); err != nil {
		return 0, -1, fmt.Errorf("process: restore governance: %w", err)
	}
	return len(govs), -1, nil
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
