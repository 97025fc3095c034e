package process

import (
	"fmt"
	"maps"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// cacheTouched keeps the committed records of the batch's orders in the cache
// and lets finished ones (invoiced or cancelled) go: later events of theirs are
// rare.
func (p *Processor) cacheTouched(st *batchState) {
	if p.opts.CachedOrders < 0 {
		return
	}
	for _, rec := range st.touched {
		id := rec.id
		if s := &rec.State; s.Cancelled || s.Milestone == features.MilestoneInvoiced {
			delete(p.cache, id)
			continue
		}
		if _, ok := p.cache[id]; !ok && len(p.cache) >= p.opts.CachedOrders {
			for victim := range p.cache { // any one: map order is random
				delete(p.cache, victim)
				break
			}
		}
		p.cache[id] = rec
	}
}

// evictTouched drops the records a failed batch changed: the store holds their
// committed state.
func (p *Processor) evictTouched(st *batchState) {
	for _, rec := range st.touched {
		delete(p.cache, rec.id)
	}
}

// order returns the batch's record of an order: from the cache, or read from the
// store on first use.
func (p *Processor) order(batch *store.Batch, id string) (*orderRecord, error) {
	if rec, ok := p.orders[id]; ok {
		return rec, nil
	}
	rec, ok := p.cache[id]
	if !ok && p.flight != nil {
		// The batch committing may have let a finished order go from the cache.
		rec, ok = p.flight.st.orders[id]
	}
	if !ok {
		raw, err := batch.Order(id)
		if err != nil {
			return nil, err
		}
		rec = &orderRecord{}
		if raw != nil {
			if err := decodeRecord(raw, rec); err != nil {
				return nil, fmt.Errorf("decode stored order %s: %w", id, err)
			}
		} else if mem, ok := p.heldMemory[id]; ok {
			// Restored with its partition before any event of it was folded
			// here: its rules' episodes go on.
			rec.Policy = maps.Clone(mem)
		}
	}
	rec.id = id
	rec.wasOpen = rec.State.Open()
	p.orders[id] = rec
	p.touched = append(p.touched, rec)
	return rec, nil
}
