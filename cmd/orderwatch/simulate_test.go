package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/sim"
)

func TestParseSimulateFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseSimulateFlags(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Orders != 10000 || c.Seed != 1 || !c.Start.Equal(sim.DefaultStart) || c.Scenario != sim.Normal ||
		c.Faults != sim.DefaultFaults || c.Warmup != 48*time.Hour || c.Scale != 1 {
		t.Errorf("defaults = %+v", c)
	}
	for _, args := range [][]string{
		{"--orders", "0"},
		{"--scenario", "sunny"},
		{"--start", "yesterday"},
		{"--out", "x.ndjson", "--nats-url", "nats://127.0.0.1:4222"},
		{"--rate", "100"},
		{"--partitions", "4"},
		{"--partitions", "-1", "--nats-url", "nats://127.0.0.1:4222"},
		{"extra"},
	} {
		if _, err := parseSimulateFlags(args, &stderr); err == nil {
			t.Errorf("parseSimulateFlags(%q) = nil error", args)
		}
	}
}

func simulateFiles(t *testing.T, dir string, args ...string) (events, labels []byte, summary string) {
	t.Helper()
	out, lab := filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "labels.csv")
	var stderr bytes.Buffer
	cfg, err := parseSimulateFlags(append([]string{"--out", out, "--labels", lab}, args...), &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(context.Background(), cfg, nil, &stderr); err != nil {
		t.Fatal(err)
	}
	events, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	labels, err = os.ReadFile(lab)
	if err != nil {
		t.Fatal(err)
	}
	return events, labels, stderr.String()
}

func TestSimulateWritesFilesDeterministically(t *testing.T) {
	args := []string{"--orders", "400", "--seed", "12", "--scenario", "peak"}
	ev1, lab1, summary := simulateFiles(t, t.TempDir(), args...)
	ev2, lab2, _ := simulateFiles(t, t.TempDir(), args...)
	if !bytes.Equal(ev1, ev2) || !bytes.Equal(lab1, lab2) {
		t.Fatal("the same flags gave different files")
	}
	ev3, _, _ := simulateFiles(t, t.TempDir(), "--orders", "400", "--seed", "13", "--scenario", "peak")
	if bytes.Equal(ev1, ev3) {
		t.Fatal("seeds 12 and 13 gave the same events")
	}
	if !strings.HasPrefix(summary, "simulate: ") || !strings.Contains(summary, "events/s") || !strings.Contains(summary, "400 orders") {
		t.Errorf("summary = %q", summary)
	}
	rows := strings.Split(strings.TrimSpace(string(lab1)), "\n")
	if rows[0] != "order_id,missed_cutoff,minutes_late,exception_class" || len(rows) != 401 {
		t.Fatalf("labels: header %q, %d rows", rows[0], len(rows)-1)
	}
	sc := bufio.NewScanner(bytes.NewReader(ev1))
	for sc.Scan() {
		var ev features.Event
		if err := features.Decode(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
	}
}

// A whole simulated file published into orderwatch run dead-letters nothing: every
// stored message is applied or recognised as a duplicate.
func TestSimulatedFileThroughRun(t *testing.T) {
	base, natsURL := startRun(t, false)
	events, _, _ := simulateFiles(t, t.TempDir(), "--orders", "200", "--seed", "5",
		"--duplicates", "0.01", "--out-of-order", "0.02", "--late", "0.01")

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stored, lines int
	sc := bufio.NewScanner(bytes.NewReader(events))
	for sc.Scan() {
		lines++
		var env struct{ ID, Type string }
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, features.Subject(env.Type, orderIDOf(sc.Bytes())), sc.Bytes(), jetstream.WithMsgID(env.ID))
		if err != nil {
			t.Fatalf("publish line %d: %v", lines, err)
		}
		if !ack.Duplicate {
			stored++
		}
	}
	var st map[string]int
	waitFor(t, "every stored message applied or counted as duplicate", func() bool {
		_, body := get(base + "/api/v1/stats")
		st = nil
		_ = json.Unmarshal([]byte(body), &st)
		return st["events_applied"]+st["duplicates"]+st["dead_lettered"] == stored
	})
	if st["dead_lettered"] != 0 || st["events_applied"]+st["duplicates"] != stored {
		t.Errorf("stats %v after publishing %d lines (%d stored): want nothing dead-lettered", st, lines, stored)
	}
	if st["open_orders"] != 0 {
		t.Errorf("stats %v: every simulated order finishes, want 0 open", st)
	}
}

// TestSimulatePublishesPartitioned: simulate --nats-url --partitions 4 creates
// ORDERS with 4 partitions and publishes every order event with its order in
// the subject, so JetStream stores it in the order's partition; context events
// stay on orders.<type>. Nothing it publishes is refused by the subject check.
func TestSimulatePublishesPartitioned(t *testing.T) {
	url := startNATS(t, nil)
	cfg, err := parseSimulateFlags([]string{"--nats-url", url, "--orders", "20", "--warmup", "0s", "--partitions", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(context.Background(), cfg, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	js := natstest.JetStream(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := pipeline.StreamPartitions(s.CachedInfo().Config); err != nil || n != 4 {
		t.Fatalf("ORDERS has %d partitions (%v), want 4", n, err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	total := s.CachedInfo().State.Msgs
	parts := map[int]int{}
	for range total {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev features.Event
		if err := features.Decode(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if reason, detail := features.CheckSubject(m.Subject(), &ev); reason != "" {
			t.Fatalf("%s on %s: %s: %s", ev.ID, m.Subject(), reason, detail)
		}
		p, _, tok, _ := features.ParseStoredSubject(m.Subject())
		if !features.IsContext(ev.Type) && p != features.Partition(tok, 4) {
			t.Fatalf("%s stored as %s, want partition %d", ev.ID, m.Subject(), features.Partition(tok, 4))
		}
		parts[p]++
	}
	if total < 100 || len(parts) != 5 {
		t.Errorf("%d messages, by partition (-1: context) %v; want all four partitions and context events", total, parts)
	}
}

// TestSimulateWritesCauses: --causes writes the ground truth of shared causes
// as NDJSON, one line per order and cause, each about an order of the stream;
// the same flags give the same bytes; a file that cannot be created is an
// error that names the flag.
func TestSimulateWritesCauses(t *testing.T) {
	write := func(dir string) (events, causes []byte) {
		t.Helper()
		path := filepath.Join(dir, "causes.ndjson")
		events, _, _ = simulateFiles(t, dir, "--orders", "3000", "--seed", "6", "--scale", "3", "--scenario", "incidents", "--causes", path)
		causes, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return events, causes
	}
	events, causes := write(t.TempDir())
	if _, again := write(t.TempDir()); !bytes.Equal(causes, again) {
		t.Fatal("the same flags gave different causes")
	}
	orders := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(events))
	for sc.Scan() {
		var ev features.Event
		if err := features.Decode(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		orders[ev.OrderID] = true
	}
	kinds := map[string]int{}
	seen := map[[3]string]bool{}
	for line := range bytes.Lines(causes) {
		var c struct {
			OrderID string    `json:"order_id"`
			Kind    string    `json:"kind"`
			ID      string    `json:"id"`
			At      time.Time `json:"at"`
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if !orders[c.OrderID] || c.ID == "" || c.At.IsZero() {
			t.Errorf("cause %s: not about an order of the stream, or without id or time", line)
		}
		k := [3]string{c.OrderID, c.Kind, c.ID}
		if seen[k] {
			t.Errorf("cause %s: twice", line)
		}
		seen[k] = true
		kinds[c.Kind]++
	}
	t.Logf("causes by kind: %v", kinds)
	for _, k := range []string{sim.CauseEDIMapping, sim.CausePriceContract} {
		if kinds[k] == 0 {
			t.Errorf("no %s cause: %v", k, kinds)
		}
	}
	for k := range kinds {
		switch k {
		case sim.CauseWarehouseOutage, sim.CauseCarrierPickup, sim.CauseEDIMapping, sim.CausePriceContract:
		default:
			t.Errorf("kind %q", k)
		}
	}

	var stderr bytes.Buffer
	cfg, err := parseSimulateFlags([]string{"--orders", "10", "--out", filepath.Join(t.TempDir(), "e.ndjson"), "--causes", filepath.Join(t.TempDir(), "no", "such", "dir", "c.ndjson")}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(context.Background(), cfg, nil, &stderr); err == nil || !strings.HasPrefix(err.Error(), "causes: ") {
		t.Errorf("simulate into a missing directory: %v, want an error beginning causes:", err)
	}
}
