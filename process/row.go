package process

import (
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// Row is one scoring moment of one order: what replay exports and the live
// pipeline scores.
type Row struct {
	OrderID string
	Moment  time.Time
	Trigger string // "event" or "timer"
	EventID string // the event that caused it; empty for a timer
	Vector  features.Vector
	Texts   []string // the order's texts at the moment, oldest first
	Risk    float32
}

// Row triggers.
const (
	TriggerEvent = "event"
	TriggerTimer = "timer"
)

// moment is the scoring time of an event row: the watermark in event-time mode,
// the wall clock live.
func (p *Processor) moment() time.Time {
	if p.opts.EventTime {
		return p.watermark
	}
	return p.opts.Clock().UTC()
}

// addRow builds the order's vector at moment and queues it for scoring; it also
// schedules the order's next rescoring.
func (p *Processor) addRow(rec *orderRecord, moment time.Time, trigger, eventID string) {
	p.rows = append(p.rows, Row{OrderID: rec.State.OrderID, Moment: moment, Trigger: trigger, EventID: eventID,
		Texts: rec.State.TextValues(nil)})
	p.rowRecs = append(p.rowRecs, rec)
	rec.State.Build(moment, p.ctx, &p.rows[len(p.rows)-1].Vector)
	if next, ok := NextCheckpoint(rec.State.OrderID, rec.State.ShipCutoff, moment); ok {
		rec.NextDue = next
		p.dues.set(rec.State.OrderID, next)
	} else {
		rec.NextDue = time.Time{}
		p.dues.remove(rec.State.OrderID)
	}
}
