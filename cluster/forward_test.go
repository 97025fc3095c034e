package cluster

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/internal/natstest"
)

// TestPeersForwardARequest: a request forwarded to another member is served by
// that member's handler, with the method, path, query, body and token, marked
// as forwarded; its answer comes back whole; a member that serves nothing says
// so; an answer larger than NATS carries comes back as 502 with why.
func TestPeersForwardARequest(t *testing.T) {
	ns := natstest.Start(t, nil)
	connect := func() (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	ncA, jsA := connect()
	ncB, jsB := connect()
	a := startMember(t, jsA, "a")
	b := startMember(t, jsB, "b")
	part := func(string) int { return 0 }
	pa := NewPeers(ncA, a.m, part, nil)
	pb := NewPeers(ncB, b.m, part, nil)
	var seen *http.Request
	var seenBody, seenFrom string
	big := strings.Repeat("x", int(ncB.MaxPayload()))
	err := pb.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen, seenBody = r, string(body)
		seenFrom, _ = ForwardedFrom(r.Context())
		if r.URL.Path == "/panic" {
			panic("a handler bug")
		}
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"served_by":"b"}`)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pb.Stop() })

	req, _ := http.NewRequest(http.MethodPost, "http://a/api/v1/approvals/d-1/approve?x=1", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderPrincipal, "sealed-by-a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := pa.Forward(ctx, "b", req, []byte(`{"by":"me"}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != http.StatusCreated || string(f.Body) != `{"served_by":"b"}` || f.ContentType != "application/json" {
		t.Errorf("answer %+v, want b's 201 with its body", f)
	}
	if seen.Method != http.MethodPost || seen.URL.RequestURI() != "/api/v1/approvals/d-1/approve?x=1" || seenBody != `{"by":"me"}` ||
		seen.Header.Get("Authorization") != "Bearer tok" || seen.Header.Get(HeaderForwarded) != "a" {
		t.Errorf("b served %s %s body %q auth %q forwarded %q", seen.Method, seen.URL, seenBody, seen.Header.Get("Authorization"), seen.Header.Get(HeaderForwarded))
	}
	if seenFrom != "a" || seen.Header.Get(HeaderPrincipal) != "sealed-by-a" {
		t.Errorf("b served a request forwarded from %q with principal %q, want from a with a's principal", seenFrom, seen.Header.Get(HeaderPrincipal))
	}
	if _, ok := ForwardedFrom(req.Context()); ok {
		t.Error("a request that did not come over NATS is marked forwarded")
	}

	if _, err := pa.Forward(ctx, "nobody", req, nil); err == nil {
		t.Error("forwarding to a member that serves nothing succeeded")
	}

	// A handler that panics fails its request, and b still answers.
	panicReq, _ := http.NewRequest(http.MethodGet, "http://a/panic", nil)
	if _, err := pa.Forward(ctx, "b", panicReq, nil); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("a request whose handler panicked: err %v, want b to refuse it with 500", err)
	}

	bigReq, _ := http.NewRequest(http.MethodGet, "http://a/big", nil)
	f, err = pa.Forward(ctx, "b", bigReq, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != http.StatusBadGateway || !strings.Contains(string(f.Body), "more than NATS carries") {
		t.Errorf("an answer larger than max_payload came back as %d %s, want 502 saying why", f.Status, f.Body)
	}
}
