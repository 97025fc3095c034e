package auth

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseUsers: any input is refused with an error or accepted as a users
// file whose marshalled form parses back to the same users; nothing panics.
func FuzzParseUsers(f *testing.F) {
	f.Add([]byte("users:\n- {name: amy, role: approver, teams: [credit-desk]}\n"))
	f.Add([]byte("users:\n- {name: root, role: admin, tokens: [{sha256: " + string(bytes.Repeat([]byte("ab"), 32)) + "}]}\n"))
	f.Add([]byte("users: [{name: amy}]"))
	f.Add([]byte("users: {}"))
	f.Add([]byte(""))
	f.Add([]byte("users:\n- &u {name: amy, role: viewer}\n- *u\n"))
	f.Add([]byte("users:\n- {name: amy, role: admin, password: \"$2a$31$" + string(bytes.Repeat([]byte("a"), 53)) + "\"}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUsers(b)
		if err != nil {
			return
		}
		out, err := u.Marshal()
		if err != nil {
			t.Fatalf("marshal a parsed file: %v", err)
		}
		back, err := ParseUsers(out)
		if err != nil || back.Len() != u.Len() {
			t.Fatalf("the marshalled file does not parse back: %v\n%s", err, out)
		}
	})
}

// FuzzSessionCookie: a cookie value is a session only when this key signed it.
func FuzzSessionCookie(f *testing.F) {
	a, err := New(Options{Clock: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a.sealSession(session{id: "x", name: "amy", exp: time.Unix(1_900_000_000, 0)}))
	f.Add("")
	f.Add("a.b")
	f.Add("MXx4fDE5MDAwMDAwMDB8YW15.AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		s, ok := a.openSession(v)
		if ok && a.sealSession(s) != v {
			t.Fatalf("%q opened as %+v, which this key did not sign", v, s)
		}
		_, _ = a.OpenPrincipal(v)
	})
}
