package api_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/api"
)

// serveWith serves h on 127.0.0.1 with the server NewServer makes from o.
func serveWith(t *testing.T, h http.Handler, o api.ServerOptions) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(h, o)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// heldOpen is how long a test waits for the server to close a connection before
// it calls the connection held: far above the timeouts under test.
const heldOpen = 15 * time.Second

// closedByServer reads from conn until the server closes it, and reports whether
// it did so before heldOpen, and what it sent.
func closedByServer(t *testing.T, conn net.Conn) (closed bool, got string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(heldOpen)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, string(b)
	}
	return true, string(b)
}

// trickle writes data one byte every gap until it is all sent, the connection
// fails, or stop is closed.
func trickle(conn net.Conn, data string, gap time.Duration, stop <-chan struct{}) {
	for i := range len(data) {
		select {
		case <-stop:
			return
		case <-time.After(gap):
		}
		if _, err := conn.Write([]byte{data[i]}); err != nil {
			return
		}
	}
}

// TestSlowAndIdleConnectionsAreClosed: a connection that trickles its header,
// one that trickles its body, and a kept-alive one that sends nothing more are
// each closed by the server's timeouts instead of being held (the issue held 500
// of them). The trickles last longer than heldOpen, so only the server can end
// them in time.
func TestSlowAndIdleConnectionsAreClosed(t *testing.T) {
	readAll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "read it all")
	})
	addr := serveWith(t, readAll, api.ServerOptions{
		ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout:       time.Second,
		IdleTimeout:       300 * time.Millisecond,
	})
	long := func(prefix string, n int) string {
		b := []byte(prefix)
		for range n {
			b = append(b, 'x')
		}
		return string(b)
	}
	cases := []struct {
		name    string
		sent    string // sent at once
		trickle string // then one byte every 100ms
	}{
		// 300 bytes at 10/s: 30s of header, twice heldOpen.
		{"header trickles", "", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + long("", 300)},
		{"body trickles", "POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n", long("", 300)},
		{"kept alive and idle", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, c.sent); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go trickle(conn, c.trickle, 100*time.Millisecond, stop)
			if c.trickle == "" {
				// The one request is answered; the connection then stays idle.
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("first request: %d, want 200", resp.StatusCode)
				}
			}
			closed, got := closedByServer(t, conn)
			if !closed {
				t.Fatalf("the server held the connection for %v (it sent %q); want it closed by its timeouts", heldOpen, got)
			}
			if c.trickle != "" && len(got) > 0 && got[:12] == "HTTP/1.1 200" {
				t.Errorf("the trickled request was served: %q", got)
			}
		})
	}
}

// TestSlowReaderIsCutOff: a client that asks for a big answer and does not read
// it holds its handler only until the write timeout; the handler's writes then
// fail and it returns.
func TestSlowReaderIsCutOff(t *testing.T) {
	returned := make(chan error, 1)
	big := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1024 { // 64 MiB, far above the sockets' buffers
			if _, err := w.Write(chunk); err != nil {
				returned <- err
				return
			}
		}
		returned <- nil
	})
	addr := serveWith(t, big, api.ServerOptions{WriteTimeout: time.Second})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-returned:
		if err == nil {
			t.Error("64 MiB written to a client that reads nothing")
		}
	case <-time.After(heldOpen):
		t.Fatalf("the handler was still writing to a client that reads nothing after %v", heldOpen)
	}
}
