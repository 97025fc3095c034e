package auth

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a sign-in: the result label of orderwatch_auth_signins_total.
const (
	signInOK        = "ok"
	signInWrong     = "wrong"     // unknown name or wrong password
	signInThrottled = "throttled" // refused before the password was compared
)

type metrics struct {
	signIns      *prometheus.CounterVec
	proxyIgnored prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_auth_signins_total",
			Help: "Sign-ins with a name and password, by result: ok, wrong (unknown name or wrong password), throttled (refused after too many failures).",
		}, []string{"result"}),
		proxyIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderwatch_auth_proxy_header_ignored_total",
			Help: "Requests whose reverse-proxy user header was ignored: from an address outside --auth-proxy-trusted, or a name that is not valid.",
		}),
	}
	for _, r := range []string{signInOK, signInWrong, signInThrottled} {
		m.signIns.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.signIns, m.proxyIgnored} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("auth: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
