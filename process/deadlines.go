package process

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Milestone deadlines (the policy's deadlines:) run on durable timers of their
// own, beside the rescoring timers and independent of the models: a watch per
// order and deadline, written in the commit of the event that started it.
// Its timer fires as the rescoring timers do (the wall clock live, the event
// time in replay and while catching up on history) but strictly after its due
// time, so an expected event at the due time itself is in time. Firing opens
// the exception, in the commit of the timer; each reminder after that is a
// firing of the same watch. The expected event deletes the watch and closes
// the exception in its own commit. A watch does not depend on the order being
// open: a shipped order keeps its deadlines until watch_until or cancellation.

// watch is the clock of one deadline on one order, as stored (store.PutWatch).
type watch struct {
	Order      string    `json:"order"`
	Deadline   string    `json:"deadline"`
	Started    time.Time `json:"started_at"`
	StartEvent string    `json:"start_event,omitempty"`
	// Due is when it fires next: the deadline, then each reminder; zero when
	// its exception is open with no reminders.
	Due time.Time `json:"due,omitzero"`
	// Exception is the open exception, nil while the clock runs.
	Exception *Exception `json:"exception,omitempty"`
	// The order's warehouse, carrier and customer when the clock started.
	Warehouse string `json:"warehouse,omitempty"`
	Carrier   string `json:"carrier,omitempty"`
	Customer  string `json:"customer_id,omitempty"`
}

type watchKey struct{ order, deadline string }

// watchEntry is a watch's due time in the heap; entries replaced by a later
// schedule stay and are skipped when popped.
type watchEntry struct {
	at  time.Time
	key watchKey
}

type watchHeap []watchEntry

func (h watchHeap) Len() int { return len(h) }
func (h watchHeap) Less(i, j int) bool {
	if c := h[i].at.Compare(h[j].at); c != 0 {
		return c < 0
	}
	if h[i].key.order != h[j].key.order {
		return h[i].key.order < h[j].key.order
	}
	return h[i].key.deadline < h[j].key.deadline
}
func (h watchHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *watchHeap) Push(x any)   { *h = append(*h, x.(watchEntry)) }
func (h *watchHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// watches mirrors the stored watches in memory.
type watches struct {
	m map[watchKey]*watch
	h watchHeap
}

func newWatches() *watches { return &watches{m: map[watchKey]*watch{}} }

// put keeps w and schedules its due time.
func (ws *watches) put(w *watch) {
	k := watchKey{w.Order, w.Deadline}
	ws.m[k] = w
	if !w.Due.IsZero() {
		heap.Push(&ws.h, watchEntry{w.Due, k})
	}
}

// popDue removes and returns the earliest watch due strictly before t.
func (ws *watches) popDue(t time.Time) (*watch, bool) {
	for ws.h.Len() > 0 {
		e := ws.h[0]
		if !e.at.Before(t) {
			return nil, false
		}
		heap.Pop(&ws.h)
		if w, ok := ws.m[e.key]; ok && w.Due.Equal(e.at) {
			return w, true
		}
	}
	return nil, false
}

// due reports whether a watch is due strictly before t.
func (ws *watches) due(t time.Time) bool {
	for ws.h.Len() > 0 {
		e := ws.h[0]
		if w, ok := ws.m[e.key]; ok && w.Due.Equal(e.at) {
			return e.at.Before(t)
		}
		heap.Pop(&ws.h)
	}
	return false
}

// loadWatches reads the stored watches; one that does not decode is left out,
// counted and logged.
func (p *Processor) loadWatches() error {
	ws := newWatches()
	var unreadable int
	var firstErr error
	err := p.opts.Store.Watches(func(v []byte) error {
		w := &watch{}
		if err := json.Unmarshal(v, w); err != nil {
			if unreadable++; firstErr == nil {
				firstErr = err
			}
			return nil
		}
		ws.put(w)
		return nil
	})
	if err != nil {
		return fmt.Errorf("process: load deadline watches: %w", err)
	}
	if unreadable > 0 {
		p.m.unreadable.WithLabelValues(kindWatch).Add(float64(unreadable))
		p.log.Warn("stored deadline watches that do not decode, left out", "records", unreadable, "err", firstErr)
	}
	p.watches = ws
	return nil
}

// openExceptions lists the open exceptions of the loaded watches, for the
// exception book at start.
func (ws *watches) openExceptions() []exChange {
	var out []exChange
	for _, w := range ws.m {
		if x := w.Exception; x != nil {
			out = append(out, exChange{id: x.ID, owner: x.Owner, class: x.Class, opened: x.OpenedAt, open: true})
		}
	}
	return out
}

// kindWatch is the kind label of orderwatch_stored_records_unreadable_total
// for a deadline watch.
const kindWatch = "deadline_watch"

// milestoneOf maps the event types that advance an order's milestone to it.
var milestoneOf = map[string]string{
	features.TypeInventoryAllocated: features.MilestoneAllocated,
	features.TypePickReleased:       features.MilestoneReleased,
	features.TypePickConfirmed:      features.MilestonePicked,
	features.TypePackConfirmed:      features.MilestonePacked,
	features.TypeShipmentConfirmed:  features.MilestoneShipped,
	features.TypeInvoiceCreated:     features.MilestoneInvoiced,
}

// reached reports whether the order's state shows that events of type t have
// happened, as far as its milestone tells.
func reached(s *features.OrderState, t string) bool {
	m, ok := milestoneOf[t]
	return ok && slices.Index(features.Milestones, s.Milestone) >= slices.Index(features.Milestones, m)
}

// deadlineEvent applies an order's event to its deadlines: it closes the
// exceptions and stops the clocks that the event satisfies or whose watch it
// ends, and starts the clocks it starts. rec holds the state with the event.
func (p *Processor) deadlineEvent(batch *store.Batch, rec *orderRecord, ev *features.Event) error {
	pol := &p.opts.Policy.Policy().ExceptionPolicy
	if len(pol.Deadlines) == 0 {
		return nil
	}
	ended := ""
	switch {
	case ev.Type == features.TypeOrderCancelled || rec.State.Cancelled:
		ended = ClosedCancelled
	case ev.Type == pol.WatchUntil || reached(&rec.State, pol.WatchUntil):
		ended = ClosedWatchEnded
	}
	for i := range pol.Deadlines {
		d := &pol.Deadlines[i]
		w := p.watches.m[watchKey{ev.OrderID, d.ID}]
		switch {
		case w != nil && ev.Type == d.Expect:
			if err := p.endWatch(batch, w, ClosedExpected, ev); err != nil {
				return err
			}
		case w != nil && ended != "":
			if err := p.endWatch(batch, w, ended, ev); err != nil {
				return err
			}
		case w != nil && d.After == actions.AfterCutoff && w.Exception == nil && !rec.State.ShipCutoff.IsZero() && !w.Started.Equal(rec.State.ShipCutoff):
			// The cutoff moved: the clock follows it.
			w.Started, w.Due = rec.State.ShipCutoff, rec.State.ShipCutoff.Add(d.Within.D())
			if err := p.putWatch(batch, w); err != nil {
				return err
			}
		case w != nil || ended != "" || reached(&rec.State, d.Expect):
		case d.After == ev.Type:
			if err := p.startWatch(batch, rec, d, ev.OccurredAt, ev.ID); err != nil {
				return err
			}
		case d.After == actions.AfterCutoff && !rec.State.ShipCutoff.IsZero():
			if err := p.startWatch(batch, rec, d, rec.State.ShipCutoff, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// startWatch starts the clock of deadline d on an order at started.
func (p *Processor) startWatch(batch *store.Batch, rec *orderRecord, d *actions.Deadline, started time.Time, event string) error {
	s := &rec.State
	return p.putWatch(batch, &watch{Order: s.OrderID, Deadline: d.ID, Started: started, StartEvent: event,
		Due: started.Add(d.Within.D()), Warehouse: s.Warehouse, Carrier: s.Carrier, Customer: s.CustomerID})
}

// putWatch writes a watch and keeps it in memory.
func (p *Processor) putWatch(batch *store.Batch, w *watch) error {
	v, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("process: encode deadline watch: %w", err)
	}
	if err := batch.PutWatch(w.Order, w.Deadline, v); err != nil {
		return err
	}
	p.watches.put(w)
	return nil
}

// endWatch stops a watch: its exception, when open, closes as how.
func (p *Processor) endWatch(batch *store.Batch, w *watch, how string, ev *features.Event) error {
	if err := batch.DeleteWatch(w.Order, w.Deadline); err != nil {
		return err
	}
	delete(p.watches.m, watchKey{w.Order, w.Deadline})
	x := w.Exception
	if x == nil {
		return nil
	}
	x.Open, x.ClosedAt, x.ClosedBy, x.CloseEvent = false, ev.OccurredAt, how, ev.ID
	return p.putException(batch, x, p.opts.Retention)
}

// putException writes an exception record and notes the change for the
// exception book.
func (p *Processor) putException(batch *store.Batch, x *Exception, ttl time.Duration) error {
	v, err := json.Marshal(x)
	if err != nil {
		return fmt.Errorf("process: encode exception: %w", err)
	}
	if err := batch.PutException(x.Order, exceptionKey(x), v, ttl); err != nil {
		return err
	}
	c := exChange{id: x.ID, owner: x.Owner, class: x.Class, opened: x.OpenedAt, open: x.Open}
	switch {
	case !x.Open:
		c.event = exClosed
	case x.Reminders > 0:
		c.event = exReminded
	default:
		c.event = exOpened
	}
	p.exChanges = append(p.exChanges, c)
	return nil
}

// exceptionKey is the part of an exception's key after its order: its
// deadline and the time the deadline passed, so an order's exceptions list by
// deadline, then in time.
func exceptionKey(x *Exception) string {
	return x.Deadline + "/" + strconv.FormatInt(x.DueAt.UnixNano(), 10)
}

// fireDeadlines fires up to limit deadline watches (no limit when negative)
// due strictly before t: a passed deadline opens its exception, a due reminder
// is counted on it. It returns how many fired.
func (p *Processor) fireDeadlines(batch *store.Batch, t time.Time, limit int) (int, error) {
	var skipped []*watch
	defer func() {
		for _, w := range skipped {
			p.watches.put(w)
		}
	}()
	pol := p.opts.Policy.Policy()
	n := 0
	for ; limit < 0 || n < limit; n++ {
		w, ok := p.watches.popDue(t)
		if !ok {
			break
		}
		if !p.opts.Owns(p.opts.PartitionOf(w.Order)) {
			skipped = append(skipped, w)
			n--
			continue
		}
		d := deadlineOf(pol, w.Deadline)
		if d == nil {
			// The deadline left the policy: its clock stops, an open
			// exception stays open until its expected event or the watch's end.
			w.Due = time.Time{}
			if err := p.putWatch(batch, w); err != nil {
				return n, err
			}
			continue
		}
		at := w.Due
		if x := w.Exception; x == nil {
			x = &Exception{Order: w.Order, Deadline: d.ID, Class: d.Class, Category: d.Category,
				Owner: pol.Owner(d.Class), StartedAt: w.Started, StartEvent: w.StartEvent, DueAt: at, OpenedAt: at, Open: true}
			x.ID = w.Order + "/" + exceptionKey(x)
			x.Warehouse, x.Carrier, x.Customer = w.Warehouse, w.Carrier, w.Customer
			w.Exception = x
		} else {
			x.Reminders++
			x.RemindedAt = at
		}
		w.Due = time.Time{}
		if every := d.RemindEvery.D(); every > 0 {
			// The next reminder is the first after t: reminders missed while
			// nothing ran (downtime, a gap in a replayed stream, history long
			// past) are one reminder, not a storm of them.
			next := at.Add(every)
			if next.Before(t) {
				next = next.Add((t.Sub(next)/every + 1) * every)
			}
			w.Due = next
		}
		if err := p.putException(batch, w.Exception, 0); err != nil {
			return n, err
		}
		if err := p.putWatch(batch, w); err != nil {
			return n, err
		}
	}
	return n, nil
}

func deadlineOf(p *actions.Policy, id string) *actions.Deadline {
	for i := range p.Deadlines {
		if p.Deadlines[i].ID == id {
			return &p.Deadlines[i]
		}
	}
	return nil
}

// dropWatches forgets the watches of orders (a partition another instance
// owns now); their stored keys go with store.DropPartition.
func (p *Processor) dropWatches(orders map[string]bool) {
	var gone []exChange
	for k, w := range p.watches.m {
		if orders[k.order] {
			delete(p.watches.m, k)
			if x := w.Exception; x != nil {
				gone = append(gone, exChange{id: x.ID, event: exDropped})
			}
		}
	}
	p.book.apply(gone, p.watermark)
}
