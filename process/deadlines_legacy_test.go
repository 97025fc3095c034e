package process

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/orderwatch/orderwatch/store"
)

// toEarlierRelease rewrites the run's store as the release before the
// watches and rescoring times rode in the order record left it: records
// without sections (recordV1, or V2 with shadows), each watch under Z/ as
// JSON with its exception embedded, each open order's next due time under
// u/.
func (r *deadlineRun) toEarlierRelease() {
	r.t.Helper()
	type stored struct {
		id  string
		raw []byte
	}
	var recs []stored
	err := r.st.Orders(func(id string, raw []byte) error {
		recs = append(recs, stored{id, append([]byte(nil), raw...)})
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	b := r.st.NewBatch()
	defer b.Discard()
	ws := r.p.watches
	for _, s := range recs {
		var rec orderRecord
		if err := decodeRecord(s.raw, &rec); err != nil {
			r.t.Fatal(err)
		}
		for _, d := range ws.of[s.id] {
			v, err := json.Marshal(ws.m[watchKey{s.id, d}])
			if err != nil {
				r.t.Fatal(err)
			}
			if err := b.PutWatch(s.id, d, v); err != nil {
				r.t.Fatal(err)
			}
		}
		rec.watchRaw = nil
		rec.Timeline = Timeline{} // an earlier release kept the timeline under t/
		rec.LastPoint = nil       // and wrote a score point for every scoring
		v, err := encodeRecord(nil, &rec)
		if err != nil {
			r.t.Fatal(err)
		}
		if v[0] != recordV1 && v[0] != recordV2 {
			r.t.Fatalf("order %s written as form %d, want an earlier one", s.id, v[0])
		}
		if err := b.PutOrder(s.id, v, 0); err != nil {
			r.t.Fatal(err)
		}
		if rec.State.Open() && !rec.NextDue.IsZero() {
			if err := b.PutDue(rec.NextDue, s.id); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	if err := b.Commit(); err != nil {
		r.t.Fatal(err)
	}
}

// legacyKeys counts the Z/ and u/ keys of the run's store.
func (r *deadlineRun) legacyKeys() (watches, dues int) {
	r.t.Helper()
	if err := r.st.Watches(func([]byte) error { watches++; return nil }); err != nil {
		r.t.Fatal(err)
	}
	ds, err := r.st.Dues()
	if err != nil {
		r.t.Fatal(err)
	}
	return watches, len(ds)
}

// TestEarlierReleaseStoreLoadsAndFires: a store as the release before left
// it (records V1/V2 without sections, the watches under Z/, the rescoring
// index under u/) loads: at start the watches move into their records and
// the Z/ and u/ keys are deleted, and from then on (a second restart reads
// the records alone) the deadlines, reminders, escalations and rescorings
// come at the moments of a run that never changed release. A watch whose
// order has no record is left out, counted, and its key left in place.
func TestEarlierReleaseStoreLoadsAndFires(t *testing.T) {
	for _, c := range restartCases {
		for _, eventTime := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/event_time=%v", c.name, eventTime), func(t *testing.T) {
				half := len(c.steps) / 2
				straight := newDeadlineRunWith(t, eventTime, store.Options{}, c.policy)
				straight.run(c.steps...)
				r := newDeadlineRunWith(t, eventTime, store.Options{}, c.policy)
				r.run(c.steps[:half]...)
				if len(r.p.watches.m) == 0 {
					t.Fatal("no watch at the upgrade: the case tests nothing")
				}
				r.toEarlierRelease()
				b := r.st.NewBatch()
				if err := b.PutWatch("SO-GONE", "released-not-picked", []byte(`{"order":"SO-GONE","deadline":"released-not-picked","started_at":"2026-06-01T08:00:00Z","due":"2026-06-01T09:00:00Z"}`)); err != nil {
					t.Fatal(err)
				}
				if err := b.Commit(); err != nil {
					t.Fatal(err)
				}
				if w, d := r.legacyKeys(); w == 0 || d == 0 {
					t.Fatalf("the earlier release's store has %d watches, %d due entries: want some", w, d)
				}
				r.p = r.processor(r.p.opts.Policy) // the upgrade
				if w, d := r.legacyKeys(); w != 1 || d != 0 {
					t.Errorf("after the upgrade's start: %d Z/ keys, %d u/ keys; want the orphan watch's alone, no due entry", w, d)
				}
				if n := counterValue(t, r.reg, "orderwatch_stored_records_unreadable_total", "kind", kindWatch); n != 1 {
					t.Errorf("unreadable deadline watches counted %v, want 1 (the orphan)", n)
				}
				r.p = r.processor(r.p.opts.Policy) // from the records alone
				r.run(c.steps[half:]...)
				if got, want := r.outcome(c.orders), straight.outcome(c.orders); got != want {
					t.Errorf("upgraded halfway:\n%s\nwithout an upgrade:\n%s", got, want)
				}
			})
		}
	}
}
