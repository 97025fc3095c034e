package actions

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers. The body is the command's JSON.
const (
	HeaderSignature   = "X-Orderwatch-Signature"       // sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">
	HeaderTimestamp   = "X-Orderwatch-Timestamp"       // unix seconds when the attempt was sent
	HeaderIdempotency = "X-Orderwatch-Idempotency-Key" // the command's idempotency key: deduplicate by it
	HeaderDelivery    = "X-Orderwatch-Delivery"        // the outbox entry id
	HeaderAttempt     = "X-Orderwatch-Attempt"         // 1 for the first attempt
	HeaderAction      = "X-Orderwatch-Action"
)

// Sign returns the signature header value of a webhook body sent at timestamp ts
// (unix seconds, as sent in X-Orderwatch-Timestamp).
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request as a receiver should: the signature matches the
// body and timestamp under secret, and the timestamp is within tolerance of now
// (which stops replays of old requests).
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("actions: webhook timestamp %q is not unix seconds", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("actions: webhook timestamp %s is %s away from now, more than %s", ts, d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return errors.New("actions: webhook signature does not match")
	}
	return nil
}

// hook is a policy webhook with its secret resolved.
type hook struct {
	*Webhook
	secret []byte
}

// post makes one attempt to deliver body to h and returns the HTTP status (0 when
// there was no answer).
func post(ctx context.Context, c *http.Client, h *hook, j *job, entry string, attempt int, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(j.Command))
	if err != nil {
		return 0, fmt.Errorf("build request to %s: %w", h.URL, err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "orderwatch")
	req.Header.Set(HeaderAction, j.Action)
	req.Header.Set(HeaderDelivery, entry)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(HeaderIdempotency, j.MsgID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(h.secret, ts, j.Command))
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post to %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	msg := strings.TrimSpace(string(snippet))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return resp.StatusCode, fmt.Errorf("%s answered %s: %s", h.URL, resp.Status, msg)
}

// permanent reports whether an HTTP status says a retry cannot help: a client
// error other than timeout, too early and too many requests.
func permanent(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout &&
		status != http.StatusTooEarly && status != http.StatusTooManyRequests
}

// backoff is the wait after failed attempt n (from 1): base doubled per attempt,
// capped.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < ceiling; i++ {
		d *= 2
	}
	return min(d, ceiling)
}
