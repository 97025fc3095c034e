package process

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

// timelineMsg is message seq of ORDERS: an event of order at when, with data.
func timelineMsg(seq int, typ, order string, when time.Time, data string) *Message {
	return &Message{Seq: uint64(seq), Subject: storedSubject(typ, order), Data: fmt.Appendf(nil,
		`{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,"source":"wms","actor":"scanner-7","order_id":%q,"data":%s}`,
		seq, typ, when.Format(time.RFC3339Nano), order, data)}
}

// storedTimeline reads an order's record and returns its timeline and the
// events stored whole under t/ keys.
func storedTimeline(t *testing.T, st *store.Store, order string) (Timeline, [][]byte) {
	t.Helper()
	v, err := st.Order(order)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := RecordTimeline(v.Record)
	if err != nil {
		t.Fatal(err)
	}
	return tl, v.Timeline
}

// TestTimelineKeepsReferencesNotCopies: an applied event costs its id marker
// and its order record, no t/ copy of its bytes (issue 20); the record's
// timeline references each applied event once (a duplicate is not one), by its
// stream sequence, with its envelope and the history's short what, clipped at
// a rune boundary.
func TestTimelineKeepsReferencesNotCopies(t *testing.T) {
	p, st, _ := newTestProcessor(t, store.Options{}, Options{})
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", 100) // 200 bytes
	created := createdMsg(41, "SO-1", t0)
	msgs := []*Message{
		created,
		timelineMsg(42, features.TypeOrderChanged, "SO-1", t0.Add(time.Minute), `{"change":"address","reason":"customer"}`),
		timelineMsg(43, features.TypeNoteAdded, "SO-1", t0.Add(2*time.Minute), fmt.Sprintf(`{"text":%q}`, long)),
		{Seq: 44, Subject: created.Subject, Data: created.Data}, // a duplicate of 41
		timelineMsg(45, features.TypePickReleased, "SO-1", t0.Add(3*time.Minute), `{}`),
	}
	res, err := p.Process(context.Background(), msgs[:2])
	if err != nil {
		t.Fatal(err)
	}
	res2, err := p.Process(context.Background(), msgs[2:])
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied+res2.Applied != 4 || res2.Duplicates != 1 {
		t.Fatalf("results %+v, %+v; want 4 applied and 1 duplicate", res, res2)
	}
	w := st.Writes()
	if w["t/"] != 0 || w["e/"] != 4 || w["o/"] != 2 {
		t.Errorf("writes by kind %v: want no t/, 4 e/ (one per applied event), 2 o/ (one per batch of the order)", w)
	}
	tl, old := storedTimeline(t, st, "SO-1")
	if len(old) != 0 {
		t.Errorf("%d events stored whole under t/, want none", len(old))
	}
	clipped := strings.Repeat("é", 60) + "…"
	want := []TimelineEntry{
		{Seq: 41, At: t0, ID: "e-41", Type: features.TypeOrderCreated, Source: "erp", What: "DAL", WhatFrom: WhatWarehouse},
		{Seq: 42, At: t0.Add(time.Minute), ID: "e-42", Type: features.TypeOrderChanged, Source: "wms", Actor: "scanner-7", What: "address", WhatFrom: WhatChange},
		{Seq: 43, At: t0.Add(2 * time.Minute), ID: "e-43", Type: features.TypeNoteAdded, Source: "wms", Actor: "scanner-7", What: clipped, WhatFrom: WhatText},
		{Seq: 45, At: t0.Add(3 * time.Minute), ID: "e-45", Type: features.TypePickReleased, Source: "wms", Actor: "scanner-7"},
	}
	if tl.Dropped != 0 || len(tl.Entries) != len(want) {
		t.Fatalf("timeline %+v, want %d entries and none dropped", tl, len(want))
	}
	for i := range want {
		if tl.Entries[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, tl.Entries[i], want[i])
		}
	}
	if what := tl.Entries[2].What; !utf8.ValidString(what) || len(what) > maxWhatBytes+len("…") {
		t.Errorf("clipped what %q (%d bytes): want valid UTF-8 of at most %d bytes", what, len(what), maxWhatBytes+len("…"))
	}
}

// TestTimelineOfAReplayHasNoSequences: the lines of a recorded file did not
// come from ORDERS, so their references hold sequence 0 (not the line
// number); a scratch store that skips timelines keeps none in its records.
func TestTimelineOfAReplayHasNoSequences(t *testing.T) {
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	lines := bytes.Join([][]byte{
		createdMsg(1, "SO-1", t0).Data,
		timelineMsg(2, features.TypePickReleased, "SO-1", t0.Add(time.Minute), `{}`).Data,
	}, []byte("\n"))
	policy, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true, Scratch: skip, SkipTimelines: skip})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := Replay(context.Background(), bytes.NewReader(lines), ReplayOptions{Store: st, Policy: actions.NewLive(policy)}); err != nil {
			t.Fatal(err)
		}
		tl, old := storedTimeline(t, st, "SO-1")
		switch {
		case len(old) != 0:
			t.Errorf("skip %v: %d events stored whole, want none", skip, len(old))
		case skip && (len(tl.Entries) != 0 || tl.Dropped != 0):
			t.Errorf("skip timelines: the record keeps a timeline %+v", tl)
		case !skip && (len(tl.Entries) != 2 || tl.Entries[0].Seq != 0 || tl.Entries[1].Seq != 0 || tl.Entries[1].ID != "e-2"):
			t.Errorf("replay's timeline %+v, want e-1 and e-2, both of sequence 0", tl.Entries)
		}
	}
}

// TestTimelineIsBounded: an order that gets more than MaxTimeline events keeps
// its first TimelineHead references and the latest, at most MaxTimeline, and
// counts the ones it dropped, so a producer cannot grow one record without
// limit.
func TestTimelineIsBounded(t *testing.T) {
	p, st, _ := newTestProcessor(t, store.Options{NoSync: true}, Options{})
	t0 := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	const n = MaxTimeline + 3*timelineDrop + 5
	var size []int
	for batch := 0; batch*50 < n; batch++ {
		var msgs []*Message
		for seq := batch*50 + 1; seq <= min(n, batch*50+50); seq++ {
			m := timelineMsg(seq, features.TypeNoteAdded, "SO-1", t0.Add(time.Duration(seq)*time.Second), `{"text":"called the customer"}`)
			if seq == 1 {
				m = createdMsg(1, "SO-1", t0)
			}
			msgs = append(msgs, m)
		}
		if _, err := p.Process(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		v, err := st.Order("SO-1")
		if err != nil {
			t.Fatal(err)
		}
		size = append(size, len(v.Record))
	}
	tl, _ := storedTimeline(t, st, "SO-1")
	if len(tl.Entries) > MaxTimeline || len(tl.Entries)+tl.Dropped != n || tl.Dropped == 0 {
		t.Fatalf("%d references and %d dropped of %d events: want at most %d, and the dropped counted", len(tl.Entries), tl.Dropped, n, MaxTimeline)
	}
	for i := range TimelineHead {
		if id := fmt.Sprintf("e-%d", i+1); tl.Entries[i].ID != id {
			t.Errorf("reference %d is %s, want %s (the first ones are kept)", i, tl.Entries[i].ID, id)
		}
	}
	for i, e := range tl.Entries[TimelineHead:] {
		if id := fmt.Sprintf("e-%d", n-len(tl.Entries)+TimelineHead+i+1); e.ID != id {
			t.Fatalf("reference %d is %s, want %s (then the latest, in order)", TimelineHead+i, e.ID, id)
		}
	}
	// Once full, the record stops growing.
	if last, full := size[len(size)-1], size[len(size)-2]; last > full+64 {
		t.Errorf("record sizes by batch %v: it grew from %d to %d bytes after the timeline was full", size, full, last)
	}
}
