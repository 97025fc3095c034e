package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBatchCommitIsDurableAndAtomic(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	b := s.NewBatch()
	if err := b.MarkSeq(7); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkEvent("e-1", 7); err != nil {
		t.Fatal(err)
	}
	if err := b.PutOrder("SO-1", []byte(`{"v":1}`), 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 21, 8, 0, 0, 0, time.UTC)
	// Timeline entries sort by event time, not by arrival.
	for i, at := range []time.Time{t0.Add(time.Hour), t0, t0.Add(time.Minute)} {
		if err := b.AppendTimeline("SO-1", at, fmt.Sprintf("e-%d", i), []byte(at.Format(time.RFC3339)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"0002-b", "0001-a"} {
		if err := b.PutDecision(id, "SO-1", []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Enqueue("0001-a", []byte(`cmd`)); err != nil {
		t.Fatal(err)
	}
	b.Add(CounterEventsApplied, 3)
	b.Add(CounterOpenOrders, 1)
	// A discarded batch leaves nothing behind.
	d := s.NewBatch()
	if err := d.PutOrder("SO-2", []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	d.Add(CounterEventsApplied, 100)
	d.Discard()
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.EventsApplied != 3 || st.OpenOrders != 1 {
		t.Errorf("stats after reopen = %+v", st)
	}
	v, err := s.Order("SO-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%s", v.Timeline); got != "[2026-05-21T08:00:00Z 2026-05-21T08:01:00Z 2026-05-21T09:00:00Z]" {
		t.Errorf("timeline = %s, want event-time order", got)
	}
	if len(v.Decisions) != 2 || string(v.Decisions[0]) != `{"id":"0001-a"}` {
		t.Errorf("decisions = %s", v.Decisions)
	}
	if _, err := s.Order("SO-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("discarded order: err = %v, want ErrNotFound", err)
	}
	r := s.NewBatch()
	defer r.Discard()
	if done, _ := r.SeqCommitted(7); !done {
		t.Error("stream sequence 7 not remembered")
	}
	if done, _ := r.SeqCommitted(8); done {
		t.Error("stream sequence 8 remembered but never marked")
	}
	if seq, seen, _ := r.EventSeq("e-1"); !seen || seq != 7 {
		t.Errorf("event e-1: seq %d, seen %v; want seq 7 remembered", seq, seen)
	}
	if _, seen, _ := r.EventSeq("e-2"); seen {
		t.Error("event e-2 remembered but never marked")
	}

	ds, err := s.FindDecisions(DecisionsQuery{Limit: 1})
	if err != nil || len(ds) != 1 || string(ds[0].Record) != `{"id":"0002-b"}` {
		t.Errorf("newest decision = %+v, %v", ds, err)
	}
	ob, err := s.OutboxPage("", 10)
	if err != nil || len(ob) != 1 || ob[0].DecisionID != "0001-a" {
		t.Fatalf("outbox = %+v, %v", ob, err)
	}
	if err := s.FinishOutbox("0001-a", 1, []byte(`{"attempt":1}`), []byte(`{"status":"published"}`), true); err != nil {
		t.Fatal(err)
	}
	if ob, _ := s.OutboxPage("", 10); len(ob) != 0 {
		t.Errorf("outbox after completion = %+v", ob)
	}
	v, _ = s.Order("SO-1")
	if string(v.Outcomes[0]) != `{"status":"published"}` || v.Outcomes[1] != nil {
		t.Errorf("outcomes = %q", v.Outcomes)
	}
	if st, _ := s.Stats(); st.ActionsPublished != 1 {
		t.Errorf("actions_published = %d, want 1", st.ActionsPublished)
	}
}

func TestOpenNeedsDir(t *testing.T) {
	if _, err := Open(Options{}); err == nil {
		t.Error("Open without a dir succeeded")
	}
}
