package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/whatif"
)

// recordedFromAPI reads the decisions a running instance recorded, through
// its API (/api/v1/decisions, paged, since the window's start), with the token
// of ORDERWATCH_API_TOKEN when set.
func recordedFromAPI(base string, getenv func(string) string) whatif.Recorded {
	c := newAPIClient(base, getenv)
	return func(ctx context.Context, since time.Time, yield func([]byte) error) error {
		q := url.Values{"since": {since.UTC().Format(time.RFC3339Nano)}, "limit": {fmt.Sprint(api.MaxListLimit)}}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := c.do(http.MethodGet, "/api/v1/decisions?"+q.Encode(), nil, &buf); err != nil {
				return fmt.Errorf("whatif: --recorded: %w (for a token-protected API export ORDERWATCH_API_TOKEN)", err)
			}
			var page struct {
				Decisions []struct {
					Decision json.RawMessage `json:"decision"`
				} `json:"decisions"`
				Next string `json:"next"`
			}
			if err := json.Unmarshal(buf.Bytes(), &page); err != nil {
				return fmt.Errorf("whatif: --recorded: decode /api/v1/decisions: %w", err)
			}
			for _, d := range page.Decisions {
				if err := yield(d.Decision); err != nil {
					return err
				}
			}
			if page.Next == "" || len(page.Decisions) == 0 {
				return nil
			}
			q.Set("cursor", page.Next)
		}
	}
}

// checkRecorded validates --recorded: the URL of a running instance.
func checkRecorded(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--recorded %q: want the URL of a running orderwatch (http://127.0.0.1:8080)", s)
	}
	return nil
}
