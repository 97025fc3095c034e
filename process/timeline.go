package process

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/binrec"
	"github.com/orderwatch/orderwatch/store"
)

// An order's timeline rides in its record (sectionTimeline): one reference per
// applied event, its ORDERS stream sequence with what the API's history says of
// it, instead of a second copy of the event's bytes under a key of its own
// (issue 20: at most the id marker and the order record per applied event). The
// API reads the event's bytes back from the stream by sequence and shows the
// reference (its compact form) when the stream no longer has them.
//
// A timeline holds at most MaxTimeline references: the first TimelineHead and
// the latest. When it is full, the oldest timelineDrop references after the
// head go at once (so a hostile producer's stream of events costs one move per
// timelineDrop events, not per event) and Dropped counts them.
const (
	// MaxTimeline bounds the references an order's timeline keeps.
	MaxTimeline = 256
	// TimelineHead is how many of an order's first references are always kept.
	TimelineHead = 16
	// timelineDrop is how many references go when the timeline is full.
	timelineDrop = 16
	// timelineRoom is the room for references a new timeline, or one read
	// from a record, has before it grows.
	timelineRoom = 4
	// maxWhatBytes bounds TimelineEntry.What, as the history clips it.
	maxWhatBytes = 120
)

// WhatField says which field of an event's data TimelineEntry.What holds.
type WhatField uint8

// The fields What may hold: the first of data.change, reason, warehouse, text
// that the event has.
const (
	WhatNone WhatField = iota
	WhatChange
	WhatReason
	WhatWarehouse
	WhatText
)

// TimelineEntry references one applied event of an order.
type TimelineEntry struct {
	// Seq is the event's sequence in stream ORDERS; 0 when it did not come
	// from the stream (a replay of a recorded file).
	Seq    uint64
	At     time.Time // occurred_at
	ID     string
	Type   string
	Source string
	Actor  string
	// What is the first of the event's data.change, reason, warehouse and text,
	// clipped to 120 bytes (with "…" when clipped); WhatFrom says which.
	What     string
	WhatFrom WhatField
}

// Timeline is the references of an order's applied events, in the order they
// were applied, and how many were dropped to keep it within MaxTimeline.
type Timeline struct {
	Entries []TimelineEntry
	Dropped int
}

// has reports whether the timeline has anything to write.
func (tl *Timeline) has() bool { return len(tl.Entries) > 0 || tl.Dropped > 0 }

// add appends the reference of an applied event, dropping the oldest after
// the head when the timeline is full.
func (tl *Timeline) add(seq uint64, ev *features.Event) {
	if len(tl.Entries) >= MaxTimeline {
		n := copy(tl.Entries[TimelineHead:], tl.Entries[TimelineHead+timelineDrop:])
		clear(tl.Entries[TimelineHead+n:])
		tl.Entries = tl.Entries[:TimelineHead+n]
		tl.Dropped += timelineDrop
	}
	if tl.Entries == nil {
		tl.Entries = make([]TimelineEntry, 0, timelineRoom) // not 1, 2, then 4
	}
	what, from := whatOf(&ev.Data)
	tl.Entries = append(tl.Entries, TimelineEntry{Seq: seq, At: ev.OccurredAt, ID: ev.ID, Type: ev.Type,
		Source: ev.Source, Actor: ev.Actor, What: what, WhatFrom: from})
}

// whatOf returns the first of d's change, reason, warehouse and text, clipped,
// and which it is.
func whatOf(d *features.EventData) (string, WhatField) {
	for _, f := range [...]struct {
		s    string
		from WhatField
	}{{d.Change, WhatChange}, {d.Reason, WhatReason}, {d.Warehouse, WhatWarehouse}, {d.Text, WhatText}} {
		if f.s != "" {
			return clipWhat(f.s), f.from
		}
	}
	return "", WhatNone
}

// clipWhat clips s to maxWhatBytes at a rune boundary, with "…" when clipped;
// a clipped text is copied so the record does not hold the whole text.
func clipWhat(s string) string {
	if len(s) <= maxWhatBytes {
		return s
	}
	n := maxWhatBytes
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return strings.Clone(s[:n]) + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// appendSection appends the timeline as sectionTimeline: its tag, the length
// of its payload, then the payload (Dropped, the count, each entry), written in
// place.
func (tl *Timeline) appendSection(b []byte) []byte {
	b = binrec.AppendInt(b, sectionTimeline)
	b = binary.AppendUvarint(b, uint64(tl.payloadSize()))
	b = binrec.AppendInt(b, tl.Dropped)
	b = binrec.AppendInt(b, len(tl.Entries))
	for i := range tl.Entries {
		e := &tl.Entries[i]
		b = binrec.AppendInt(b, int(e.Seq))
		b = binrec.AppendTime(b, e.At)
		b = binrec.AppendString(b, e.ID)
		b = binrec.AppendString(b, e.Type)
		b = binrec.AppendString(b, e.Source)
		b = binrec.AppendString(b, e.Actor)
		b = binrec.AppendString(b, e.What)
		b = binrec.AppendInt(b, int(e.WhatFrom))
	}
	return b
}

// payloadSize is the length of the payload appendSection writes.
func (tl *Timeline) payloadSize() int {
	n := varintLen(int64(tl.Dropped)) + varintLen(int64(len(tl.Entries)))
	for i := range tl.Entries {
		e := &tl.Entries[i]
		n += varintLen(int64(e.Seq)) + timeLen(e.At) + strLen(e.ID) + strLen(e.Type) +
			strLen(e.Source) + strLen(e.Actor) + strLen(e.What) + varintLen(int64(e.WhatFrom))
	}
	return n
}

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

func strLen(s string) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], uint64(len(s))) + len(s)
}

func timeLen(t time.Time) int {
	if t.IsZero() {
		return varintLen(0)
	}
	return varintLen(t.UnixNano())
}

// read reads the payload of a sectionTimeline into tl. The entries' strings
// are parts of one copy of the payload: one allocation per timeline read, not
// five per entry.
func (tl *Timeline) read(payload []byte) error {
	*tl = Timeline{}
	d := binrec.NewDecoder(payload)
	tl.Dropped = d.Int()
	n := d.Count()
	if tl.Dropped < 0 || n > MaxTimeline {
		return fmt.Errorf("timeline of %d entries (%d dropped), want at most %d and none below 0", n, tl.Dropped, MaxTimeline)
	}
	if n == 0 {
		return d.End()
	}
	// Room for the next few references: an order read from the store is
	// read for an event of it, whose reference is added next.
	tl.Entries = make([]TimelineEntry, n, min(n+timelineRoom, MaxTimeline))
	whole := string(payload)
	str := func() string { // d.Str, as a part of whole
		s := strPart(&d)
		end := len(payload) - len(d.Rest())
		if d.Err() != nil || end < len(s) {
			return ""
		}
		return whole[end-len(s) : end]
	}
	for i := range tl.Entries {
		e := &tl.Entries[i]
		e.Seq = uint64(d.Int())
		e.At = d.Time()
		e.ID, e.Type, e.Source, e.Actor, e.What = str(), str(), str(), str(), str()
		if from := d.Int(); from >= int(WhatNone) && from <= int(WhatText) {
			e.WhatFrom = WhatField(from)
		} else {
			d.Fail(fmt.Errorf("timeline entry %d: what field %d is not known", i, from))
		}
	}
	return d.End()
}

// event returns the event e references as far as e tells it: the envelope
// and the data field What came from (whole when it was not clipped); an
// order.created gets cutoff as its ship_cutoff, which the fold requires.
func (e *TimelineEntry) event(order string, cutoff *time.Time) features.Event {
	ev := features.Event{ID: e.ID, Type: e.Type, OrderID: order, OccurredAt: e.At, Source: e.Source, Actor: e.Actor, Schema: features.SchemaVersion}
	switch e.WhatFrom {
	case WhatChange:
		ev.Data.Change = e.What
	case WhatReason:
		ev.Data.Reason = e.What
	case WhatWarehouse:
		ev.Data.Warehouse = e.What
	case WhatText:
		ev.Data.Text = e.What
	}
	if e.Type == features.TypeOrderCreated {
		ev.Data.ShipCutoff = cutoff
	}
	return ev
}

// RecordTimeline returns the timeline of a stored order record: empty for a
// record written before timelines rode in records (its events are under keys
// of their own, store.OrderView.Timeline).
func RecordTimeline(raw []byte) (Timeline, error) {
	var rec orderRecord
	if err := decodeRecord(raw, &rec); err != nil {
		return Timeline{}, fmt.Errorf("process: decode order record: %w", err)
	}
	return rec.Timeline, nil
}

// addTimeline adds an applied event of an order to its timeline, unless the
// store keeps no timelines (a scratch store, store.Options.SkipTimelines). A
// message of the stream has its subject; a line of a recorded file (Replay)
// has none, and no sequence in ORDERS.
func (p *Processor) addTimeline(batch *store.Batch, rec *orderRecord, it *item) {
	if !batch.KeepsTimelines() {
		return
	}
	var seq uint64
	if it.msg.Subject != "" {
		seq = it.msg.Seq
	}
	rec.Timeline.add(seq, &it.ev)
}
