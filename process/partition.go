package process

import (
	"fmt"

	"github.com/orderwatch/orderwatch/store"
)

// partCounters are the names of one partition's durable counters, made once so
// the hot path does not build them.
type partCounters struct {
	applied, duplicates, deadLettered, open string
}

func newPartCounters(part int) partCounters {
	return partCounters{
		applied:      store.PartCounter(store.CounterEventsApplied, part),
		duplicates:   store.PartCounter(store.CounterDuplicates, part),
		deadLettered: store.PartCounter(store.CounterDeadLettered, part),
		open:         store.PartCounter(store.CounterOpenOrders, part),
	}
}

// countersOf returns the counter names of a partition; a number out of range
// (a follower's context messages, which count nothing that lasts) gets the
// context ones.
func (p *Processor) countersOf(part int) *partCounters {
	if part >= 0 && part < len(p.counters) {
		return &p.counters[part]
	}
	return &p.ctxCounters
}

// DropPartition forgets the local state of a partition another instance owns
// now (store.DropPartition): its order records, leaving the cache, the
// rescoring index, the index of open orders and the gauges too. Call it
// between batches, never while one is in flight.
func (p *Processor) DropPartition(part int) (int, error) {
	if p.flight != nil {
		return 0, fmt.Errorf("process: drop partition %d while a batch commits", part)
	}
	orders := map[string]bool{}
	err := p.opts.Store.Orders(func(id string, raw []byte) error {
		if p.opts.PartitionOf(id) != part {
			return nil
		}
		orders[id] = true
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err == nil {
			p.m.countOrder(rec.Gauge, -1)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("process: drop partition %d: %w", part, err)
	}
	if err := p.opts.Store.DropPartition(part, orders, p.opts.Replicated); err != nil {
		return 0, err
	}
	for id := range orders {
		p.dues.remove(id)
	}
	p.dropWatches(orders)
	p.dropIncidents(orders)
	if p.opts.OpenOrders != nil {
		p.opts.OpenOrders.drop(orders)
	}
	for id := range p.cache {
		if p.opts.PartitionOf(id) == part {
			delete(p.cache, id)
		}
	}
	for id := range p.heldMemory {
		if p.opts.PartitionOf(id) == part {
			delete(p.heldMemory, id)
		}
	}
	return len(orders), nil
}
