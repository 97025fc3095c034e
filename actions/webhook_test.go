package actions_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

// receiver is a webhook endpoint that answers with the scripted statuses in turn
// (the last one from then on) and keeps what it got.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	got      []received
}

type received struct {
	body                   string
	key, delivery, attempt string
	sigErr                 error
}

const hookSecret = "s3cret-for-tests"

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got = append(rc.got, received{
		body: string(body), key: r.Header.Get(actions.HeaderIdempotency), delivery: r.Header.Get(actions.HeaderDelivery),
		attempt: r.Header.Get(actions.HeaderAttempt),
		sigErr:  actions.Verify([]byte(hookSecret), r.Header, body, time.Now(), 5*time.Minute),
	})
	status := rc.statuses[min(len(rc.got), len(rc.statuses))-1]
	w.WriteHeader(status)
	fmt.Fprintf(w, "status %d", status)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// TestWebhookRetriesWithBackoffAndRecordsEachAttempt: the webhook delivery is
// signed, retried with backoff while the receiver fails, and recorded attempt by
// attempt with one final outcome; a client error is not retried.
func TestWebhookRetriesWithBackoffAndRecordsEachAttempt(t *testing.T) {
	cases := []struct {
		name         string
		statuses     []int
		wantAttempts int
		wantOutcome  string
	}{
		{"fails twice then succeeds", []int{503, 500, 200}, 3, actions.OutcomeDelivered},
		{"refused is not retried", []int{422}, 1, actions.OutcomeFailed},
		{"waits past max attempts (circuit open) until delivered", []int{503, 503, 503, 503, 503, 200}, 6, actions.OutcomeDelivered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := &receiver{statuses: c.statuses}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			policy := fmt.Sprintf(`version: hooks-1
webhooks:
  notify_customer_service: {url: %q, secret_env: HOOK_SECRET, backoff: 20ms, max_backoff: 100ms, max_attempts: 4, timeout: 2s}
rules:
- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}
`, srv.URL+"/hooks/cs")
			getenv := func(k string) string {
				if k == "HOOK_SECRET" {
					return hookSecret
				}
				return ""
			}
			d := startWithOrder(t, daemonOptions{policy: policy, getenv: getenv})
			var v actions.View
			waitFor(t, "both deliveries done", func() bool {
				dvs, err := d.st.FindDecisions(storeQuery("SO-1"))
				if err != nil || len(dvs) != 1 {
					return false
				}
				v, err = actions.NewView(dvs[0], time.Now())
				return err == nil && len(v.Queued) == 0 && len(v.Outcomes) == 2
			})
			key := v.Decision.IdempotencyKey
			hookEntry := v.Decision.ID + "~webhook"
			var outcomes []actions.Outcome
			for _, o := range v.Outcomes {
				if o.Target == actions.TargetWebhook {
					outcomes = append(outcomes, o)
				}
			}
			if len(outcomes) != 1 || outcomes[0].Status != c.wantOutcome || outcomes[0].Attempts != c.wantAttempts || outcomes[0].Entry != hookEntry {
				t.Errorf("webhook outcomes = %+v, want one %s after %d attempts", outcomes, c.wantOutcome, c.wantAttempts)
			}
			var attempts []actions.Attempt
			for _, a := range v.Attempts {
				if a.Entry == hookEntry {
					attempts = append(attempts, a)
				}
			}
			if len(attempts) != c.wantAttempts {
				t.Fatalf("%d webhook attempts recorded, want %d: %+v", len(attempts), c.wantAttempts, attempts)
			}
			for i, a := range attempts {
				ok := c.wantOutcome == actions.OutcomeDelivered && i == len(attempts)-1
				if a.N != i+1 || a.OK != ok || a.HTTPStatus != c.statuses[min(i, len(c.statuses)-1)] {
					t.Errorf("attempt %d = %+v, want number %d ok=%v", i, a, i+1, ok)
				}
				if i > 0 && a.At.Sub(attempts[i-1].At) < 20*time.Millisecond {
					t.Errorf("attempt %d followed the previous after %s, before the backoff", i+1, a.At.Sub(attempts[i-1].At))
				}
			}
			reqs := rc.requests()
			if len(reqs) != c.wantAttempts {
				t.Fatalf("receiver got %d requests, want %d", len(reqs), c.wantAttempts)
			}
			for i, r := range reqs {
				if r.sigErr != nil {
					t.Errorf("request %d: %v", i+1, r.sigErr)
				}
				if r.key != key || r.delivery != hookEntry || r.attempt != strconv.Itoa(i+1) || r.body != reqs[0].body {
					t.Errorf("request %d: key %q delivery %q attempt %q, want %q %q %d and the same body each time", i+1, r.key, r.delivery, r.attempt, key, hookEntry, i+1)
				}
			}
			// The JetStream command went out once regardless.
			if n := len(d.actionsMsgs(t, actions.Subject(actions.ActionNotifyCS))); n != 1 {
				t.Errorf("ACTIONS holds %d commands, want 1", n)
			}
		})
	}
}

func TestVerifyRejectsTamperingAndOldTimestamps(t *testing.T) {
	body := []byte(`{"order_id":"SO-1"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	h := http.Header{}
	h.Set(actions.HeaderTimestamp, ts)
	h.Set(actions.HeaderSignature, actions.Sign([]byte("k"), ts, body))
	cases := []struct {
		name   string
		secret string
		body   string
		now    time.Time
		ok     bool
	}{
		{"valid", "k", string(body), now, true},
		{"other secret", "x", string(body), now, false},
		{"tampered body", "k", `{"order_id":"SO-2"}`, now, false},
		{"replayed later", "k", string(body), now.Add(10 * time.Minute), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := actions.Verify([]byte(c.secret), h, []byte(c.body), c.now, 5*time.Minute)
			if (err == nil) != c.ok {
				t.Errorf("Verify = %v, want ok=%v", err, c.ok)
			}
		})
	}
}
