package process

import (
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// catchUpGrace bounds a catch-up (Options.CatchUpBefore) that no event at or
// after its cut ends: once the wall clock is this far past the cut, the timers
// follow the clock again.
const catchUpGrace = 10 * time.Minute

// catchUp is where a Processor is in the history it catches up on
// (Options.CatchUpBefore).
type catchUp struct {
	at   time.Time // the greatest event time of that history applied since New
	done bool      // an event at or after the cut was applied, or the grace passed
}

// catchingUp reports whether the events before Options.CatchUpBefore are still
// scored on their own time.
func (p *Processor) catchingUp() bool {
	return !p.opts.CatchUpBefore.IsZero() && !p.caught.done
}

// history applies an event's time to the catch-up and reports whether the event
// is history scored on its time (at p.caught.at): while catching up, an event
// before the cut moves the catch-up's watermark, and the rescoring timers due
// before it fire first, on the state before it, as in event-time mode; the first
// event at or after the cut ends the catch-up.
func (p *Processor) history(batch *store.Batch, at time.Time) (bool, error) {
	if !p.catchingUp() {
		return false, nil
	}
	if !at.Before(p.opts.CatchUpBefore) {
		p.caught.done = true
		p.log.Info("caught up: scoring on the wall clock", "history_until", p.caught.at)
		return false, nil
	}
	if at.After(p.caught.at) {
		if err := p.fireDue(batch, at); err != nil {
			return false, err
		}
		p.caught.at = at
	}
	return true, nil
}

// clockTimers reports whether the rescoring timers fire by the wall clock now:
// live, unless catching up on history (there they fire as its event time passes
// them; see history). A catch-up that no event ended is over catchUpGrace after
// its cut.
func (p *Processor) clockTimers() bool {
	if p.opts.EventTime {
		return false
	}
	if p.catchingUp() && p.opts.Clock().Before(p.opts.CatchUpBefore.Add(catchUpGrace)) {
		return false
	}
	if p.catchingUp() {
		p.caught.done = true
		p.log.Info("catch-up ended by the clock: scoring on the wall clock", "history_until", p.caught.at)
	}
	return true
}
