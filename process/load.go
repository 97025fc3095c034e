package process

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// loadOrders reads the order records in one pass and builds from them what
// mirrors them in memory: the rescoring index (each open order's next due
// time), the deadline watches (the records' sectionWatches, with their open
// exceptions read from their X/ records) and, at start (first), the order
// gauges and the index of open orders. At start it also takes in, once, what
// an earlier release kept beside the records: its deadline watches (Z/) move
// into their orders' records, its rescoring index (u/) is deleted.
//
// A record that does not decode is left out, and so are its timers: at start
// counted and logged (its order's next event is dead-lettered as poison,
// errors.go); after a failed batch, only when it is newly unreadable.
func (p *Processor) loadOrders(first bool) error {
	idx := newDueIndex()
	ws := newWatches()
	var (
		bad          map[string]bool // orders whose record does not decode
		badErr       error
		withEx       []storedWatch // watches whose exception is to be read
		legacyEx     []*Exception  // open exceptions of an earlier release to write with their reminder schedule
		lostWatches  int
		lostWatchErr error
		open         []openRow
	)
	lose := func(n int, err error) {
		if lostWatches += n; lostWatchErr == nil {
			lostWatchErr = err
		}
	}
	err := p.opts.Store.Orders(func(id string, raw []byte) error {
		var rec orderRecord
		if err := decodeRecord(raw, &rec); err != nil {
			if bad == nil {
				bad = map[string]bool{}
			}
			bad[id] = true
			if badErr == nil {
				badErr = fmt.Errorf("order %s: %w", id, err)
			}
			return nil
		}
		if first {
			p.m.countOrder(rec.Gauge, 1)
			if p.opts.OpenOrders != nil && rec.State.Open() {
				open = append(open, openRowOf(&rec))
			}
		}
		if rec.State.Open() && !rec.NextDue.IsZero() {
			idx.set(id, rec.NextDue)
		}
		if len(rec.watchRaw) == 0 {
			return nil
		}
		sws, err := parseWatchSection(id, rec.watchRaw)
		if err != nil {
			lose(1, fmt.Errorf("order %s: %w", id, err))
			return nil
		}
		for _, sw := range sws {
			ws.put(sw.w)
			if sw.ex != "" {
				withEx = append(withEx, sw)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("process: load the order records: %w", err)
	}
	from, err := p.remindedUntil()
	if err != nil {
		return err
	}
	for _, sw := range withEx {
		w := sw.w
		raw, err := p.opts.Store.Exception(w.Order, sw.ex)
		if err != nil {
			return fmt.Errorf("process: load deadline watches: %w", err)
		}
		x := &Exception{}
		switch {
		case raw == nil:
			err = fmt.Errorf("order %s: deadline %s: exception %s not found", w.Order, w.Deadline, sw.ex)
		default:
			err = json.Unmarshal(raw, x)
		}
		if err != nil {
			// Without its exception the watch cannot fire or close it.
			lose(1, err)
			ws.remove(watchKey{w.Order, w.Deadline})
			continue
		}
		w.Exception = x
		changed, adopted := w.resume(deadlineOf(p.opts.Policy.Policy(), w.Deadline), from)
		if changed {
			ws.put(w)
		}
		if adopted && first {
			legacyEx = append(legacyEx, x)
		}
	}
	if err := p.adoptSchedules(legacyEx); err != nil {
		return err
	}
	if first {
		if err := p.takeLegacyWatches(ws, bad, lose); err != nil {
			return err
		}
		if err := p.takeLegacyDues(bad); err != nil {
			return err
		}
		if p.opts.OpenOrders != nil {
			p.opts.OpenOrders.replace(open)
		}
	}
	newlyBad := 0
	for id := range bad {
		if first || !p.badOrders[id] {
			newlyBad++
			if !first {
				// Read fine before: what memory held of it goes.
				lose(len(p.watches.of[id]), fmt.Errorf("order %s: record does not decode", id))
			}
		}
	}
	if newlyBad > 0 {
		p.m.unreadable.WithLabelValues(kindOrder).Add(float64(newlyBad))
		p.log.Warn("stored order records that do not decode, left out of the timers, the order gauges and the index of open orders", "records", newlyBad, "err", badErr)
	}
	if lostWatches > 0 {
		p.m.unreadable.WithLabelValues(kindWatch).Add(float64(lostWatches))
		p.log.Warn("stored deadline watches that do not load, left out", "records", lostWatches, "err", lostWatchErr)
	}
	p.badOrders = bad
	p.dues, p.watches = idx, ws
	p.book.seed(p.opts.Policy.Policy())
	return nil
}

// legacyMoveBatch is how many orders' records one commit of the move of an
// earlier release's deadline watches writes.
const legacyMoveBatch = 256

// takeLegacyWatches moves the deadline watches an earlier release stored
// under Z/ into their orders' records, which it writes, and deletes them
// there; ws takes them in. A watch whose order's record is missing or does
// not decode is left out (lose) and its Z/ key left in place.
func (p *Processor) takeLegacyWatches(ws *watches, bad map[string]bool, lose func(int, error)) error {
	var legacy []*watch
	err := p.opts.Store.Watches(func(v []byte) error {
		w := &watch{}
		if err := json.Unmarshal(v, w); err != nil {
			lose(1, err)
			return nil
		}
		if x := w.Exception; x != nil && !w.Passed && x.Kind != KindEvent {
			// Written before escalations: an open exception of a deadline
			// has passed it, and Due was its next reminder.
			w.Passed, w.RemindAt, x.Overdue = true, w.Due, true
		}
		legacy = append(legacy, w)
		return nil
	})
	if err != nil || len(legacy) == 0 {
		if err != nil {
			return fmt.Errorf("process: load the deadline watches of an earlier release: %w", err)
		}
		return nil
	}
	var moved, orders int
	b := p.opts.Store.NewBatch()
	defer func() { b.Discard() }()
	for i := 0; i < len(legacy); {
		order := legacy[i].Order
		j := i + 1
		for j < len(legacy) && legacy[j].Order == order {
			j++
		}
		group := legacy[i:j]
		i = j
		var rec orderRecord
		raw, err := b.Order(order)
		switch {
		case err != nil:
			return fmt.Errorf("process: move the deadline watches of an earlier release: %w", err)
		case raw == nil || bad[order]:
			lose(len(group), fmt.Errorf("order %s: deadline watches of an earlier release without a readable order record", order))
			continue
		}
		if err := decodeRecord(raw, &rec); err != nil {
			lose(len(group), fmt.Errorf("order %s: %w", order, err))
			continue
		}
		for _, w := range group {
			if _, ok := ws.m[watchKey{order, w.Deadline}]; !ok { // the record's is newer
				ws.put(w)
			}
		}
		rec.watchRaw = appendWatchSection(nil, ws, order)
		v, err := encodeRecord(nil, &rec)
		if err != nil {
			return fmt.Errorf("process: move the deadline watches of an earlier release: encode order record %s: %w", order, err)
		}
		if err := b.PutOrder(order, v, p.recordTTL(&rec, rec.State.Open())); err != nil {
			return err
		}
		for _, w := range group {
			if err := b.DeleteWatch(order, w.Deadline); err != nil {
				return err
			}
		}
		moved += len(group)
		if orders++; orders%legacyMoveBatch == 0 {
			if err := b.Commit(); err != nil {
				return fmt.Errorf("process: move the deadline watches of an earlier release: %w", err)
			}
			b = p.opts.Store.NewBatch()
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("process: move the deadline watches of an earlier release: %w", err)
	}
	if moved > 0 {
		p.log.Info("deadline watches of an earlier release moved into their order records", "watches", moved, "orders", orders)
	}
	return nil
}

// takeLegacyDues deletes the rescoring index an earlier release kept (u/):
// the order records' next due times are the index now. An entry of an order
// whose record does not decode is a timer that can never fire: dropped,
// counted.
func (p *Processor) takeLegacyDues(bad map[string]bool) error {
	dues, err := p.opts.Store.Dues()
	if err != nil {
		return fmt.Errorf("process: load the rescoring index of an earlier release: %w", err)
	}
	if len(dues) == 0 {
		return nil
	}
	var dropped int
	for _, d := range dues {
		if bad[d.Order] {
			dropped++
		}
	}
	if err := p.opts.Store.DeleteDues(dues); err != nil {
		return fmt.Errorf("process: %w", err)
	}
	p.log.Info("rescoring index of an earlier release deleted: the order records hold the rescoring times", "entries", len(dues))
	if dropped > 0 {
		p.m.timersDropped.Add(float64(dropped))
		p.log.Warn("rescoring timers dropped: their orders could not be rescored", "timers", dropped, "err", "order record does not decode")
	}
	return nil
}

// dropDue makes a dropped rescoring timer durable: the order's record is
// written again without its next due time (when it decodes; one that does not
// has no timer to load). The caller commits b.
func (p *Processor) dropDue(b *store.Batch, order string) error {
	raw, err := b.Order(order)
	if err != nil || raw == nil {
		return err
	}
	var rec orderRecord
	if decodeRecord(raw, &rec) != nil || rec.NextDue.IsZero() {
		return nil
	}
	rec.NextDue = time.Time{}
	v, err := encodeRecord(nil, &rec)
	if err != nil {
		return nil // it fails where its events are applied (poison)
	}
	return b.PutOrder(order, v, p.recordTTL(&rec, rec.State.Open()))
}
