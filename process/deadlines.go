package process

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// Milestone deadlines (the policy's deadlines:) run on durable timers of their
// own, beside the rescoring timers and independent of the models: a watch per
// order and deadline, carried in the order's record (deadline_section.go) and
// written in the commit of the event that started it. Its timer fires as the
// rescoring timers do (the wall clock live, the event time in replay and while
// catching up on history) but strictly after its due time, so an expected
// event at the due time itself is in time. Firing opens the exception, in the
// commit of the timer, which writes the order's record with the watch; each
// reminder after that is a firing of the same watch, counted in the metric
// and written nowhere: the exception's reminders are derived from when it
// became overdue and its remind_every (Exception.RemindersAt), and the
// watch's next one from that schedule when it loads (resume). The expected event
// deletes the watch and closes the exception in its own commit. A watch does
// not depend on the order being open: a shipped order keeps its deadlines
// until watch_until or cancellation.

// watch is the clock of one deadline on one order. The JSON form is what
// releases before the watches rode in the order record stored under Z/
// (loadLegacyWatches reads it once).
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
	// Milestone is the order's milestone when the clock started, for a
	// deadline that expects the next one (actions.ExpectNextMilestone).
	Milestone string `json:"milestone,omitempty"`
	// Passed: the deadline has passed, its exception is open and overdue.
	Passed bool `json:"passed,omitempty"`
	// RemindAt and EscalateAt are the next reminder and the next escalation
	// of the overdue exception; zero when none comes. Due is the earlier.
	// RemindAt is stored as it was when the watch was last written, not at
	// each reminder: resume recomputes it.
	RemindAt   time.Time `json:"remind_at,omitzero"`
	EscalateAt time.Time `json:"escalate_at,omitzero"`
}

// schedule sets Due to the earlier of the next reminder and escalation.
func (w *watch) schedule() {
	w.Due = w.RemindAt
	if !w.EscalateAt.IsZero() && (w.Due.IsZero() || w.EscalateAt.Before(w.Due)) {
		w.Due = w.EscalateAt
	}
}

type watchKey struct{ order, deadline string }

// watchEntry is a watch's due time in the heap; entries replaced by a later
// schedule stay and are skipped when popped.
type watchEntry struct {
	at  time.Time
	key watchKey
}

// watchHeap is a min-heap of watchEntry by time, then order and deadline.
type watchHeap = minHeap[watchEntry]

func (e watchEntry) before(o watchEntry) bool {
	if c := e.at.Compare(o.at); c != 0 {
		return c < 0
	}
	if e.key.order != o.key.order {
		return e.key.order < o.key.order
	}
	return e.key.deadline < o.key.deadline
}

// watches mirrors the watches the order records carry, in memory.
type watches struct {
	m map[watchKey]*watch
	// of lists the deadlines each order has a watch of, in the order they
	// started: the order's record carries them in that order.
	of map[string][]string
	h  watchHeap
	// dirty are the orders whose watches the batch being staged changed:
	// flushWatches writes their records with the watches as they end up (a
	// clock that starts and stops within a batch is never written).
	dirty map[string]struct{}
	// flushing is flushWatches' list of dirty orders, reused.
	flushing []string
}

func newWatches() *watches {
	return &watches{m: map[watchKey]*watch{}, of: map[string][]string{}, dirty: map[string]struct{}{}}
}

// put keeps w and schedules its due time.
func (ws *watches) put(w *watch) {
	k := watchKey{w.Order, w.Deadline}
	if _, ok := ws.m[k]; !ok {
		ws.of[w.Order] = append(ws.of[w.Order], w.Deadline)
	}
	ws.m[k] = w
	if !w.Due.IsZero() {
		ws.h.push(watchEntry{w.Due, k})
	}
}

// remove forgets the watch of k; its heap entries are skipped when popped.
func (ws *watches) remove(k watchKey) {
	if _, ok := ws.m[k]; !ok {
		return
	}
	delete(ws.m, k)
	ds := ws.of[k.order]
	for i, d := range ds {
		if d == k.deadline {
			ds = append(ds[:i], ds[i+1:]...)
			break
		}
	}
	if len(ds) == 0 {
		delete(ws.of, k.order)
		return
	}
	ws.of[k.order] = ds
}

// touch notes that the batch changes the watches of k's order.
func (ws *watches) touch(k watchKey) { ws.dirty[k.order] = struct{}{} }

// flushWatches puts the watches the batch changed into their orders' records,
// each as it ends up: the records are among the batch's touched ones (an
// order whose watch fired on a timer is read now), written by decide. Call it
// once the batch's events and timers are applied, before it is decided.
func (p *Processor) flushWatches(batch *store.Batch) error {
	ws := p.watches
	if len(ws.dirty) == 0 {
		return nil
	}
	orders := ws.flushing[:0]
	for order := range ws.dirty {
		orders = append(orders, order)
	}
	slices.Sort(orders) // the batch's records in the same order on every run
	clear(ws.dirty)
	ws.flushing = orders
	for _, order := range orders {
		rec, err := p.order(batch, order)
		if err != nil {
			return fmt.Errorf("process: read the record of order %s for its deadline watches: %w", order, err)
		}
		if rec.State.OrderID == "" {
			// No record (a watch outlives its order's only by a damaged
			// store): one with the order's id keeps its watches.
			rec.State.OrderID = order
		}
		rec.watchRaw = appendWatchSection(rec.watchRaw[:0], ws, order)
	}
	return nil
}

// popDue removes and returns the earliest watch due strictly before t.
func (ws *watches) popDue(t time.Time) (*watch, bool) {
	for len(ws.h) > 0 {
		e := ws.h[0]
		if !e.at.Before(t) {
			return nil, false
		}
		ws.h.pop()
		if w, ok := ws.m[e.key]; ok && w.Due.Equal(e.at) {
			return w, true
		}
	}
	return nil, false
}

// due reports whether a watch is due strictly before t.
func (ws *watches) due(t time.Time) bool {
	for len(ws.h) > 0 {
		e := ws.h[0]
		if w, ok := ws.m[e.key]; ok && w.Due.Equal(e.at) {
			return e.at.Before(t)
		}
		ws.h.pop()
	}
	return false
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
	return ok && milestoneRank(s.Milestone) >= milestoneRank(m)
}

func milestoneRank(m string) int { return slices.Index(features.Milestones, m) }

// reachedAny reports whether the order's state shows that one of the
// deadline's expected events has happened.
func reachedAny(s *features.OrderState, d *actions.Deadline) bool {
	for _, t := range d.Expect {
		if reached(s, t) {
			return true
		}
	}
	return false
}

// meets reports whether ev, folded into s, is an event the watch's deadline
// expects.
func meets(d *actions.Deadline, w *watch, ev *features.Event, s *features.OrderState) bool {
	if len(d.Expect) == 1 && d.Expect[0] == actions.ExpectNextMilestone {
		return milestoneRank(s.Milestone) > milestoneRank(w.Milestone)
	}
	return d.Expects(ev.Type)
}

// deadlineEvent applies an order's event to its deadlines: it closes the
// exceptions and stops the clocks that the event satisfies or whose watch it
// ends, and starts the clocks it starts (opening the exception of a deadline
// that opens at its start). rec holds the state with the event.
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
		case w != nil && meets(d, w, ev, &rec.State):
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
		case w != nil || ended != "" || reachedAny(&rec.State, d):
		case d.After == ev.Type:
			if err := p.startWatch(batch, rec, d, ev.OccurredAt, ev); err != nil {
				return err
			}
		case d.After == actions.AfterCutoff && !rec.State.ShipCutoff.IsZero():
			if err := p.startWatch(batch, rec, d, rec.State.ShipCutoff, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// startWatch starts the clock of deadline d on an order at started, by ev
// (nil for the cutoff). A deadline with codes starts only for an event whose
// code is one of them; one that opens at its start opens its exception now.
func (p *Processor) startWatch(batch *store.Batch, rec *orderRecord, d *actions.Deadline, started time.Time, ev *features.Event) error {
	s := &rec.State
	w := &watch{Order: s.OrderID, Deadline: d.ID, Started: started, Due: started.Add(d.Within.D()),
		Warehouse: s.Warehouse, Carrier: s.Carrier, Customer: s.CustomerID, Milestone: s.Milestone}
	if ev == nil {
		return p.putWatch(batch, w)
	}
	w.StartEvent = ev.ID
	if len(d.Codes) == 0 && !d.OpensAtStart() {
		return p.putWatch(batch, w)
	}
	source, code, cause := causeOf(ev, s)
	if len(d.Codes) > 0 && !slices.Contains(d.Codes, code) {
		return nil
	}
	if !d.OpensAtStart() {
		return p.putWatch(batch, w)
	}
	x := p.newException(w, d, w.Due)
	x.Kind, x.OpenedAt, x.OpenEvent, x.Source, x.Code, x.Cause = KindEvent, ev.OccurredAt, ev.ID, source, code, cause
	if x.Cause != "" {
		if err := p.joinIncident(batch, x); err != nil {
			return err
		}
	}
	w.Exception = x
	if err := p.writeException(batch, x, 0); err != nil {
		return err
	}
	p.noteException(x, exOpened)
	return p.putWatch(batch, w)
}

// newException makes the open exception of deadline d on a watch's order,
// due at due, opened then (KindDeadline) unless the caller says otherwise.
func (p *Processor) newException(w *watch, d *actions.Deadline, due time.Time) *Exception {
	owner := p.opts.Policy.Policy().Owner(d.Class)
	x := &Exception{Order: w.Order, Deadline: d.ID, Class: d.Class, Category: d.Category, Owner: owner, FirstOwner: owner,
		StartedAt: w.Started, StartEvent: w.StartEvent, DueAt: due, OpenedAt: due, Open: true, Kind: KindDeadline}
	x.ID = w.Order + "/" + d.ID + "/" + strconv.FormatInt(due.UnixNano(), 10)
	x.Warehouse, x.Carrier, x.Customer = w.Warehouse, w.Carrier, w.Customer
	return x
}

// putWatch keeps a watch in memory and marks it for the batch's commit
// (flushWatches).
func (p *Processor) putWatch(batch *store.Batch, w *watch) error {
	p.watches.touch(watchKey{w.Order, w.Deadline})
	p.watches.put(w)
	return nil
}

// endWatch stops a watch: its exception, when open, closes as how.
func (p *Processor) endWatch(batch *store.Batch, w *watch, how string, ev *features.Event) error {
	k := watchKey{w.Order, w.Deadline}
	p.watches.touch(k)
	p.watches.remove(k)
	x := w.Exception
	if x == nil {
		return nil
	}
	x.Open, x.ClosedAt, x.ClosedBy, x.CloseEvent = false, ev.OccurredAt, how, ev.ID
	x.remindedAt(x.ClosedAt)
	if x.Incident != "" {
		if err := p.leaveIncident(batch, x); err != nil {
			return err
		}
	}
	if err := p.writeException(batch, x, p.opts.Retention); err != nil {
		return err
	}
	p.noteException(x, exClosed)
	return nil
}

// putException writes an exception record and notes the change for the
// exception book: closed, reminded (when it has reminders) or opened. The
// exception's watch refers to it by its key and is written apart (putWatch,
// flushWatches).
func (p *Processor) putException(batch *store.Batch, x *Exception, ttl time.Duration) error {
	if err := p.writeException(batch, x, ttl); err != nil {
		return err
	}
	switch {
	case !x.Open:
		p.noteException(x, exClosed)
	case x.Reminders > 0:
		p.noteException(x, exReminded)
	default:
		p.noteException(x, exOpened)
	}
	return nil
}

// writeException writes an exception record.
func (p *Processor) writeException(batch *store.Batch, x *Exception, ttl time.Duration) error {
	v, err := encodeException(x)
	if err != nil {
		return fmt.Errorf("process: encode exception: %w", err)
	}
	return batch.PutException(x.Order, exceptionKey(x), v, ttl)
}

// noteException notes a change of an exception (exOpened, ...) for the
// exception book, applied after the commit.
func (p *Processor) noteException(x *Exception, event int) {
	p.exChanges = append(p.exChanges, exChange{id: x.ID, owner: x.Owner, class: x.Class, opened: x.OpenedAt, open: x.Open, event: event})
}

// exceptionKey is the part of an exception's key after its order: its
// deadline and the time the deadline passed, so an order's exceptions list by
// deadline, then in time.
func exceptionKey(x *Exception) string {
	if n := len(x.Order); len(x.ID) > n && x.ID[n] == '/' && strings.HasPrefix(x.ID, x.Order) && strings.HasPrefix(x.ID[n+1:], x.Deadline) {
		return x.ID[n+1:] // the ID is "<order>/<key>": no allocation per write
	}
	return x.Deadline + "/" + strconv.FormatInt(x.DueAt.UnixNano(), 10)
}

// fireDeadlines fires up to limit deadline watches (no limit when negative)
// due strictly before t: a passed deadline opens its exception (or makes the
// one open since its start overdue), a due reminder is counted on it, a due
// escalation moves it one tier up its owner's ladder. It returns how many
// fired.
func (p *Processor) fireDeadlines(batch *store.Batch, t time.Time, limit int) (int, error) {
	var skipped []*watch
	defer func() {
		for _, w := range skipped {
			p.watches.put(w)
		}
	}()
	pol := p.opts.Policy.Policy()
	n := 0
	reminded := false
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
			// Its reminders stop too: written as they stand, schedule dropped.
			if x := w.Exception; x != nil && x.Open && x.RemindEvery != 0 {
				x.remindedAt(w.Due)
				x.RemindEvery, w.RemindAt = 0, time.Time{}
				if err := p.writeException(batch, x, 0); err != nil {
					return n, err
				}
			}
			w.Due = time.Time{}
			if err := p.putWatch(batch, w); err != nil {
				return n, err
			}
			continue
		}
		r, err := p.fireWatch(batch, pol, d, w, t)
		if err != nil {
			return n, err
		}
		reminded = reminded || r
	}
	if reminded && !p.opts.EventTime && t.After(p.watermark) {
		// Fired on the wall clock, ahead of the watermark: what a restart
		// resumes the reminders from (remindedUntil).
		b, _ := t.MarshalText()
		if err := batch.PutMeta(metaRemindedUntil, b); err != nil {
			return n, err
		}
	}
	return n, nil
}

// metaRemindedUntil names the store's metadata that holds the time of the
// last firing of reminders on the wall clock: every reminder due before it
// has fired.
const metaRemindedUntil = "reminded_until"

// remindedUntil returns the time the reminders of the loaded watches resume
// from: the later of the watermark and the last firing of reminders on the
// wall clock (metaRemindedUntil).
func (p *Processor) remindedUntil() (time.Time, error) {
	from := p.watermark
	v, err := p.opts.Store.Meta(metaRemindedUntil)
	if err != nil || v == nil {
		return from, err
	}
	var t time.Time
	if err := t.UnmarshalText(v); err != nil {
		return from, fmt.Errorf("process: stored %s %q: %w", metaRemindedUntil, v, err)
	}
	if t.After(from) {
		from = t
	}
	return from, nil
}

// fireWatch fires a watch due at w.Due, strictly before t; it reports whether
// that was a reminder.
func (p *Processor) fireWatch(batch *store.Batch, pol *actions.Policy, d *actions.Deadline, w *watch, t time.Time) (bool, error) {
	at := w.Due
	// next is the first of from, from+every, ... after t: reminders missed
	// while nothing ran (downtime, a gap in a replayed stream, history long
	// past) are one reminder in the metric, not a storm of them.
	next := func(from time.Time, every time.Duration) time.Time {
		if from.Before(t) {
			from = from.Add((t.Sub(from)/every + 1) * every)
		}
		return from
	}
	x := w.Exception
	event := exReminded
	switch {
	case !w.Passed:
		w.Passed = true
		event = exOverdue
		if x == nil {
			x = p.newException(w, d, at)
			w.Exception, event = x, exOpened
		}
		x.Overdue, x.RemindEvery = true, d.RemindEvery
		w.RemindAt, w.EscalateAt = time.Time{}, time.Time{}
		if every := d.RemindEvery.D(); every > 0 {
			w.RemindAt = next(at.Add(every), every)
		}
		if _, sla, ok := pol.Escalates(x.Owner); ok {
			w.EscalateAt = at.Add(sla)
		}
	case !w.RemindAt.IsZero() && !w.RemindAt.After(at):
		// Counted in the metric; the record derives it (RemindersAt), on
		// the schedule fixed when it became overdue.
		if x.RemindEvery == 0 {
			// Overdue under an earlier release, which stored each
			// reminder: from now on, the policy's remind_every.
			x.RemindEvery = d.RemindEvery
		}
		w.RemindAt = time.Time{}
		if every := x.RemindEvery.D(); every > 0 {
			w.RemindAt = next(at.Add(every), every)
		}
	default:
		event = 0
	}
	if event != 0 {
		p.noteException(x, event)
	}
	// Escalations due before t, one tier each SLA, up to the ladder's end
	// (Policy.Escalates never climbs in a circle; maxEscalationSteps bounds a
	// firing all the same).
	var steps int
	for !w.EscalateAt.IsZero() && w.EscalateAt.Before(t) && steps < maxEscalationSteps {
		to, _, ok := pol.Escalates(x.Owner)
		if !ok {
			w.EscalateAt = time.Time{}
			break
		}
		x.Owner, x.Escalations, x.EscalatedAt = to, x.Escalations+1, w.EscalateAt
		steps++
		p.noteException(x, exEscalated)
		w.EscalateAt = time.Time{}
		if _, sla, ok := pol.Escalates(to); ok {
			w.EscalateAt = x.EscalatedAt.Add(sla)
		}
	}
	w.schedule()
	if event == exReminded && steps == 0 {
		// A reminder alone writes nothing: the watch is due again in
		// memory, its record keeps the RemindAt it was written with.
		p.watches.put(w)
		return true, nil
	}
	if event != 0 || steps > 0 {
		x.remindedAt(at)
		if steps > 0 {
			x.remindedAt(x.EscalatedAt)
		}
		if err := p.writeException(batch, x, 0); err != nil {
			return false, err
		}
	}
	return event == exReminded, p.putWatch(batch, w)
}

// resume sets the next reminder of a loaded watch from its exception's
// schedule: the first of DueAt + k·RemindEvery at or after both the RemindAt
// it was stored with and from (remindedUntil: every reminder due before it
// fired before the stop). A reminder that came due while nothing ran is then
// due at once, and counts once in the metric, not once per remind_every
// missed. An exception overdue under an earlier release
// (no RemindEvery stored) takes the remind_every of d, the deadline in the
// policy now (nil: none), and is reported adopted: it is to be written with
// it (adoptSchedules). It returns whether Due changed.
func (w *watch) resume(d *actions.Deadline, from time.Time) (changed, adopted bool) {
	x := w.Exception
	if x == nil || !x.Open || !w.Passed || w.RemindAt.IsZero() {
		return false, false
	}
	if x.RemindEvery == 0 && d != nil && d.RemindEvery > 0 {
		x.RemindEvery, adopted = d.RemindEvery, true
	}
	every := x.RemindEvery.D()
	if every <= 0 {
		return false, adopted
	}
	if w.RemindAt.After(from) {
		from = w.RemindAt
	}
	next := x.DueAt.Add(every)
	if next.Before(from) {
		next = next.Add((from.Sub(next) + every - 1) / every * every)
	}
	if next.Equal(w.RemindAt) {
		return false, adopted
	}
	due := w.Due
	w.RemindAt = next
	w.schedule()
	return !w.Due.Equal(due), adopted
}

// adoptSchedules writes, once at start, the open exceptions an earlier
// release left overdue (it stored each reminder, RemindEvery zero) with the
// remind_every they follow now (resume): from then on they read derived,
// never fewer reminders than they were stored with. Commits of
// legacyMoveBatch records.
func (p *Processor) adoptSchedules(xs []*Exception) error {
	if len(xs) == 0 {
		return nil
	}
	b := p.opts.Store.NewBatch()
	defer func() { b.Discard() }()
	for i, x := range xs {
		v, err := encodeException(x)
		if err != nil {
			return fmt.Errorf("process: write the reminder schedule of an earlier release's exception %s: %w", x.ID, err)
		}
		if err := b.PutException(x.Order, exceptionKey(x), v, 0); err != nil {
			return fmt.Errorf("process: write the reminder schedule of an earlier release's exception %s: %w", x.ID, err)
		}
		if (i+1)%legacyMoveBatch == 0 {
			if err := b.Commit(); err != nil {
				return fmt.Errorf("process: write the reminder schedules of an earlier release's exceptions: %w", err)
			}
			b = p.opts.Store.NewBatch()
		}
	}
	if err := b.Commit(); err != nil {
		return fmt.Errorf("process: write the reminder schedules of an earlier release's exceptions: %w", err)
	}
	p.log.Info("reminder schedules of an earlier release's open exceptions written", "exceptions", len(xs))
	return nil
}

// maxEscalationSteps bounds the escalations of one firing of a watch.
const maxEscalationSteps = 32

func deadlineOf(p *actions.Policy, id string) *actions.Deadline {
	for i := range p.Deadlines {
		if p.Deadlines[i].ID == id {
			return &p.Deadlines[i]
		}
	}
	return nil
}

// dropWatches forgets the watches of orders (a partition another instance
// owns now); their records go with store.DropPartition.
func (p *Processor) dropWatches(orders map[string]bool) {
	var gone []exChange
	for k, w := range p.watches.m {
		if orders[k.order] {
			p.watches.remove(k)
			delete(p.watches.dirty, k.order)
			if x := w.Exception; x != nil {
				gone = append(gone, exChange{id: x.ID, event: exDropped})
			}
		}
	}
	p.book.apply(gone, p.watermark)
}
