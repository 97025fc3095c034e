package main

import (
	"net"
	"testing"
)

// TestConsoleURL: the console's address a person opens, for the listening
// addresses run may have.
func TestConsoleURL(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000/"},
		{"[::]:8080", "http://127.0.0.1:8080/"},
		{"10.1.2.3:80", "http://10.1.2.3:80/"},
	} {
		a, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := consoleURL("http", a); got != c.want {
			t.Errorf("consoleURL(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
	kv := []any{"admin", "demo", "admin_password", "s3cret"}
	if got := credential(kv, "admin_password"); got != "s3cret" {
		t.Errorf("credential = %v, want s3cret", got)
	}
}
