package api

import (
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultMaxInFlight is how many /api/ requests are served at once by default.
	DefaultMaxInFlight = 16
	// MaxBodyBytes bounds the body of every request: the API's bodies are a few
	// hundred bytes of JSON.
	MaxBodyBytes = 64 << 10
	// retryAfter is the Retry-After (seconds) of a request refused as busy.
	retryAfter = "1"
)

// Why a request was refused before any handler ran: the reason label of
// orderwatch_api_requests_refused_total.
const (
	refusedBusy     = "busy"      // MaxInFlight /api/ requests were being served
	refusedBodySize = "body_size" // the body declared more than MaxBodyBytes
)

// limitMetrics count what the limits did.
type limitMetrics struct {
	inFlight prometheus.Gauge
	refused  *prometheus.CounterVec
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	m := &limitMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_api_requests_in_flight",
			Help: "Requests to /api/ being served now (at most --api-max-inflight).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_api_requests_refused_total",
			Help: "Requests refused before any handler ran: busy (503, --api-max-inflight requests to /api/ in flight), body_size (413, body over 64 KiB), unauthenticated (401), forbidden (403, the role does not allow it), csrf (403, a browser's POST without its CSRF token), disabled (403, no token or users configured).",
		}, []string{"reason"}),
	}
	for _, r := range []string{refusedBusy, refusedBodySize, refusedUnauthenticated, refusedForbidden, refusedCSRF, refusedDisabled} {
		m.refused.WithLabelValues(r) // every series shows from the start
	}
	if reg != nil {
		reg.MustRegister(m.inFlight, m.refused)
	}
	return m
}

// limit bounds what requests can hold of the process: every body to
// MaxBodyBytes (413, before any handler runs: a body of unknown length is read
// first, up to the bound), and the requests to /api/ to maxInFlight at once (503
// with Retry-After beyond, without waiting). /metrics, /healthz and /readyz are
// outside the bound, so probes and Prometheus are answered while the API is busy.
func limit(next http.Handler, maxInFlight int, m *limitMetrics) http.Handler {
	sem := make(chan struct{}, maxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			tooLarge(w, m)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			// The body is read whole before the request takes one of the API's
			// slots, so a client trickling one holds a connection (until the
			// server's ReadTimeout), never a slot. The read is bounded: 64 KiB;
			// a chunked body's size is known only once read.
			b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
			if err != nil {
				writeError(w, http.StatusBadRequest, "read body: "+err.Error())
				return
			}
			if len(b) > MaxBodyBytes {
				tooLarge(w, m)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		if strings.HasPrefix(r.URL.Path, "/api/") {
			select {
			case sem <- struct{}{}:
			default:
				m.refused.WithLabelValues(refusedBusy).Inc()
				w.Header().Set("Retry-After", retryAfter)
				writeError(w, http.StatusServiceUnavailable, "too many API requests in flight: retry after a second")
				return
			}
			m.inFlight.Inc()
			defer func() {
				m.inFlight.Dec()
				<-sem
			}()
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, m *limitMetrics) {
	m.refused.WithLabelValues(refusedBodySize).Inc()
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, "request body is larger than 64 KiB")
}
