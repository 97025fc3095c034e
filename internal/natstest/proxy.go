package natstest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections on 127.0.0.1 to target until severed: a
// client cut off from the server while both keep running.
type Proxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

// StartProxy listens on 127.0.0.1 and forwards to target until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &Proxy{l: l, target: target}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			px.mu.Lock()
			if px.down {
				px.mu.Unlock()
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				px.mu.Unlock()
				c.Close()
				continue
			}
			px.conns = append(px.conns, c, s)
			px.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { l.Close(); px.Sever(); wg.Wait() })
	return px
}

// URL is the nats:// URL of the proxy.
func (px *Proxy) URL() string { return "nats://" + px.l.Addr().String() }

// Sever closes every forwarded connection and refuses new ones until Restore.
func (px *Proxy) Sever() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.down = true
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
}

// Restore accepts connections again.
func (px *Proxy) Restore() {
	px.mu.Lock()
	px.down = false
	px.mu.Unlock()
}
