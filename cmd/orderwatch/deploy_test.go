package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
)

const (
	alertsFile     = "../../deploy/prometheus/alerts.yml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yml"
	dashboardFile  = "../../deploy/grafana/orderwatch.json"
	readmeFile     = "../../README.md"
)

var metricName = regexp.MustCompile(`\borderwatch_[a-zA-Z0-9_]+`)

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules found", alertsFile)
	}
	return rules
}

// dashboardQueries returns every PromQL text of the dashboard: panel targets and
// template variable queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					out = append(out, s)
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(d)
	return out
}

// scrapedNames returns the sample names of a /metrics text: a histogram shows as its
// _bucket, _sum and _count series, the names a query uses.
func scrapedNames(body string) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// Every orderwatch_* metric named by an alert or a dashboard panel exists on a
// running instance. Some series appear only once something failed (a CounterVec
// shows no series before its first label value), so the test makes those failures
// happen: it deletes the ACTIONS and ORDERS_DLQ streams under the running process.
func TestAlertsAndDashboardUseExistingMetrics(t *testing.T) {
	used := map[string][]string{} // metric → where it is used
	for _, r := range loadAlertRules(t) {
		for _, m := range metricName.FindAllString(r.Expr, -1) {
			used[m] = append(used[m], "alert "+r.Alert)
		}
	}
	var dashboardNames int
	for _, q := range dashboardQueries(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			used[m] = append(used[m], "dashboard")
			dashboardNames++
		}
	}
	if len(used) < 10 || dashboardNames < 10 {
		t.Fatalf("found %d metric names (%d in the dashboard); the parsing of %s or %s is broken", len(used), dashboardNames, alertsFile, dashboardFile)
	}

	base, natsURL := startRun(t, true)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var body string
	scrape := func() string { _, body = get(base + "/metrics"); return body }

	// The demo's actions come with its warm-up backlog, the next may be minutes
	// away: an order a day past its cutoff (risk above the auto-notify
	// threshold), at a warehouse of its own (no hourly limit used), makes one now.
	lateOrder := func(n int) {
		t.Helper()
		now := time.Now().UTC()
		id := fmt.Sprintf("dep-%d", n)
		ev := fmt.Sprintf(`{"id":%q,"type":"order.created","order_id":"SO-DEP-%d","occurred_at":%q,"source":"erp","schema":1,"data":{"warehouse":"TST","ship_cutoff":%q,"customer_id":"C-DEP-%d","customer_tier":"gold","lines":2,"value":300}}`,
			id, n, now.Add(-26*time.Hour).Format(time.RFC3339), now.Add(-24*time.Hour).Format(time.RFC3339), n)
		if err := nc.PublishMsg(&nats.Msg{Subject: features.Subject(features.TypeOrderCreated, fmt.Sprintf("SO-DEP-%d", n)), Data: []byte(ev), Header: nats.Header{"Nats-Msg-Id": {id}}}); err != nil {
			t.Fatal(err)
		}
	}
	lateOrder(1)
	waitFor(t, "an action published", func() bool {
		return metricSum(scrape(), "orderwatch_actions_published_total", "") > 0
	})
	if err := js.DeleteStream(ctx, pipeline.StreamActions); err != nil {
		t.Fatal(err)
	}
	lateOrder(2)
	waitFor(t, "executor failures once ACTIONS is gone", func() bool {
		return metricSum(scrape(), "orderwatch_executor_failures_total", "") > 0
	})
	if err := js.DeleteStream(ctx, pipeline.StreamDLQ); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("orders.order.created.SO-DEP-0", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a batch failing at dlq_publish once ORDERS_DLQ is gone", func() bool {
		return metricSum(scrape(), "orderwatch_batch_failures_total", `stage="dlq_publish"`) > 0
	})

	// Streams back, so the process recovers and stops quickly.
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}

	have := scrapedNames(body)
	for _, m := range slices.Sorted(maps.Keys(used)) {
		if !have[m] {
			t.Errorf("%s is used by %s but a running orderwatch does not export it", m, strings.Join(slices.Compact(used[m]), ", "))
		}
	}
}

// Every alert has a severity, a summary, a runbook in the README and promtool tests
// where it fires and where it does not.
func TestAlertsHaveRunbooksAndTests(t *testing.T) {
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			anchors[githubAnchor(h)] = true
		}
	}

	b, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	const runbookBase = "https://github.com/orderwatch/orderwatch/blob/main/README.md#"
	for _, r := range loadAlertRules(t) {
		if r.Alert == "" {
			t.Errorf("rule %q is not an alert", r.Expr)
			continue
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: no summary", r.Alert)
		}
		if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("%s: no runbook heading '### %s' in the README", r.Alert, r.Alert)
		}
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("%s: %s needs a case where it fires (%v) and one where it does not (%v)", r.Alert, alertTestsFile, fires[r.Alert], quiet[r.Alert])
		}
	}
}

// githubAnchor is the fragment GitHub gives a heading: lower case, spaces to
// hyphens, punctuation other than - and _ dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// usedMetrics returns every orderwatch_* name an alert or a dashboard panel uses,
// with where.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	for _, r := range loadAlertRules(t) {
		for _, m := range metricName.FindAllString(r.Expr, -1) {
			used[m] = append(used[m], "alert "+r.Alert)
		}
	}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			used[m] = append(used[m], "dashboard")
		}
	}
	return used
}

// TestMetricsAtStartShowEverySeriesUsed: a fresh `orderwatch run` (a real
// process on its embedded NATS, no traffic) already exports every orderwatch_*
// name the alerts and the dashboard use, so that an alert on a failure counter
// can fire on its first failure (rate() needs a sample before it) and no panel
// says "no data" on a healthy instance.
func TestMetricsAtStartShowEverySeriesUsed(t *testing.T) {
	used := usedMetrics(t)
	if len(used) < 10 {
		t.Fatalf("found %d metric names; the parsing of %s or %s is broken", len(used), alertsFile, dashboardFile)
	}
	child := startChild(t, freeAddr(t), "--data", t.TempDir(), "--nats-listen", freeAddr(t))
	code, body := get(child.base + "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	have := scrapedNames(body)
	var missing []string
	for _, m := range slices.Sorted(maps.Keys(used)) {
		if !have[m] {
			missing = append(missing, fmt.Sprintf("%s (%s)", m, strings.Join(slices.Compact(used[m]), ", ")))
		}
	}
	if len(missing) > 0 {
		t.Errorf("a fresh orderwatch does not export %d names the alerts and the dashboard use:\n%s", len(missing), strings.Join(missing, "\n"))
	}
	child.stop()
}
