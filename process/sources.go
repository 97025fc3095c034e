package process

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/features"
)

const (
	// maxSourceLabels caps the distinct source label values besides
	// labelOther and labelUnknown.
	maxSourceLabels = 32
	// maxSourceLabelBytes is the longest source label; a longer source is cut.
	maxSourceLabelBytes = 32
	// labelUnknown is the source label of events without a source.
	labelUnknown = "unknown"
)

// sourceSeries is the series of one source label, looked up once when the
// label is first given.
type sourceSeries struct {
	label  string
	events prometheus.Counter
	errors prometheus.Counter
	last   prometheus.Gauge // nil until the first event of the source
}

// sourceMetrics counts applied events by the envelope's source: the health of
// each source system (orderwatch_source_*). The source comes from producers,
// so its label values are bounded: a source is sanitized (bytes other than
// A-Z a-z 0-9 _ . - become _, cut to maxSourceLabelBytes) and the first
// maxSourceLabels distinct sanitized values get a label of their own; any
// other, and one that sanitizes to labelOther or labelUnknown, counts under
// labelOther; an event without a source counts under labelUnknown. Looking up
// a source does not allocate, whatever a producer sends. Not safe for
// concurrent use.
type sourceMetrics struct {
	events *prometheus.CounterVec
	errors *prometheus.CounterVec
	last   *prometheus.GaugeVec

	kept           map[string]*sourceSeries // by sanitized label
	other, unknown *sourceSeries
}

func newSourceMetrics() *sourceMetrics {
	s := &sourceMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_source_events_total",
			Help: "Events applied by the source system of their envelope (the first 32 sources seen have a label of their own, the rest count as other, events without a source as unknown).",
		}, []string{"source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_source_integration_errors_total",
			Help: "integration.error events applied, by the source system of their envelope.",
		}, []string{"source"}),
		last: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_source_last_event_timestamp_seconds",
			Help: "Wall-clock time (Unix seconds) at which the last event of the source was applied; absent until its first event since the start.",
		}, []string{"source"}),
		kept: make(map[string]*sourceSeries, maxSourceLabels),
	}
	// The labels known at start: counters at zero, so rate() sees the first
	// event; the timestamp only once there is one.
	s.other = s.newSeries(labelOther)
	s.unknown = s.newSeries(labelUnknown)
	return s
}

func (s *sourceMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.events, s.errors, s.last} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *sourceMetrics) newSeries(label string) *sourceSeries {
	return &sourceSeries{
		label:  label,
		events: s.events.WithLabelValues(label),
		errors: s.errors.WithLabelValues(label),
	}
}

// series returns the series the events of source count in.
func (s *sourceMetrics) series(source string) *sourceSeries {
	if source == "" {
		return s.unknown
	}
	// A kept label is its own sanitized form: most sources are found here.
	if ser, ok := s.kept[source]; ok {
		return ser
	}
	var buf [maxSourceLabelBytes]byte
	label := sanitizeSource(&buf, source)
	if ser, ok := s.kept[string(label)]; ok {
		return ser
	}
	if len(s.kept) >= maxSourceLabels || string(label) == labelOther || string(label) == labelUnknown {
		return s.other
	}
	name := string(label)
	ser := s.newSeries(name)
	s.kept[name] = ser
	return ser
}

// sanitizeSource writes source into buf as a label value: A-Z a-z 0-9 _ . -
// kept, any other byte replaced by _, cut to the length of buf.
func sanitizeSource(buf *[maxSourceLabelBytes]byte, source string) []byte {
	n := min(len(source), len(buf))
	for i := range n {
		c := source[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			c = '_'
		}
		buf[i] = c
	}
	return buf[:n]
}

// observe counts the events a committed batch applied by their source, at
// now. A followed or rebuilt message is counted where it is owned, live.
func (s *sourceMetrics) observe(items []item, now time.Time) {
	at := float64(now.UnixNano()) / 1e9
	for i := range items {
		it := &items[i]
		if it.result != resultApplied || it.msg.Mode == ModeFollow || it.msg.Mode == ModeRebuild {
			continue
		}
		ser := s.series(it.ev.Source)
		ser.events.Inc()
		if it.ev.Type == features.TypeIntegrationError {
			ser.errors.Inc()
		}
		if ser.last == nil {
			ser.last = s.last.WithLabelValues(ser.label)
		}
		ser.last.Set(at)
	}
}
