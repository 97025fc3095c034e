package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/whatif"
)

// whatifEvents simulates a small stream for the whatif tests and returns its
// file. Its window is the whole stream: --from/--to of whatifWindow.
func whatifEvents(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	simulateFiles(t, dir, "--orders", "1200", "--seed", "19")
	return filepath.Join(dir, "events.ndjson")
}

// whatifWindow reports every decision of whatifEvents (the simulator starts
// its stream two days before its default start, 2026-05-18).
var whatifWindow = []string{"--from", "2026-05-16T00:00:00Z", "--to", "2026-06-16T00:00:00Z", "--warmup", "0s"}

// runWhatifTest runs `orderwatch whatif args...` and returns its exit code,
// its JSON report (nil when it wrote none) and its stdout and stderr.
func runWhatifTest(t *testing.T, args ...string) (int, *whatif.Report, string, string) {
	t.Helper()
	js := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	code := whatifMain(append(args, "--json", js), &stdout, &stderr)
	b, err := os.ReadFile(js)
	if err != nil {
		return code, nil, stdout.String(), stderr.String()
	}
	var rep whatif.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("the JSON report does not decode: %v\n%s", err, b)
	}
	return code, &rep, stdout.String(), stderr.String()
}

// candidatePolicy writes the shipped policy changed by edit (applied to its
// text) to a file.
func candidatePolicy(t *testing.T, edit func(string) string) string {
	t.Helper()
	text := edit(string(actions.DefaultPolicy()))
	path := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := actions.LoadPolicy(path); err != nil {
		t.Fatalf("candidate policy: %v", err)
	}
	return path
}

// TestWhatifSamePolicyAndModelsNoChange: the baseline against itself (no
// candidate flag) decides the same, run for run: no change, exit 0 even with
// every --fail-on kind, and the two summaries are equal.
func TestWhatifSamePolicyAndModelsNoChange(t *testing.T) {
	events := whatifEvents(t)
	code, rep, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--fail-on", "added,removed,changed"}, whatifWindow...)...)
	if code != whatifOK || rep == nil {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	c := rep.Changes
	if c.Added+c.Removed+c.Changed+c.Earlier+c.Later != 0 || len(c.List) != 0 {
		t.Errorf("the same policy and models changed decisions: %+v", c)
	}
	if c.Unchanged == 0 || rep.Baseline.Decisions != c.Unchanged {
		t.Errorf("unchanged %d, baseline decisions %d: want the same, more than 0", c.Unchanged, rep.Baseline.Decisions)
	}
	b, _ := json.Marshal(rep.Baseline)
	a, _ := json.Marshal(rep.Candidate)
	if !bytes.Equal(a, b) {
		t.Errorf("the summaries differ:\nbaseline  %s\ncandidate %s", b, a)
	}
	if rep.Baseline.ScoredBy["cutoff_risk@1.0.0"] != rep.Baseline.Decisions {
		t.Errorf("the baseline should score with the shipped models: %v", rep.Baseline.ScoredBy)
	}
	if !strings.Contains(out, "0 added, 0 removed, 0 changed") {
		t.Errorf("the Markdown report does not say there is no change:\n%s", out)
	}
}

// TestWhatifNewRuleIsAdded: a candidate policy with one more rule adds its
// decisions and nothing else; --fail-on added exits 3, --fail-on
// removed,changed exits 0.
func TestWhatifNewRuleIsAdded(t *testing.T) {
	events := whatifEvents(t)
	cand := candidatePolicy(t, func(p string) string {
		return p + `
  - id: very-high-risk-reprioritise
    description: the model is all but sure the order misses; ask the floor to pull it forward
    action: request_warehouse_reprioritisation
    mode: auto
    cooldown: 1h
    when:
      risk: {gte: 0.9}
      features:
        minutes_to_cutoff: {gt: 30}
`
	})
	code, rep, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--candidate-policy", cand, "--fail-on", "added"}, whatifWindow...)...)
	if code != whatifFailOn || rep == nil {
		t.Fatalf("exit %d, want 3 (--fail-on added)\n%s\n%s", code, out, errOut)
	}
	c := rep.Changes
	t.Logf("new rule: %d added, %d removed, %d changed, %d unchanged", c.Added, c.Removed, c.Changed, c.Unchanged)
	if c.Added == 0 || c.Removed != 0 || c.Changed != 0 {
		t.Fatalf("want only added decisions: %d added, %d removed, %d changed", c.Added, c.Removed, c.Changed)
	}
	for _, ch := range c.List {
		if ch.Kind != whatif.KindAdded || ch.RuleID != "very-high-risk-reprioritise" || ch.Candidate == nil || ch.Baseline != nil {
			t.Errorf("listed change not the new rule's addition: %+v", ch)
		}
	}
	if rep.Candidate.Decisions != rep.Baseline.Decisions+c.Added {
		t.Errorf("candidate decisions %d, want the baseline's %d and the %d added", rep.Candidate.Decisions, rep.Baseline.Decisions, c.Added)
	}
	if !strings.Contains(errOut, "--fail-on added") {
		t.Errorf("stderr does not say why it exits 3:\n%s", errOut)
	}
	if code, _, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--candidate-policy", cand, "--fail-on", "removed,changed"}, whatifWindow...)...); code != whatifOK {
		t.Errorf("--fail-on removed,changed with only additions: exit %d, want 0\n%s\n%s", code, out, errOut)
	}
}

// TestWhatifThresholdChange: lowering a rule's risk threshold changes its
// decisions (the same rule and episode, decided earlier) and adds the episodes
// of orders between the two thresholds; only that rule's decisions change.
func TestWhatifThresholdChange(t *testing.T) {
	events := whatifEvents(t)
	cand := candidatePolicy(t, func(p string) string {
		const from = "    when:\n      risk: {gte: 0.7}\n"
		if strings.Count(p, from) != 1 {
			t.Fatalf("the shipped policy no longer has one rule at risk 0.7")
		}
		return strings.Replace(p, from, "    when:\n      risk: {gte: 0.55}\n", 1)
	})
	code, rep, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--candidate-policy", cand, "--list", "1000"}, whatifWindow...)...)
	if code != whatifOK || rep == nil {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	c := rep.Changes
	t.Logf("threshold 0.7 -> 0.55: %d added, %d removed, %d changed, %d unchanged (%d earlier, %d later)", c.Added, c.Removed, c.Changed, c.Unchanged, c.Earlier, c.Later)
	if c.Added == 0 || c.Changed == 0 || c.Earlier == 0 {
		t.Errorf("a lower threshold should add decisions and change some, decided earlier: %+v", c)
	}
	earlier := 0
	for _, ch := range c.List {
		if ch.Kind == whatif.KindChanged && slices.Contains(ch.What, "moment") && ch.Candidate.At.Before(ch.Baseline.At) {
			earlier++
		}
	}
	if earlier == 0 {
		t.Errorf("no changed decision listed as decided earlier: %+v", c.List)
	}
	if len(c.List) != c.Added+c.Removed+c.Changed {
		t.Fatalf("listed %d changes of %d", len(c.List), c.Added+c.Removed+c.Changed)
	}
	for _, ch := range c.List {
		if ch.RuleID != "high-risk-notify-cs" {
			t.Errorf("a change of another rule than the one changed: %+v", ch)
		}
		if ch.Kind == whatif.KindAdded && ch.Candidate.Risk >= 0.7 && ch.Episode == 1 {
			t.Errorf("an added first episode at risk %.2f: the baseline should have decided it too: %+v", ch.Candidate.Risk, ch)
		}
	}
	if rep.Candidate.ByAction["notify_customer_service"] <= rep.Baseline.ByAction["notify_customer_service"] {
		t.Errorf("acted notifications: baseline %d, candidate %d: want more", rep.Baseline.ByAction["notify_customer_service"], rep.Candidate.ByAction["notify_customer_service"])
	}
}

// TestWhatifModelChangeMovesLeadTime: the shipped cutoff_risk model against
// the rules fallback (--models none) decides other orders at other moments:
// the lead time before the cutoff moves, and each run says what scored it.
func TestWhatifModelChangeMovesLeadTime(t *testing.T) {
	events := whatifEvents(t)
	code, rep, out, errOut := runWhatifTest(t, append([]string{"--in", events, "--models", "none", "--candidate-models", seededModels(t)}, whatifWindow...)...)
	if code != whatifOK || rep == nil {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	b, c := rep.Baseline, rep.Candidate
	if b.ScoredBy["rules_fallback@"+features.SpecVersion] != b.Decisions || c.ScoredBy["cutoff_risk@1.0.0"] != c.Decisions {
		t.Fatalf("scored by: baseline %v, candidate %v", b.ScoredBy, c.ScoredBy)
	}
	if b.LeadTime.Median == nil || c.LeadTime.Median == nil || b.LeadTime.P10 == nil || c.LeadTime.P10 == nil {
		t.Fatalf("no lead time: baseline %+v, candidate %+v", b.LeadTime, c.LeadTime)
	}
	t.Logf("lead time: rules fallback median %v p10 %v min, shipped model median %v p10 %v min", *b.LeadTime.Median, *b.LeadTime.P10, *c.LeadTime.Median, *c.LeadTime.P10)
	if *b.LeadTime.Median == *c.LeadTime.Median && *b.LeadTime.P10 == *c.LeadTime.P10 {
		t.Errorf("the lead time did not move: median %v, p10 %v in both", *b.LeadTime.Median, *b.LeadTime.P10)
	}
	if rep.Changes.Added+rep.Changes.Removed+rep.Changes.Changed+rep.Changes.Earlier+rep.Changes.Later == 0 {
		t.Errorf("another model changed no decision: %+v", rep.Changes)
	}
	if !strings.Contains(errOut, "whatif: candidate: cutoff_risk 1.0.0 scores (from ") {
		t.Errorf("stderr does not say which models score:\n%s", errOut)
	}
}

// seededModels returns a models dir holding a copy of the shipped bundles.
func seededModels(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := models.SeedDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWhatifUsage: a command line that cannot work exits 2 and says why,
// before anything is replayed.
func TestWhatifUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give one of --in FILE and --nats-url URL"},
		{[]string{"--in", "x", "--nats-url", "nats://127.0.0.1:1"}, "give one of"},
		{[]string{"--in", "x", "--fail-on", "added,moved"}, `--fail-on "moved"`},
		{[]string{"--in", "x", "--from", "2026-05-18"}, "--from and --to go together"},
		{[]string{"--in", "x", "--from", "yesterday", "--to", "2026-05-18"}, `--from "yesterday"`},
		{[]string{"--in", "x", "--since", "7d", "--from", "2026-05-11", "--to", "2026-05-18"}, "not both"},
		{[]string{"--in", "x", "--since", "a week"}, "number of days"},
	} {
		var stdout, stderr bytes.Buffer
		if code := whatifMain(tc.args, &stdout, &stderr); code != whatifUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("whatif %q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := whatifMain([]string{"--in", filepath.Join(t.TempDir(), "missing.ndjson")}, &stdout, &stderr); code != whatifError {
		t.Errorf("a missing file: exit %d, want 1: %s", code, stderr.String())
	}
}

// TestWhatifFromNATS: whatif reads the window from the ORDERS stream through
// an ordered consumer and reports what it reports from the same events in a
// file, and the durable consumer of the live pipeline is left as it was: no
// message delivered or acknowledged, no consumer added for good.
func TestWhatifFromNATS(t *testing.T) {
	events := whatifEvents(t)
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := pipeline.EnsureStreams(ctx, js, pipeline.StreamOptions{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	published := publishFile(t, ctx, js, events)

	// The live pipeline's durable consumer, part way through the stream.
	live, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "orderwatch-live", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := live.Fetch(100, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for m := range batch.Messages() {
		if acked < 60 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
	before := consumerState(t, ctx, live)

	code, fromNATS, out, errOut := runWhatifTest(t, append([]string{"--nats-url", ns.ClientURL()}, whatifWindow...)...)
	if code != whatifOK || fromNATS == nil {
		t.Fatalf("whatif --nats-url: exit %d\n%s\n%s", code, out, errOut)
	}
	if fromNATS.Events.Lines != published {
		t.Errorf("whatif read %d messages of the %d published", fromNATS.Events.Lines, published)
	}
	_, fromFile, _, _ := runWhatifTest(t, append([]string{"--in", events}, whatifWindow...)...)
	if fromFile == nil {
		t.Fatal("whatif --in wrote no report")
	}
	n, _ := json.Marshal(fromNATS.Baseline)
	f, _ := json.Marshal(fromFile.Baseline)
	if !bytes.Equal(n, f) || fromNATS.Baseline.Decisions == 0 {
		t.Errorf("the stream and the file of the same events decide otherwise:\nnats %s\nfile %s", n, f)
	}

	if after := consumerState(t, ctx, live); after != before {
		t.Errorf("the live consumer changed:\nbefore %+v\nafter  %+v", before, after)
	}
	stream, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	lister := stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable != "" && ci.Name != "orderwatch-live" {
			t.Errorf("whatif left a durable consumer %s", ci.Name)
		}
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
}

// consumerState is what reading the stream must not change of a consumer.
type consumerSnapshot struct {
	Delivered, AckFloor  uint64
	AckPending, Pending  uint64
	Redelivered, Waiting int
}

func consumerState(t *testing.T, ctx context.Context, c jetstream.Consumer) consumerSnapshot {
	t.Helper()
	ci, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return consumerSnapshot{Delivered: ci.Delivered.Stream, AckFloor: ci.AckFloor.Stream, AckPending: uint64(ci.NumAckPending),
		Pending: ci.NumPending, Redelivered: ci.NumRedelivered, Waiting: ci.NumWaiting}
}

// publishFile publishes each line of an NDJSON file to its subject, in file
// order, without a Nats-Msg-Id (so its duplicates are stored, as the file
// holds them), and returns how many it published.
func publishFile(t *testing.T, ctx context.Context, js jetstream.JetStream, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev features.Event
	n := 0
	for sc.Scan() {
		if err := features.Decode(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		msg := &nats.Msg{Subject: features.Subject(ev.Type, ev.OrderID), Data: bytes.Clone(sc.Bytes())}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatal(err)
		}
		if n++; n%1000 == 0 { // a window of acks at a time: a slow (-race) server stalls more
			waitPublished(t, ctx, js)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	waitPublished(t, ctx, js)
	return n
}

func waitPublished(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishes not acknowledged in time")
	}
}
