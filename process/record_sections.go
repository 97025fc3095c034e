package process

import (
	"bytes"
	"encoding/binary"

	"github.com/orderwatch/orderwatch/internal/binrec"
)

// Sections of an order record (recordV3): parts of an order's durable state
// that ride in its record, written with it, instead of keys of their own, so
// that an applied event costs at most its id marker and its record (issue 20).
// Each section has a tag, fixed forever once released, and is written only
// when it has something to carry, so a record without any keeps the V1 or V2
// form.
const (
	// sectionsEnd ends the sections of a record; no section has it.
	sectionsEnd = 0
	// sectionTimeline is the order's timeline: references to its events
	// (timeline.go).
	sectionTimeline = 1
	// sectionWatches is the order's deadline watches (deadlines.go).
	sectionWatches = 2
	// sectionLastPoint is the order's last written score point
	// (actions.ScoreMark), which says whether the next scoring writes one.
	sectionLastPoint = 3
)

// hasSections reports whether rec has a section to write.
func (rec *orderRecord) hasSections() bool {
	return len(rec.watchRaw) > 0 || rec.Timeline.has() || rec.LastPoint != nil
}

// appendSections appends rec's sections, each a tag and its payload.
func appendSections(b []byte, rec *orderRecord) ([]byte, error) {
	if rec.Timeline.has() {
		b = rec.Timeline.appendSection(b)
	}
	if len(rec.watchRaw) > 0 {
		b = appendSection(b, sectionWatches, rec.watchRaw)
	}
	if rec.LastPoint != nil {
		b = appendLastPoint(b, rec.LastPoint)
	}
	return b, nil
}

// appendSection appends one section: its tag, then payload as a binrec string.
func appendSection(b []byte, tag int, payload []byte) []byte {
	b = binrec.AppendInt(b, tag)
	b = binary.AppendUvarint(b, uint64(len(payload))) // binrec.AppendString, without a string of payload
	return append(b, payload...)
}

// readSection reads one section of a recordV3 into rec; a tag it does not know
// (written by a newer release) is skipped. payload is part of the record
// being read: what rec keeps of it is copied.
func readSection(tag int, payload []byte, rec *orderRecord) error {
	switch tag {
	case sectionWatches:
		// Kept as written: the watches are read from it when they load
		// (deadline_section.go), and it is written again as it is until
		// one of them changes.
		rec.watchRaw = bytes.Clone(payload)
		return nil
	case sectionTimeline:
		return rec.Timeline.read(payload)
	case sectionLastPoint:
		return readLastPoint(payload, rec)
	default:
		return nil
	}
}
