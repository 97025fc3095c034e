package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/process"
)

// StreamMessages reads a message of stream ORDERS by its sequence: the bytes of
// an event an order's timeline references (process.TimelineEntry.Seq).
// jetstream.Stream is one. It must be safe for concurrent use.
type StreamMessages interface {
	GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error)
}

// eventGetTimeout bounds each read of an event from the stream, and
// timelineReadTimeout all the reads of one request: a stream that answers
// slowly costs a page of the timeline at most that long.
const (
	eventGetTimeout     = 2 * time.Second
	timelineReadTimeout = 10 * time.Second
)

// Why an event of a timeline shows in its compact form: the why label of
// orderwatch_api_timeline_compact_events_total.
const (
	compactNotFromStream = "not_from_stream" // applied from a recorded file (replay): sequence 0
	compactNoStream      = "no_stream"       // the API was given no stream (Options.Events)
	compactGone          = "gone"            // the stream no longer has the message
	compactOther         = "other_message"   // another message is at that sequence
	compactFailed        = "failed"          // the stream could not be read
)

// timelineMetrics count the events of timelines shown in their compact form.
type timelineMetrics struct {
	compact *prometheus.CounterVec
}

func newTimelineMetrics(reg prometheus.Registerer) *timelineMetrics {
	m := &timelineMetrics{compact: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderwatch_api_timeline_compact_events_total",
		Help: "Events of orders' timelines GET /api/v1/orders/{id} showed in their compact form (the reference the order keeps), by why their bytes were not read from ORDERS: not_from_stream (applied from a recorded file), no_stream (the API reads no stream), gone (past the stream's max age or limits, or deleted), other_message (another message at that sequence: the stream was recreated), failed (the stream could not be read).",
	}, []string{"why"})}
	for _, w := range []string{compactNotFromStream, compactNoStream, compactGone, compactOther, compactFailed} {
		m.compact.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(m.compact)
	}
	return m
}

// compactEvent is an event of a timeline whose bytes the stream did not give:
// its envelope, from the order's reference to it, and Compact, which says so.
type compactEvent struct {
	ID         string      `json:"id"`
	Type       string      `json:"type"`
	OrderID    string      `json:"order_id"`
	OccurredAt time.Time   `json:"occurred_at"`
	Source     string      `json:"source,omitempty"`
	Actor      string      `json:"actor,omitempty"`
	Compact    compactNote `json:"compact"`
}

// compactNote says why an event shows in its compact form, with what its
// reference keeps of its data.
type compactNote struct {
	Seq  uint64 `json:"seq,omitempty"`  // its sequence in ORDERS; absent when it came from a file
	What string `json:"what,omitempty"` // the first of data.change, reason, warehouse, text, clipped to 120 bytes
	Why  string `json:"why"`
}

// timelineEvent is one event of the answer's timeline, with what orders it.
type timelineEvent struct {
	at  time.Time
	id  string
	raw json.RawMessage
}

// timeline returns an order's events by event time: those earlier releases
// stored whole (old, in key order), and those its record references, read from
// the stream by sequence, each read bounded by eventGetTimeout, all of them by
// timelineReadTimeout and the request's context. An event the stream does not
// give shows in its compact form, which says why; after a read that fails for
// another reason than a missing message, the rest are not tried. The reads are
// at most the record's references (process.MaxTimeline).
func (s *server) timeline(ctx context.Context, order string, old [][]byte, tl process.Timeline) []json.RawMessage {
	evs := make([]timelineEvent, 0, len(old)+len(tl.Entries))
	var at time.Time
	for _, raw := range old {
		var ev struct {
			ID         string    `json:"id"`
			OccurredAt time.Time `json:"occurred_at"`
		}
		if json.Unmarshal(raw, &ev) == nil {
			at = ev.OccurredAt
		} // an unreadable one keeps its place after the one before it (history names it)
		evs = append(evs, timelineEvent{at: at, id: ev.ID, raw: raw})
	}
	ctx, cancel := context.WithTimeout(ctx, timelineReadTimeout)
	defer cancel()
	var failed error
	compact := map[string]int{}
	for i := range tl.Entries {
		e := &tl.Entries[i]
		raw, why, detail := s.streamEvent(ctx, e, failed)
		if why != "" {
			if why == compactFailed && failed == nil {
				failed = errors.New(detail)
			}
			compact[why]++
			raw = compactJSON(order, e, whyText(why, e.Seq, detail))
		}
		evs = append(evs, timelineEvent{at: e.At, id: e.ID, raw: raw})
	}
	for why, n := range compact {
		s.tl.compact.WithLabelValues(why).Add(float64(n))
	}
	if failed != nil {
		// One line per request, not per event.
		s.log.Warn("order timeline shown in compact form: stream ORDERS could not be read", "order", order, "events", compact[compactFailed], "err", failed)
	}
	slices.SortStableFunc(evs, func(a, b timelineEvent) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]json.RawMessage, len(evs))
	for i := range evs {
		out[i] = evs[i].raw
	}
	return out
}

// streamEvent reads the bytes of the event e references from the stream: its
// raw JSON, or why it cannot (a compact… reason) with a detail. failed is the
// error of an earlier read of the same request, after which none is tried.
func (s *server) streamEvent(ctx context.Context, e *process.TimelineEntry, failed error) (json.RawMessage, string, string) {
	switch {
	case e.Seq == 0:
		return nil, compactNotFromStream, ""
	case s.o.Events == nil:
		return nil, compactNoStream, ""
	case failed != nil:
		return nil, compactFailed, "not tried after an earlier read failed: " + failed.Error()
	}
	gctx, cancel := context.WithTimeout(ctx, eventGetTimeout)
	defer cancel()
	m, err := s.o.Events.GetMsg(gctx, e.Seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, compactGone, ""
	case err != nil:
		return nil, compactFailed, err.Error()
	}
	if m.Header.Get(jetstream.MsgIDHeader) != e.ID {
		// Producers set Nats-Msg-Id to the event id; one that did not is
		// recognised by the id in the body.
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Data, &ev) != nil || ev.ID != e.ID {
			return nil, compactOther, ""
		}
	}
	if !json.Valid(m.Data) {
		return nil, compactOther, ""
	}
	return m.Data, "", ""
}

// whyText says in words why an event shows in its compact form.
func whyText(why string, seq uint64, detail string) string {
	switch why {
	case compactNotFromStream:
		return "applied from a recorded file, not from stream ORDERS: only its reference is kept"
	case compactNoStream:
		return "this instance reads no stream ORDERS: only its reference is shown"
	case compactGone:
		return fmt.Sprintf("stream ORDERS no longer has message %d (past its max age or limits, or deleted): only its reference is kept", seq)
	case compactOther:
		return fmt.Sprintf("stream ORDERS holds another message at sequence %d (was the stream recreated?): only its reference is kept", seq)
	}
	return "stream ORDERS could not be read: " + detail
}

// compactJSON is the compact form of the event e references.
func compactJSON(order string, e *process.TimelineEntry, why string) json.RawMessage {
	raw, err := json.Marshal(compactEvent{ID: e.ID, Type: e.Type, OrderID: order, OccurredAt: e.At, Source: e.Source, Actor: e.Actor,
		Compact: compactNote{Seq: e.Seq, What: e.What, Why: why}})
	if err != nil { // cannot happen: strings and a time
		return json.RawMessage(`{"compact":{"why":"unencodable reference"}}`)
	}
	return raw
}
