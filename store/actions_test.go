package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestActionRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	id := func(at time.Time, n int) string { return fmt.Sprintf("%s-%08x", DecisionIDPrefix(at), n) }
	d1, d2, d3 := id(t0, 1), id(t0.Add(time.Hour), 2), id(t0.Add(2*time.Hour), 3)

	b := s.NewBatch()
	for i, d := range []struct{ id, order string }{{d1, "SO-1"}, {d2, "SO-2"}, {d3, "SO-1"}} {
		if err := b.PutDecision(d.id, d.order, []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Enqueue(d1, []byte("cmd")))
	must(b.Enqueue(d1+"~webhook", []byte("hook")))
	must(b.Enqueue(d3, []byte("cmd3")))
	must(b.PutOpen(d2, []byte(`{"kind":"approval"}`)))
	must(b.PutTimer(t0.Add(3*time.Hour), d2, []byte("approval")))
	must(b.PutTimer(t0.Add(time.Hour), d3, []byte("ack")))
	must(b.AppendTrail(d2, t0.Add(10*time.Minute), "escalated", []byte(`{"kind":"escalated"}`)))
	must(b.AppendTrail(d2, t0.Add(5*time.Minute), "approved", []byte(`{"kind":"approved"}`)))
	must(b.PutRateWindow("flag_finance", "warehouse", "DAL", []int64{1, 2, 3}, time.Hour))
	must(b.PutLastFired("SO-1", "flag_finance", t0, time.Hour))
	must(b.AppendScore("SO-1", t0.Add(time.Minute), []byte("s2"), 0))
	must(b.AppendScore("SO-1", t0, []byte("s1"), 0))
	must(b.PutOrder("SO-1", []byte(`{}`), 0))
	b.Add("suppressed:cooldown", 2)
	b.Add("suppressed:dry_run", 1)
	must(b.Commit())
	must(s.Close())
	s = open(t, dir) // everything is durable
	defer s.Close()

	t.Run("governance state reads back in a batch", func(t *testing.T) {
		b := s.NewBatch()
		defer b.Discard()
		w, err := b.RateWindow("flag_finance", "warehouse", "DAL")
		if err != nil || fmt.Sprint(w) != "[1 2 3]" {
			t.Errorf("rate window = %v, %v", w, err)
		}
		if w, _ := b.RateWindow("flag_finance", "warehouse", "ATL"); w != nil {
			t.Errorf("unknown window = %v, want nil", w)
		}
		if at, err := b.LastFired("SO-1", "flag_finance"); err != nil || !at.Equal(t0) {
			t.Errorf("last fired = %v, %v", at, err)
		}
		if at, _ := b.LastFired("SO-2", "flag_finance"); !at.IsZero() {
			t.Errorf("never fired = %v, want zero", at)
		}
		if _, err := b.Open(d1); !errors.Is(err, ErrNotFound) {
			t.Errorf("open item of d1 = %v, want ErrNotFound", err)
		}
	})
	t.Run("decision view", func(t *testing.T) {
		v, err := s.Decision(d2)
		if err != nil {
			t.Fatal(err)
		}
		if string(v.Record) != `{"n":1}` || string(v.Open) != `{"kind":"approval"}` || len(v.Trail) != 2 || string(v.Trail[0]) != `{"kind":"approved"}` {
			t.Errorf("view of d2 = %+v, want its record, open item and trail by time", v)
		}
		v, _ = s.Decision(d1)
		if strings.Join(v.Queued, ",") != ",~webhook" {
			t.Errorf("queued of d1 = %q, want the command and the webhook", v.Queued)
		}
		if _, err := s.Decision("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown decision = %v", err)
		}
	})
	t.Run("find decisions", func(t *testing.T) {
		cases := []struct {
			q    DecisionsQuery
			want []string
		}{
			{DecisionsQuery{}, []string{d3, d2, d1}},
			{DecisionsQuery{Order: "SO-1"}, []string{d3, d1}},
			{DecisionsQuery{Since: t0.Add(30 * time.Minute)}, []string{d3, d2}},
			{DecisionsQuery{Order: "SO-1", Since: t0.Add(30 * time.Minute)}, []string{d3}},
			{DecisionsQuery{Limit: 1}, []string{d3}},
		}
		for _, c := range cases {
			got, err := s.FindDecisions(c.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, v := range got {
				ids = append(ids, v.ID)
			}
			if strings.Join(ids, " ") != strings.Join(c.want, " ") {
				t.Errorf("FindDecisions(%+v) = %v, want %v", c.q, ids, c.want)
			}
		}
	})
	t.Run("timers due in order", func(t *testing.T) {
		ts, err := s.DueTimers(t0.Add(3*time.Hour), 10)
		if err != nil || len(ts) != 2 || ts[0].Decision != d3 || ts[1].Decision != d2 || !ts[1].Due.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("due timers = %+v, %v", ts, err)
		}
		if ts, _ := s.DueTimers(t0.Add(2*time.Hour), 10); len(ts) != 1 {
			t.Errorf("timers due by t0+2h = %d, want 1", len(ts))
		}
	})
	t.Run("outbox pages, attempts and finishing", func(t *testing.T) {
		p1, _ := s.OutboxPage("", 2)
		p2, _ := s.OutboxPage(p1[len(p1)-1].DecisionID, 2)
		if len(p1) != 2 || len(p2) != 1 || p1[0].DecisionID != d1 || p1[1].DecisionID != d1+"~webhook" || p2[0].DecisionID != d3 {
			t.Fatalf("pages %+v %+v", p1, p2)
		}
		if v, err := s.FirstAttempt(d1 + "~webhook"); err != nil || v != nil {
			t.Errorf("first attempt of an entry never attempted = %q, %v; want nil", v, err)
		}
		must(s.RecordAttempt(d1+"~webhook", 1, []byte("a1")))
		must(s.RecordAttempt(d1+"~webhook", 256, []byte("a256")))
		if v, err := s.FirstAttempt(d1 + "~webhook"); err != nil || string(v) != "a1" {
			t.Errorf("first attempt = %q, %v; want a1", v, err)
		}
		if v, _ := s.FirstAttempt(d1); v != nil {
			t.Errorf("first attempt of %s = %q, want none: its webhook's attempts are not its own", d1, v)
		}
		must(s.FinishOutbox(d1+"~webhook", 2, []byte("a2"), []byte("out"), ""))
		if n, _ := s.Attempts(d1 + "~webhook"); n != 3 {
			t.Errorf("attempts = %d, want 3", n)
		}
		if err := s.FinishOutbox(d1+"~webhook", 3, []byte("a3"), []byte("out"), ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("finishing an entry twice: %v, want ErrNotFound (the executor then stops retrying it)", err)
		}
		must(s.FinishOutbox(d1, 1, []byte("a1"), []byte("published"), CounterActionsPublished))
		v, _ := s.Decision(d1)
		if len(v.Queued) != 0 || string(v.Outcomes[""]) != "published" || string(v.Outcomes["~webhook"]) != "out" || len(v.Attempts) != 4 {
			t.Errorf("d1 after finishing: %+v", v)
		}
		if st, _ := s.Stats(); st.ActionsPublished != 1 {
			t.Errorf("actions published = %d, want 1 (the webhook does not count)", st.ActionsPublished)
		}
	})
	t.Run("counters by prefix and scores", func(t *testing.T) {
		c, err := s.Counters("suppressed:")
		if err != nil || c["cooldown"] != 2 || c["dry_run"] != 1 || len(c) != 2 {
			t.Errorf("counters = %v, %v", c, err)
		}
		sc, _ := s.Scores("SO-1")
		if len(sc) != 2 || string(sc[0]) != "s1" {
			t.Errorf("scores = %q, want by time", sc)
		}
		ov, err := s.Order("SO-1")
		if err != nil || len(ov.Scores) != 2 || len(ov.Details) != 2 {
			t.Errorf("order view: %d scores, %d details, %v", len(ov.Scores), len(ov.Details), err)
		}
	})
	t.Run("settings", func(t *testing.T) {
		if v, err := s.Setting("killswitch"); v != nil || err != nil {
			t.Errorf("unset setting = %q, %v", v, err)
		}
		must(s.PutSetting("killswitch", []byte("on")))
		if v, _ := s.Setting("killswitch"); string(v) != "on" {
			t.Errorf("setting = %q", v)
		}
	})
}

func TestAppendScoreCopiesItsValue(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 11, 22, 14, 0, 0, 0, time.UTC)
	b := s.NewBatch()
	buf := []byte("first")
	if err := b.AppendScore("SO-1", t0, buf, time.Hour); err != nil {
		t.Fatal(err)
	}
	copy(buf, "xxxxx") // the caller reuses its buffer before the commit
	if err := b.AppendScore("SO-1", t0.Add(time.Second), []byte("second"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Discard()
	sc, err := s.Scores("SO-1")
	if err != nil || len(sc) != 2 || string(sc[0]) != "first" || string(sc[1]) != "second" {
		t.Errorf("scores = %q, %v; want first, second", sc, err)
	}
}

func TestDecisionIDPrefixIsHexNanos(t *testing.T) {
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(0, 1), time.Date(2026, 11, 22, 14, 0, 0, 123, time.UTC),
		time.Unix(0, 1<<63-1), time.Unix(0, -1), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)} {
		want := fmt.Sprintf("%016x", at.UnixNano())
		if got := DecisionIDPrefix(at); got != want {
			t.Errorf("DecisionIDPrefix(%v) = %q, want %q", at, got, want)
		}
		if got := string(AppendDecisionIDPrefix([]byte("x"), at)); got != "x"+want {
			t.Errorf("AppendDecisionIDPrefix(x, %v) = %q, want %q", at, got, "x"+want)
		}
	}
}

func TestMalformedGovernanceRecordsAreErrors(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	b := s.NewBatch()
	defer b.Discard()
	if err := b.set(key(pWindow, "flag_finance", "warehouse", "DAL"), []byte("seven b")); err != nil {
		t.Fatal(err)
	}
	if err := b.set(key(pCooldown, "SO-1", "flag_finance"), []byte("short")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RateWindow("flag_finance", "warehouse", "DAL"); err == nil || !strings.Contains(err.Error(), "holds 7 bytes, not a multiple of 8") {
		t.Errorf("malformed rate window: %v", err)
	}
	if _, err := b.LastFired("SO-1", "flag_finance"); err == nil || !strings.Contains(err.Error(), "holds 5 bytes, want 8") {
		t.Errorf("malformed cooldown: %v", err)
	}
}
