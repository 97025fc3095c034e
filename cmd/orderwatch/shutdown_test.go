package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/store"
)

const shutdownPolicy = `version: shutdown-1
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
- {id: credit-hold, action: flag_finance, mode: approval, when: {features: {on_credit_hold: {eq: 1}}}}
`

// approveResult is what one approve request of the burst got back.
type approveResult struct {
	code int   // HTTP status; 0 when the request failed
	err  error // the client's error when it failed
}

// TestSIGTERMDuringApprovals: `orderwatch run` gets SIGTERM in the middle of a
// burst of concurrent approvals, while events still arrive and big lists are
// being read. It exits 0 with no error logged on the way down; every approval
// answered 2xx is in its decision's trail after a restart, every other one was
// refused (503, or the connection was refused or closed before the request was
// read) and is not: none is half done. And the executor's final pass came after
// the pipeline's last commit and the last approval, and before Badger closed:
// every entry in the outbox at shutdown was delivered by it, or is still there
// with no failed attempt (one cut by the shutdown is no failure).
func TestSIGTERMDuringApprovals(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "shutdown-token")
	data, natsAddr, httpAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	args := []string{"--data", data, "--nats-listen", natsAddr, "--batch-size", "64", "--api-max-inflight", "64", "--policy", writePolicy(t, shutdownPolicy)}
	child := startChild(t, httpAddr, args...)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	// Orders on credit hold, each waiting for approval.
	const orders = 300
	now := time.Now().UTC()
	publish := func(id, typ, order, data string, at time.Time) error {
		ev := fmt.Sprintf(`{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"erp","schema":1,"data":%s}`, id, typ, order, at.Format(time.RFC3339Nano), data)
		return nc.PublishMsg(&nats.Msg{Subject: features.Subject(typ, order), Data: []byte(ev), Header: nats.Header{"Nats-Msg-Id": {id}}})
	}
	created := func(order string) string {
		return fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-%s","customer_tier":"gold","lines":2,"value":300}`,
			now.Add(3*time.Hour).Format(time.RFC3339), order)
	}
	for i := range orders {
		order := fmt.Sprintf("SO-ST-%d", i)
		if err := publish("c-"+order, "order.created", order, created(order), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := publish("h-"+order, "credit.hold", order, `{"reason":"over_limit"}`, now.Add(-30*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	var pending []string
	waitForWithin(t, 90*time.Second, fmt.Sprintf("%d decisions waiting for approval", orders), func() bool {
		pending = pendingIDs(t, child.base)
		return len(pending) >= orders
	})

	// The burst: approvals, big list reads, and events that keep the pipeline
	// and the executor busy.
	client := &http.Client{Timeout: 30 * time.Second}
	ids := make(chan string, len(pending))
	for _, id := range pending {
		ids <- id
	}
	close(ids)
	var (
		mu       sync.Mutex
		results  = map[string]approveResult{}
		answered atomic.Int32
		burst    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 24 {
		burst.Go(func() {
			for id := range ids {
				r := approve(client, child.base, id, fmt.Sprintf("worker-%d", w))
				mu.Lock()
				results[id] = r
				mu.Unlock()
				answered.Add(1)
			}
		})
	}
	for range 6 {
		burst.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(child.base + "/api/v1/decisions?limit=500")
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	burst.Go(func() {
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			order := fmt.Sprintf("SO-STX-%d", i)
			if publish("c-"+order, "order.created", order, created(order), now) != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	waitForWithin(t, 60*time.Second, "a third of the approvals answered", func() bool { return answered.Load() >= orders/3 })
	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-child.done:
	case <-time.After(30 * time.Second):
		child.kill()
		t.Fatal("orderwatch run did not stop within 30s of SIGTERM")
	}
	close(stop)
	burst.Wait()
	if child.err != nil {
		t.Errorf("orderwatch run exited with %v after SIGTERM, want 0", child.err)
	}
	if errs := errorsAfterShutdown(t, child.log); len(errs) > 0 {
		t.Errorf("errors logged while shutting down:\n%s", strings.Join(errs, "\n"))
	}

	// The outbox, read from Badger itself before anything else starts. Every
	// entry there at shutdown was delivered by the executor's final pass, or is
	// still there with no failed attempt: a delivery cut by our own shutdown is
	// no failure (TestShutdownCutsNoDelivery in actions). Only what the final
	// pass says it left may be there; more was queued after it.
	left, leftOK := finalPassLeft(t, child.log)
	if !leftOK {
		t.Errorf("no %q line in the log of the first run: did the executor make its final pass?", "final outbox pass over")
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(data, "badger")})
	if err != nil {
		t.Fatal(err)
	}
	var entries []store.OutboxEntry
	for after := ""; ; {
		page, err := st.OutboxPage(after, 500)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, page...)
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].DecisionID
	}
	var failed []string
	for _, l := range entries {
		dv, err := st.Decision(strings.SplitN(l.DecisionID, "~", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range dv.Attempts {
			var a actions.Attempt
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			if a.Entry == l.DecisionID && !a.OK {
				failed = append(failed, fmt.Sprintf("%s attempt %d: %s", a.Entry, a.N, a.Error))
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Errorf("left in the outbox with a failed attempt (the target never failed: a delivery cut by the shutdown?): %v", failed)
	}
	if len(entries) > left {
		t.Errorf("%d entries in the outbox after a clean stop, but the executor's final pass left %d: the others were queued after it", len(entries), left)
	}
	t.Logf("the executor's final pass left %d deliveries in the outbox; %d there after the stop", left, len(entries))

	child = startChild(t, httpAddr, args...)
	var ok, refused int
	for _, id := range pending {
		r := results[id]
		v := decisionView(t, child.base, id)
		approved := len(v.Trail) > 0 && v.Trail[0].Kind == actions.TrailApproved
		switch {
		case r.code >= 200 && r.code < 300:
			ok++
			if !approved {
				t.Errorf("%s: approve answered %d but the trail after the restart is %+v", id, r.code, v.Trail)
			}
		case r.code == http.StatusServiceUnavailable || r.code == 0:
			refused++
			if approved {
				t.Errorf("%s: approve refused (%d %v) but recorded: half done", id, r.code, r.err)
			}
		default:
			t.Errorf("%s: approve answered %d, want 2xx or a refusal", id, r.code)
		}
	}
	t.Logf("%d approvals recorded, %d refused around the SIGTERM", ok, refused)
	if ok == 0 || refused == 0 {
		t.Errorf("%d recorded, %d refused: the SIGTERM did not fall inside the burst", ok, refused)
	}
	child.stop()
}

// approve posts an approval and says what came back.
func approve(client *http.Client, base, id, by string) approveResult {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/approvals/"+url.PathEscape(id)+"/approve",
		strings.NewReader(fmt.Sprintf(`{"by":%q,"reason":"burst"}`, by)))
	if err != nil {
		return approveResult{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+os.Getenv("ORDERWATCH_API_TOKEN"))
	resp, err := client.Do(req)
	if err != nil {
		return approveResult{err: err}
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if err != nil && resp.StatusCode/100 == 2 {
		// The answer was cut: count it as answered, the status says so.
		return approveResult{code: resp.StatusCode, err: err}
	}
	return approveResult{code: resp.StatusCode}
}

// pendingIDs pages through the decisions waiting for approval.
func pendingIDs(t *testing.T, base string) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100 {
		code, body := get(base + "/api/v1/approvals?limit=500&cursor=" + url.QueryEscape(cursor))
		if code != 200 {
			t.Fatalf("GET /api/v1/approvals: %d %s", code, body)
		}
		var page struct {
			Approvals []actions.View
			Next      string
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Approvals {
			ids = append(ids, v.Decision.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	return ids
}

func decisionView(t *testing.T, base, id string) actions.View {
	t.Helper()
	code, body := get(base + "/api/v1/decisions/" + url.PathEscape(id))
	if code != 200 {
		t.Fatalf("GET decision %s: %d %s", id, code, body)
	}
	var v actions.View
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// finalPassLeft reads from a child's log how many deliveries the executor's
// final pass left in the outbox, and whether it said so.
func finalPassLeft(t *testing.T, path string) (int, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string
			Left *int
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "final outbox pass over") && line.Left != nil {
			return *line.Left, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0, false
}

// errorsAfterShutdown returns the error-level lines a child logged once it began
// to shut down (its log is JSON).
func errorsAfterShutdown(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	down := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			if down && strings.TrimSpace(sc.Text()) != "" {
				out = append(out, sc.Text()) // a panic, a Go runtime message
			}
			continue
		}
		if line.Msg == "shutting down" {
			down = true
		}
		if down && line.Level == "ERROR" {
			out = append(out, sc.Text())
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	return out
}
