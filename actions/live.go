package actions

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Live is the policy in force, which Reload replaces while orderwatch runs. Each
// reader takes one whole policy for one unit of work: the pipeline per batch, the
// executor per outbox pass, the governor per call. Decisions record the version
// they were made under, and what is already decided keeps its own copy of what it
// needs (the command, the escalation ladder of a wait), so a reload changes what
// is decided next, not what was.
type Live struct {
	cur atomic.Pointer[Policy]
	mu  sync.Mutex // serialises Reload

	reloads *prometheus.CounterVec
	lastOK  prometheus.Gauge
	info    *prometheus.GaugeVec
}

// NewLive holds p. Every policy Reload loads later is given p's runtime kill
// switch (UseKillSwitch), when it has one, so that it stays as the API set it,
// and p's share of the group's rate windows (UseRateShare).
func NewLive(p *Policy) *Live {
	l := &Live{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderwatch_policy_reloads_total",
			Help: "Policy reloads (SIGHUP or POST /api/v1/policy/reload), by result: ok, or error (the policy in force is kept).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderwatch_policy_last_reload_successful",
			Help: "1 when the last policy reload succeeded (or none was asked), 0 when it failed and the previous policy is still in force.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_policy_info",
			Help: "The policy in force: 1 for its version.",
		}, []string{"version"}),
	}
	// Both results exported from the start, so that increase() sees the first one.
	l.reloads.WithLabelValues("ok")
	l.reloads.WithLabelValues("error")
	l.lastOK.Set(1)
	l.set(p)
	return l
}

// Policy returns the policy in force.
func (l *Live) Policy() *Policy { return l.cur.Load() }

func (l *Live) set(p *Policy) {
	l.info.Reset()
	l.info.WithLabelValues(p.Version).Set(1)
	l.cur.Store(p)
}

// Reload loads the policy file at path (the shipped policy when empty), checks it
// as a start would, including the webhooks' secrets in getenv, and puts it in
// force. On any error the policy in force stays, and the error says why.
func (l *Live) Reload(path string, getenv func(string) string) (*Policy, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := LoadPolicy(path)
	if err == nil {
		_, err = webhookSecrets(p, getenv)
	}
	if err != nil {
		l.reloads.WithLabelValues("error").Inc()
		l.lastOK.Set(0)
		return nil, fmt.Errorf("%w; the policy in force (version %q) stays", err, l.Policy().Version)
	}
	p.UseKillSwitch(l.Policy().KillSwitch())
	p.UseRateShare(l.Policy().RateShare())
	l.set(p)
	l.reloads.WithLabelValues("ok").Inc()
	l.lastOK.Set(1)
	return p, nil
}

// Collectors are the reload metrics, to register once.
func (l *Live) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.reloads, l.lastOK, l.info}
}

// MissingSecrets names, in action order, each webhook whose signing secret is
// empty or unset in getenv, as "webhooks.<action>.secret_env: <VARIABLE>": run
// refuses to start, and a reload to load, while one is.
func (p *Policy) MissingSecrets(getenv func(string) string) []string {
	var missing []string
	for _, action := range sortedKeys(p.Webhooks) {
		if env := p.Webhooks[action].SecretEnv; getenv(env) == "" {
			missing = append(missing, "webhooks."+action+".secret_env: "+env)
		}
	}
	return missing
}

// webhookSecrets reads the signing secret of each webhook of p, by action.
func webhookSecrets(p *Policy, getenv func(string) string) (map[string][]byte, error) {
	if missing := p.MissingSecrets(getenv); len(missing) > 0 {
		return nil, fmt.Errorf("actions: policy %s: the environment variable is empty or unset: export the webhook's signing secret", strings.Join(missing, ", "))
	}
	secrets := map[string][]byte{}
	for action, w := range p.Webhooks {
		secrets[action] = []byte(getenv(w.SecretEnv))
	}
	return secrets, nil
}
