package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// checkAtRiskQueue checks the at-risk queue, GET /api/v1/orders, of a group
// after takeovers and give-backs: every member lists the group's open orders,
// each once, in both sorts; then orders created anew show on every member.
// A member's index that kept an order of a partition it gave up, or missed
// one it rebuilt, lists another set.
func checkAtRiskQueue(t *testing.T, ref map[string]*features.OrderState, prod *producer, children ...*runChild) {
	t.Helper()
	var want []string
	for id, s := range ref {
		if s.Open() {
			want = append(want, id)
		}
	}
	for i, c := range children {
		for _, sort := range []string{"risk", "cutoff"} {
			if got := queueIDs(t, c, sort, get); !slices.Equal(got, sorted(want)) {
				t.Errorf("instance %d, sort=%s: the queue lists %d orders %v, the group holds %d open %v",
					i, sort, len(got), got[:min(5, len(got))], len(want), want[:min(5, len(want))])
			}
		}
	}
	// New orders, spread over the partitions of both members.
	var msgs []faultMsg
	cutoff := time.Now().Add(4 * time.Hour).UTC().Format(time.RFC3339)
	for i := range 40 {
		id := fmt.Sprintf("SO-queue-%02d", i)
		msgs = append(msgs, faultMsg{subject: features.Subject("order.created", id), msgID: "e-" + id, kind: "event",
			data: fmt.Appendf(nil, `{"id":"e-%s","type":"order.created","schema":1,"occurred_at":%q,"source":"erp","order_id":%q,"data":{"warehouse":"DAL","ship_cutoff":%q,"customer_tier":"gold"}}`,
				id, time.Now().UTC().Format(time.RFC3339Nano), id, cutoff)})
		want = append(want, id)
	}
	if err := <-prod.publishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	want = sorted(want)
	for i, c := range children {
		var got []string
		waitForWithin(t, 60*time.Second, fmt.Sprintf("instance %d to list the %d open orders", i, len(want)), func() bool {
			got = queueIDs(t, c, "cutoff", get)
			return len(got) >= len(want)
		})
		if !slices.Equal(got, want) {
			t.Errorf("instance %d lists %d orders %v, want %d %v", i, len(got), got, len(want), want)
		}
	}
	// Each member alone lists the orders of its partitions: none twice, none
	// left out, none it no longer owns.
	var union []string
	for i, c := range children {
		local := queueIDs(t, c, "risk", getLocal)
		if len(local) == 0 {
			t.Errorf("instance %d holds none of the open orders", i)
		}
		union = append(union, local...)
	}
	if union = sorted(union); !slices.Equal(union, want) {
		t.Errorf("the members alone list %d orders %v, want each of the %d open once %v", len(union), union, len(want), want)
	}
}

// queueIDs walks the at-risk queue of an instance in pages of 7 with fetch
// (get for the group's, getLocal for the instance's own) and returns the
// order ids it lists, sorted.
func queueIDs(t *testing.T, c *runChild, sort string, fetch func(string) (int, string)) []string {
	t.Helper()
	got := []string{}
	cursor := ""
	for range 1000 {
		code, body := fetch(c.base + "/api/v1/orders?limit=7&sort=" + sort + "&cursor=" + url.QueryEscape(cursor))
		if code != 200 {
			t.Fatalf("GET /api/v1/orders: %d %s", code, body)
		}
		var page struct {
			Orders []struct {
				OrderID string `json:"order_id"`
			} `json:"orders"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Orders {
			got = append(got, o.OrderID)
		}
		if cursor = page.Next; cursor == "" {
			return sorted(got)
		}
	}
	t.Fatal("more than 1000 pages in the at-risk queue")
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}
