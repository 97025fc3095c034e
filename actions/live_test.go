package actions_test

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderwatch/orderwatch/actions"
)

const reloadPolicy = `version: %s
%s
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`

// TestReloadTakesEffect: a reloaded policy is what the pipeline decides under
// (decisions carry its version) and what the executor delivers with (a webhook it
// adds is posted); a reload that cannot be taken (a webhook secret missing, a
// broken file) keeps the policy in force, says why, and shows in the metrics.
func TestReloadTakesEffect(t *testing.T) {
	rc := &receiver{statuses: []int{200}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	secret := ""
	getenv := func(k string) string {
		if k == "HOOK_SECRET" {
			return secret
		}
		return ""
	}
	d := startWithOrder(t, daemonOptions{policy: fmt.Sprintf(reloadPolicy, "a", ""), getenv: getenv})
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.live.Collectors()...)
	kill := d.live.Policy().KillSwitch()
	waitFor(t, "SO-1 decided under version a", func() bool { return decidedUnder(t, d, "SO-1") == "a" })

	file := filepath.Join(t.TempDir(), "policy.yaml")
	withHook := fmt.Sprintf(reloadPolicy, "b", fmt.Sprintf("webhooks:\n  notify_customer_service: {url: %q, secret_env: HOOK_SECRET}", srv.URL))
	if err := os.WriteFile(file, []byte(withHook), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.live.Reload(file, getenv)
	if err == nil || !strings.Contains(err.Error(), "HOOK_SECRET") || !strings.Contains(err.Error(), `(version "a") stays`) {
		t.Errorf("reload without the webhook's secret: %v, want a refusal naming HOOK_SECRET that keeps version a", err)
	}
	if v := d.live.Policy().Version; v != "a" || testutil.ToFloat64(collector(d.live, "orderwatch_policy_last_reload_successful")) != 0 {
		t.Errorf("after a refused reload: version %q, last_reload_successful %v; want a and 0", v, testutil.ToFloat64(collector(d.live, "orderwatch_policy_last_reload_successful")))
	}

	secret = hookSecret
	p, err := d.live.Reload(file, getenv)
	if err != nil || p.Version != "b" || d.live.Policy() != p {
		t.Fatalf("reload: %v, policy %v; want version b in force", err, p)
	}
	if p.KillSwitch() != kill {
		t.Error("the reloaded policy has another kill switch than the one the API turns")
	}
	now := time.Now()
	if err := d.createOrder("e-2", "SO-2", now, now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SO-2 decided under version b and its webhook posted", func() bool {
		return decidedUnder(t, d, "SO-2") == "b" && len(rc.requests()) == 1
	})
	if r := rc.requests()[0]; r.sigErr != nil || !strings.Contains(r.body, `"order_id":"SO-2"`) {
		t.Errorf("webhook request: signature %v, body %s; want SO-2's command, signed", r.sigErr, r.body)
	}

	if err := os.WriteFile(file, []byte("version: c\nrules: [{id: x, action: fly_to_the_moon}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.live.Reload(file, getenv); err == nil || !strings.Contains(err.Error(), "fly_to_the_moon") {
		t.Errorf("reload of a broken file: %v, want the reason", err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP orderwatch_policy_info The policy in force: 1 for its version.
# TYPE orderwatch_policy_info gauge
orderwatch_policy_info{version="b"} 1
# HELP orderwatch_policy_reloads_total Policy reloads (SIGHUP or POST /api/v1/policy/reload), by result: ok, or error (the policy in force is kept).
# TYPE orderwatch_policy_reloads_total counter
orderwatch_policy_reloads_total{result="error"} 2
orderwatch_policy_reloads_total{result="ok"} 1
`), "orderwatch_policy_info", "orderwatch_policy_reloads_total"); err != nil {
		t.Error(err)
	}
}

// decidedUnder returns the policy version of the order's decision, "" while none.
func decidedUnder(t *testing.T, d *daemon, order string) string {
	t.Helper()
	dvs, err := d.st.FindDecisions(storeQuery(order))
	if err != nil || len(dvs) == 0 {
		return ""
	}
	v, err := actions.NewView(dvs[0], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return v.Decision.PolicyVersion
}

// collector returns the one of l's collectors that describes name.
func collector(l *actions.Live, name string) prometheus.Collector {
	for _, c := range l.Collectors() {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for desc := range ch {
			if strings.Contains(desc.String(), `"`+name+`"`) {
				return c
			}
		}
	}
	return nil
}
