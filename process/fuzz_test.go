package process

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/store"
)

// fuzzScorer is a model gone wrong in the ways the fuzz input says: scores
// that are NaN, infinite or out of range, rows it marks degraded, failures.
type fuzzScorer struct{ mode byte }

func (s *fuzzScorer) Score(_ []float32, _ [][]string, risk, classes []float32) (Scored, error) {
	sc := Scored{Risk: actions.ModelRef{Name: "cutoff_risk", Version: "1.0.0"}, Threshold: 0.5}
	if s.mode%7 == 6 {
		return sc, errors.New("fuzz: model failed")
	}
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1.5, -0.5, 0.9, 0.1}
	for i := range risk {
		risk[i] = 0.5
		if s.mode&1 != 0 && i%3 == 0 {
			risk[i] = bad[(int(s.mode)+i)%len(bad)]
		}
	}
	if s.mode&2 != 0 {
		sc.RowDegraded = make([]bool, len(risk))
		for i := range risk {
			sc.RowDegraded[i] = i%4 == 1
		}
	}
	if s.mode&4 != 0 {
		for k, v := range []string{"2.0.0", "1.9.0"} {
			sh := ShadowScores{Ref: actions.ModelRef{Name: "cutoff_risk", Version: v}, Threshold: 0.5, Risk: make([]float32, len(risk))}
			for i := range risk {
				sh.Risk[i] = bad[(i+k)%len(bad)]
			}
			sc.Shadows = append(sc.Shadows, sh)
		}
	}
	return sc, nil
}

// fuzzInput reads the fuzz bytes; 0 once they run out.
type fuzzInput struct{ b []byte }

func (in *fuzzInput) next() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) done() bool { return len(in.b) == 0 }

// fuzzEvent builds one message body of kind k for order n at at.
func fuzzEvent(k, n byte, seq int, at time.Time, in *fuzzInput) []byte {
	order := fmt.Sprintf("SO-%d", n%8)
	ts := at.Format(time.RFC3339Nano)
	cut := at.Add(time.Duration(n%12) * time.Hour).Format(time.RFC3339)
	env := func(typ, order, data string) []byte {
		return fmt.Appendf(nil, `{"id":"f-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"fuzz","schema":1,"data":%s}`, seq, typ, order, ts, data)
	}
	switch k % 20 {
	case 0, 1, 2:
		return env("order.created", order, fmt.Sprintf(`{"warehouse":"WH-%d","ship_cutoff":%q,"lines":3,"units":7,"value":120.5,"carrier":"UPS"}`, n%3, cut))
	case 3:
		return env("pick.confirmed", order, `{}`)
	case 4:
		return env("note.added", order, fmt.Sprintf(`{"text":"pallet %d damaged"}`, n))
	case 5:
		return env("shipment.confirmed", order, `{}`)
	case 6:
		return env("order.created", order, fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q,"lines":1e18,"units":-5,"value":1e308}`, cut))
	case 7:
		return env("order.created", order, `{"warehouse":"DAL","ship_cutoff":"9999-12-31T23:59:59Z","value":-1e308}`)
	case 8:
		return env("order.changed", order, `{"ship_cutoff":"9999-12-31T23:59:59Z","value":1e308,"lines":0,"units":0}`)
	case 9:
		return env("carrier.performance", "", `{"carrier":"UPS","on_time_share":1e308,"delay_minutes":1e308}`)
	case 10:
		return env("warehouse.load", "", `{"warehouse":"WH-1","queue":9223372036854775807,"capacity":0,"outage":true}`)
	case 11:
		return env("warehouse.load", "", `{"warehouse":"WH-2","queue":-1,"capacity":-9223372036854775808}`)
	case 12:
		return env("order.created", order, fmt.Sprintf(`{"warehouse":%q,"ship_cutoff":%q,"customer_id":%q}`,
			strings.Repeat("W", 40000), cut, strings.Repeat("C", 9000)))
	case 13:
		return env("carrier.status", order, fmt.Sprintf(`{"text":%q}`, strings.Repeat("late ", 12000)))
	case 14:
		return env("order.created", order, fmt.Sprintf(`{"warehouse":"WH-0","ship_cutoff":%q,"lines":0,"units":0,"value":0,"promised_at":"0001-01-01T00:00:00Z"}`, cut))
	case 15:
		// The order whose stored record does not decode: poison.
		return env("note.added", fmt.Sprintf("SO-BAD%d", n%2), `{"text":"hi"}`)
	case 16:
		return []byte(`{"id":"x","type":"order.created",`) // bad JSON
	case 17:
		return env("carrier.performance", "", `{"carrier":"DHL","on_time_share":-1e308}`)
	case 18:
		return env("credit.hold", order, `{}`)
	default:
		// Raw fuzz bytes: whatever they are.
		var b []byte
		for range int(n % 64) {
			b = append(b, in.next())
		}
		return b
	}
}

// FuzzProcessBatches runs whole batches built from the fuzz input (valid
// events, duplicates, redeliveries, bad JSON, extreme values, events of an
// order whose stored record is poison, a model that returns NaN) through a
// Processor on Badger, in live or event-time mode, with rescoring ticks in
// between. Processing never fails, and every message of the stream is counted
// exactly once: events_applied + duplicates + dead_lettered = messages.
func FuzzProcessBatches(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 0, 1, 0, 3, 1, 4, 2, 5, 3},
		{1, 0, 1, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 255},
		{2, 3, 0, 1, 15, 0, 0, 2, 15, 1, 255, 2, 4},
		{5, 0, 0, 2, 16, 2, 12, 3, 13, 4, 14, 250, 0, 17, 1},
		{6, 1, 0, 1, 0, 1, 0, 1, 251, 3, 252, 1, 253, 5},
		{7, 2, 7, 2, 8, 2, 9, 254, 8, 0, 3, 15, 1, 255, 30},
		{3, 6, 19, 40, '{', '"', 'i', 'd', '"', ':', 1, 2},
		{4, 1, 9, 0, 9, 1, 17, 2, 10, 3, 11, 4, 0, 5, 254, 200},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		mode := in.next()
		st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		base := time.Date(2026, 5, 18, 8, 0, 0, 0, time.UTC)
		damage(t, st, "SO-BAD0", base.Add(30*time.Minute))
		damage(t, st, "SO-BAD1", time.Time{})
		policy, err := actions.LoadPolicy("")
		if err != nil {
			t.Fatal(err)
		}
		now := base
		// A dead letter may be published again when its batch did not commit
		// (the DLQ dedupes it by its Nats-Msg-Id, from the sequence): count
		// sequences.
		dead := map[uint64]bool{}
		opts := Options{Store: st, Policy: actions.NewLive(policy), EventTime: mode&8 != 0,
			Clock:      func() time.Time { return now },
			DeadLetter: func(_ context.Context, m *Message, _, _ string) error { dead[m.Seq] = true; return nil }}
		if mode&16 == 0 {
			opts.Scorer = &fuzzScorer{mode: in.next()}
		}
		p, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var stream []*Message // every message of ORDERS, by sequence
		var batch []*Message
		flush := func() {
			if len(batch) == 0 {
				return
			}
			if _, err := p.Process(ctx, batch); err != nil {
				t.Fatalf("batch of %d messages: %v", len(batch), err)
			}
			batch = batch[:0]
		}
		at := base
		for n := 0; !in.done() && n < 64; n++ {
			switch op := in.next(); {
			case op == 255: // end of batch
				flush()
			case op == 254: // the clock moves on; rescoring timers fire
				flush()
				now = now.Add(time.Duration(in.next()) * 5 * time.Minute)
				if _, err := p.Tick(); err != nil {
					t.Fatalf("tick: %v", err)
				}
			case op >= 250 && len(stream) > 0: // a duplicate (a new message) or a redelivery
				prev := stream[int(in.next())%len(stream)]
				if op&1 == 0 {
					batch = append(batch, prev)
					continue
				}
				m := &Message{Seq: uint64(len(stream) + 1), Subject: prev.Subject, Data: prev.Data}
				stream = append(stream, m)
				batch = append(batch, m)
			default:
				at = at.Add(time.Duration(in.next()) * time.Minute)
				data := fuzzEvent(op, in.next(), len(stream)+1, at, in)
				m := &Message{Seq: uint64(len(stream) + 1), Subject: subjectOf(data), Data: data}
				stream = append(stream, m)
				batch = append(batch, m)
			}
			if len(batch) >= 16 {
				flush()
			}
		}
		flush()
		now = now.Add(24 * time.Hour)
		if _, err := p.Tick(); err != nil {
			t.Fatalf("final tick: %v", err)
		}
		s, err := st.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.EventsApplied + s.Duplicates + s.DeadLettered; got != int64(len(stream)) {
			t.Fatalf("applied %d + duplicates %d + dead-lettered %d = %d, want the %d messages", s.EventsApplied, s.Duplicates, s.DeadLettered, got, len(stream))
		}
		if int64(len(dead)) != s.DeadLettered {
			t.Fatalf("%d messages dead-lettered, %d counted", len(dead), s.DeadLettered)
		}
	})
}
