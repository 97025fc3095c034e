package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
)

// TestExceptionsOfDataQuality: GET /api/v1/exceptions?class=data_quality
// lists the data-quality exceptions the pipeline opened, owned by the
// integration team, a page at a time (their keys hold a '/').
func TestExceptionsOfDataQuality(t *testing.T) {
	st := openStore(t)
	pol, err := actions.ParsePolicy([]byte(`
version: data-quality-api-test
escalation:
  integration: [{team: integration-desk, sla: 30m}]
data_quality: [invoiced_before_shipped, shipped_without_pick]
rules:
  - {id: shadow-only, action: notify_customer_service, mode: shadow, when: {risk: {gte: 0.99}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	p, err := process.New(process.Options{Store: st, Policy: actions.NewLive(pol), Clock: func() time.Time { return t0 },
		DeadLetter: func(context.Context, *process.Message, string, string) error {
			return fmt.Errorf("unexpected dead letter")
		}})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	send := func(typ, order string, at time.Duration) {
		t.Helper()
		seq++
		data := "{}"
		if typ == features.TypeOrderCreated {
			data = fmt.Sprintf(`{"warehouse":"DAL","ship_cutoff":%q}`, t0.Add(20*time.Hour).Format(time.RFC3339))
		}
		tok := features.OrderToken(order)
		m := &process.Message{Seq: uint64(seq), Subject: fmt.Sprintf("orders.%d.%s.%s", features.Partition(tok, 16), typ, tok),
			Data: fmt.Appendf(nil, `{"id":"e-%d","type":%q,"order_id":%q,"occurred_at":%q,"source":"wms","schema":1,"data":%s}`,
				seq, typ, order, t0.Add(at).Format(time.RFC3339), data)}
		if _, err := p.Process(context.Background(), []*process.Message{m}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []string{"SO-1", "SO-2", "SO-3"} {
		send(features.TypeOrderCreated, o, 0)
	}
	send(features.TypeShipmentConfirmed, "SO-1", time.Hour) // no pick
	send(features.TypeInvoiceCreated, "SO-2", time.Hour)    // not shipped
	send(features.TypePickConfirmed, "SO-3", time.Hour)
	send(features.TypeShipmentConfirmed, "SO-3", 2*time.Hour)

	srv := httptest.NewServer(api.Handler(api.Options{Store: st}))
	defer srv.Close()
	var got []string
	cursor := ""
	for range 5 {
		resp, err := http.Get(srv.URL + "/api/v1/exceptions?limit=1&class=data_quality&owner=integration&open=1&cursor=" + cursor)
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Exceptions []process.Exception `json:"exceptions"`
			Next       string              `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d %v", resp.StatusCode, err)
		}
		for _, x := range l.Exceptions {
			got = append(got, x.Order+":"+x.Deadline+":"+x.Kind+":"+x.Category)
		}
		if cursor = l.Next; cursor == "" {
			break
		}
	}
	want := []string{"SO-1:data_quality/shipped_without_pick:data_quality:data_quality", "SO-2:data_quality/invoiced_before_shipped:data_quality:data_quality"}
	if !slices.Equal(got, want) {
		t.Errorf("?class=data_quality: %v, want %v", got, want)
	}
}
