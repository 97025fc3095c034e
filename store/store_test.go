package store

import (
	"errors"
	"fmt"
	"strings"
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
	if err := b.MarkSeq(0, 7); err != nil {
		t.Fatal(err)
	}
	if err := b.MarkEvent(0, "e-1", 7); err != nil {
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
	if done, _ := r.SeqCommitted(0, 7); !done {
		t.Error("stream sequence 7 not remembered")
	}
	if done, _ := r.SeqCommitted(0, 8); done {
		t.Error("stream sequence 8 remembered but never marked")
	}
	if seq, seen, _ := r.EventSeq(0, "e-1"); !seen || seq != 7 {
		t.Errorf("event e-1: seq %d, seen %v; want seq 7 remembered", seq, seen)
	}
	if _, seen, _ := r.EventSeq(0, "e-2"); seen {
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
	if err := s.FinishOutbox("0001-a", 1, []byte(`{"attempt":1}`), []byte(`{"status":"published"}`), CounterActionsPublished); err != nil {
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

// TestNoWritesWithoutSpace: while CheckSpace fails every kind of write (batch
// commit, outbox attempt and outcome, setting) refuses with ErrNoSpace and
// writes nothing. CheckSpace is asked at each write: the first write after the
// disk filled is refused however soon it follows the last one taken, and the
// first after space returned is taken.
func TestNoWritesWithoutSpace(t *testing.T) {
	full := errors.New("disk full: 12 MiB free")
	var refuse error
	checks := 0
	s, err := Open(Options{Dir: t.TempDir(), CheckSpace: func() error { checks++; return refuse }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	if err := b.Enqueue("d-1", []byte("cmd")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}

	refuse = full
	b = s.NewBatch()
	defer b.Discard()
	if err := b.PutOrder("SO-1", []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	b.Add(CounterEventsApplied, 1)
	for what, err := range map[string]error{
		"batch commit":  b.Commit(),
		"attempt":       s.RecordAttempt("d-1", 1, []byte(`{"n":1}`)),
		"outbox finish": s.FinishOutbox("d-1", 1, []byte(`{"n":1}`), []byte(`{"status":"published"}`), CounterActionsPublished),
		"setting":       s.PutSetting("kill_switch", []byte(`{"on":true}`)),
	} {
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(fmt.Sprint(err), "12 MiB free") {
			t.Errorf("%s while the disk is full: %v, want ErrNoSpace with the reason", what, err)
		}
	}
	if _, err := s.Order("SO-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("order SO-1 after a refused commit: %v, want not found", err)
	}
	if n, err := s.Attempts("d-1"); err != nil || n != 0 {
		t.Errorf("attempts of d-1: %d, %v; want none", n, err)
	}
	if v, err := s.Setting("kill_switch"); err != nil || v != nil {
		t.Errorf("setting after a refused write: %q, %v; want none", v, err)
	}
	if c, err := s.Counters(""); err != nil || c[CounterEventsApplied] != 0 {
		t.Errorf("counters %v, %v after a refused commit", c, err)
	}
	if checks < 5 {
		t.Errorf("CheckSpace asked %d times, want once for each of the 5 writes", checks)
	}

	refuse = nil
	if err := s.RecordAttempt("d-1", 1, []byte(`{"n":1}`)); err != nil {
		t.Errorf("attempt once space returned: %v", err)
	}
}
