package process

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/store"
)

// sourceMsg is message seq of ORDERS: an event of type typ of order from
// source (none when empty), at when, with data.
func sourceMsg(seq int, typ, order, source string, when time.Time, data string) *Message {
	src := ""
	if source != "" {
		src = fmt.Sprintf(`"source":%q,`, source)
	}
	return &Message{Seq: uint64(seq), Subject: storedSubject(typ, order), Data: fmt.Appendf(nil,
		`{"id":"e-%d","type":%q,"schema":1,"occurred_at":%q,%s"order_id":%q,"data":%s}`,
		seq, typ, when.Format(time.RFC3339), src, order, data)}
}

// bySource gathers the metric name from reg by its source label.
func bySource(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if g := m.GetGauge(); g != nil {
				v = g.GetValue()
			}
			out[m.GetLabel()[0].GetValue()] = v
		}
	}
	return out
}

// TestSourceHealthMetrics: the events a batch applies are counted by the
// source of their envelope, integration.error events also as integration
// errors, and each source's last event is stamped with the wall clock of
// the batch; duplicates and dead letters are not applied events. An event
// without a source counts as unknown, a source with odd characters under its
// sanitized form.
func TestSourceHealthMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 5, 18, 10, 30, 0, 0, time.UTC)
	p, _, _ := newTestProcessor(t, store.Options{}, Options{Registerer: reg, Clock: func() time.Time { return now }})
	at := now.Add(-time.Hour)

	before := bySource(t, reg, "orderwatch_source_events_total")
	if len(before) != 2 || before[labelOther] != 0 || before[labelUnknown] != 0 {
		t.Errorf("before any event: %v, want other and unknown at 0", before)
	}
	if last := bySource(t, reg, "orderwatch_source_last_event_timestamp_seconds"); len(last) != 0 {
		t.Errorf("last event timestamps before any event: %v, want none", last)
	}

	created := createdMsg(1, "SO-1", at) // source erp
	msgs := []*Message{
		created,
		createdMsg(2, "SO-2", at),
		sourceMsg(3, "pick.released", "SO-1", "wms", at, `{}`),
		sourceMsg(4, "integration.error", "SO-2", "edi", at, `{"system":"edi","code":"UOM","text":"unit CS unknown"}`),
		sourceMsg(5, "note.added", "SO-1", "", at, `{"text":"called the customer"}`),
		sourceMsg(6, "note.added", "SO-2", "SAP ERP/é", at, `{"text":"x"}`),
		{Seq: 7, Subject: created.Subject, Data: created.Data},               // a duplicate
		{Seq: 8, Subject: "orders.order.created", Data: []byte("{not json")}, // a dead letter
	}
	res, err := p.Process(context.Background(), msgs)
	if err != nil || res.Applied != 6 || res.Duplicates != 1 || res.DeadLettered != 1 {
		t.Fatalf("%+v, %v", res, err)
	}

	sanitized := "SAP_ERP___" // the space, the slash and both bytes of é
	wantEvents := map[string]float64{"erp": 2, "wms": 1, "edi": 1, labelUnknown: 1, sanitized: 1, labelOther: 0}
	if got := bySource(t, reg, "orderwatch_source_events_total"); fmt.Sprint(got) != fmt.Sprint(wantEvents) {
		t.Errorf("orderwatch_source_events_total = %v, want %v", got, wantEvents)
	}
	wantErrors := map[string]float64{"erp": 0, "wms": 0, "edi": 1, labelUnknown: 0, sanitized: 0, labelOther: 0}
	if got := bySource(t, reg, "orderwatch_source_integration_errors_total"); fmt.Sprint(got) != fmt.Sprint(wantErrors) {
		t.Errorf("orderwatch_source_integration_errors_total = %v, want %v", got, wantErrors)
	}
	stamp := float64(now.Unix())
	wantLast := map[string]float64{"erp": stamp, "wms": stamp, "edi": stamp, labelUnknown: stamp, sanitized: stamp}
	if got := bySource(t, reg, "orderwatch_source_last_event_timestamp_seconds"); fmt.Sprint(got) != fmt.Sprint(wantLast) {
		t.Errorf("orderwatch_source_last_event_timestamp_seconds = %v, want %v", got, wantLast)
	}

	// Later, only wms speaks: its timestamp moves, erp's stays.
	now = now.Add(10 * time.Minute)
	if res, err := p.Process(context.Background(), []*Message{sourceMsg(9, "pick.confirmed", "SO-1", "wms", at, `{}`)}); err != nil || res.Applied != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	last := bySource(t, reg, "orderwatch_source_last_event_timestamp_seconds")
	if last["wms"] != float64(now.Unix()) || last["erp"] != stamp {
		t.Errorf("after wms alone spoke 10 minutes later: %v", last)
	}
}

// TestSourceLabelsAreBounded: a hostile producer sends 10,000 distinct
// sources, some long, some not ASCII, some named like the reserved labels.
// The source metrics keep at most 32 labels besides other and unknown, each
// of at most 32 bytes of a safe charset, and still count every event.
func TestSourceLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := newTestProcessor(t, store.Options{}, Options{Registerer: reg})
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	const sources = 10000
	if res, err := p.Process(context.Background(), []*Message{createdMsg(1, "SO-1", at)}); err != nil || res.Applied != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	for start := 0; start < sources; start += 1000 {
		var msgs []*Message
		for i := start; i < start+1000; i++ {
			src := fmt.Sprintf("src-%d", i)
			switch i % 4 {
			case 1:
				src = strings.Repeat("x", 40) + src // cut to 32 bytes (the decoder refuses over 64)
			case 2:
				src = "système " + src // not ASCII, a space
			case 3:
				src = []string{labelOther, labelUnknown, "other!"}[i%3]
			}
			msgs = append(msgs, sourceMsg(i+2, "note.added", "SO-1", src, at, `{"text":"n"}`))
		}
		if res, err := p.Process(context.Background(), msgs); err != nil || res.Applied != len(msgs) {
			t.Fatalf("%+v, %v", res, err)
		}
	}
	safe := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
	for _, name := range []string{"orderwatch_source_events_total", "orderwatch_source_integration_errors_total", "orderwatch_source_last_event_timestamp_seconds"} {
		got := bySource(t, reg, name)
		if len(got) > maxSourceLabels+2 {
			t.Errorf("%s has %d series, want at most %d and other, unknown", name, len(got), maxSourceLabels)
		}
		for l := range got {
			if !safe.MatchString(l) {
				t.Errorf("%s has the source label %q", name, l)
			}
		}
	}
	events := bySource(t, reg, "orderwatch_source_events_total")
	var sum float64
	for _, v := range events {
		sum += v
	}
	if sum != sources+1 || events[labelOther] < sources/2 {
		t.Errorf("source events sum to %v (other %v), want %d with most under other", sum, events[labelOther], sources+1)
	}
	// Sources cut to the same 32 bytes share a label.
	if cut := events[strings.Repeat("x", maxSourceLabelBytes)]; cut != sources/4 {
		t.Errorf("the sources cut to 32 x count %v events, want %d", cut, sources/4)
	}
	if events[labelUnknown] != 0 {
		t.Errorf("a source named unknown counted as an event without a source: %v", events[labelUnknown])
	}
}

// TestSourceLookupDoesNotAllocate: the per-event lookup of a source's series
// allocates nothing, for a kept source, one kept under its sanitized form,
// and one past the cap.
func TestSourceLookupDoesNotAllocate(t *testing.T) {
	s := newSourceMetrics()
	s.series("erp")
	s.series("SAP ERP")
	for i := range maxSourceLabels {
		s.series(fmt.Sprint("fill-", i))
	}
	hostile := make([]string, 100)
	for i := range hostile {
		hostile[i] = fmt.Sprintf("hostile é %d", i)
	}
	for _, tc := range []struct {
		name, source, want string
	}{
		{"kept", "erp", "erp"},
		{"sanitized", "SAP ERP", "SAP_ERP"},
		{"past the cap", hostile[0], labelOther},
		{"none", "", labelUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.series(tc.source).label; got != tc.want {
				t.Fatalf("series(%q) is %q, want %q", tc.source, got, tc.want)
			}
			i := 0
			if n := testing.AllocsPerRun(100, func() {
				src := tc.source
				if tc.want == labelOther {
					src = hostile[i%len(hostile)]
					i++
				}
				s.series(src).events.Inc()
			}); n != 0 {
				t.Errorf("%v allocations per lookup, want 0", n)
			}
		})
	}
}

// BenchmarkSourceObserve: the source metrics of a batch of 100 applied
// events from 5 sources, one of them not ASCII; run with -benchmem.
func BenchmarkSourceObserve(b *testing.B) {
	s := newSourceMetrics()
	items := make([]item, 100)
	srcs := []string{"erp", "wms", "tms", "edi", "Lager Süd"}
	for i := range items {
		items[i].result = resultApplied
		items[i].msg = &Message{}
		items[i].ev.Source = srcs[i%len(srcs)]
		items[i].ev.Type = "pick.confirmed"
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.observe(items, now)
	}
}
