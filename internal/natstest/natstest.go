// Package natstest starts real nats-servers on 127.0.0.1 for tests: a single
// server set up as the test needs (TLS, NKeys, operator mode, JetStream off), or
// a JetStream cluster. Each stops when its test ends.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start starts a nats-server with JetStream on 127.0.0.1 and a random port,
// set up further by with (nil for none), and stops it when the test ends.
func Start(t testing.TB, with func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	if with != nil {
		with(opts)
	}
	return start(t, opts)
}

func start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s not ready within 10s", opts.ServerName)
	}
	return ns
}

// Cluster starts a JetStream cluster of n servers on 127.0.0.1, routed to each
// other, and waits until it has a JetStream meta leader (at most a minute).
// URLs gives their client URLs, comma-separated.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		servers[i] = start(t, &server.Options{
			ServerName: fmt.Sprintf("ow-%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "ow-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		})
	}
	js := JetStream(t, URLs(servers))
	// Until the cluster has elected its meta leader a JetStream request waits for
	// its whole timeout: ask with a short one.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's JetStream did not come up within a minute: %v", err)
		}
	}
}

// URLs joins the servers' client URLs with commas, as nats.Connect takes them.
func URLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// JetStream connects to url and returns its JetStream; the connection closes when
// the test ends.
func JetStream(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
