package auth

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// testHashes are bcrypt hashes of the tests' passwords at the least cost a
// users file takes, made once: under -race each costs about a second.
var testHashes = map[string]string{
	"correct horse": "$2a$10$/IWamMqXFhbFR/1vqaC9rOD8tWcw85PxLMWDOj.HSmXxXTvmi6m2y",
	"viewer pass":   "$2a$10$eAPOrCfCcPa0Ax4SaIIWa.aJoasZ5sZTYTdHxLGvmzibbv9pTOKUq",
}

func testHash(t *testing.T, pw string) string {
	t.Helper()
	if h, ok := testHashes[pw]; ok {
		return h
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), MinUsersPasswordCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestUsersFile: a valid file loads with every entry; each kind of bad entry is
// refused with a message naming the entry (number, line, name) and what to do.
func TestUsersFile(t *testing.T) {
	hash := testHash(t, "correct horse")
	valid := `users:
- {name: amy, role: approver, teams: [credit-desk, finance-controller], password: "` + hash + `"}
- {name: root, role: admin, password: "` + hash + `"}
- name: ops@example.com
  role: viewer
  tokens: [{sha256: "` + strings.Repeat("ab", 32) + `", created: 2026-12-01T10:00:00Z}]
`
	u, err := ParseUsers([]byte(valid))
	if err != nil {
		t.Fatalf("valid file: %v", err)
	}
	if amy, ok := u.Lookup("amy"); !ok || amy.Role != RoleApprover || len(amy.Teams) != 2 || u.Len() != 3 {
		t.Errorf("amy = %+v %v, %d users; want the approver of two teams among 3", amy, ok, u.Len())
	}

	cases := []struct{ name, file, says string }{
		{"unknown field", "users:\n- {name: amy, role: admin, pasword: x}\n", "pasword"},
		{"no name", "users:\n- {role: admin}\n", "entry 1 (line 2): name is missing"},
		{"bad name", "users:\n- {name: viewer, role: viewer}\n- {name: 'a b', role: admin}\n", `entry 2 (line 3) "a b": name: use letters`},
		{"service", "users:\n- {name: service, role: admin}\n", `"service" is the shared token's`},
		{"no role", "users:\n- {name: amy}\n", `"amy": role is missing`},
		{"unknown role", "users:\n- {name: amy, role: boss}\n", `role "boss": want viewer, approver or admin`},
		{"approver without teams", "users:\n- {name: amy, role: approver}\n", "approver needs teams"},
		{"viewer with teams", "users:\n- {name: amy, role: viewer, teams: [x]}\n", "takes no teams"},
		{"bad team", "users:\n- {name: amy, role: approver, teams: ['-x']}\n", `teams[0] "-x"`},
		{"team twice", "users:\n- {name: amy, role: approver, teams: [x, x]}\n", "listed twice"},
		{"plain password", "users:\n- {name: amy, role: admin, password: hunter22}\n", "not a bcrypt hash"},
		{"bad token", "users:\n- {name: amy, role: admin, tokens: [{sha256: abc}]}\n", "tokens[0].sha256"},
		{"duplicate", "users:\n- {name: amy, role: admin}\n- {name: bob, role: admin}\n- {name: amy, role: viewer}\n", `entry 3 (line 4) "amy": the name is also entry 1 (line 2)'s`},
		{"too big", "users: []\n#" + strings.Repeat("x", MaxUsersFileBytes), "larger than 1 MiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseUsers([]byte(c.file))
			if err == nil || !errors.Is(err, ErrInvalidUsers) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("err = %v, want ErrInvalidUsers saying %q", err, c.says)
			}
		})
	}
}

// TestUsersFileRoundTrip: With adds or replaces an entry, WriteUsers writes a
// 0600 file that LoadUsers reads back the same, with the token's hash only.
func TestUsersFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	plain, tok := NewToken(time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC))
	u, err := (*Users)(nil).With(User{Name: "amy", Role: RoleApprover, Teams: []string{"credit-desk"}, Password: testHash(t, "correct horse"), Tokens: []Token{tok}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err = u.With(User{Name: "amy", Role: RoleAdmin, Tokens: []Token{tok}}); err != nil || u.Len() != 1 {
		t.Fatalf("replace amy: %v, %d users", err, u.Len())
	}
	if err := WriteUsers(path, u); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v, want 0600", err, fi)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), plain) {
		t.Error("the file holds the token itself")
	}
	back, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if amy, ok := back.userByToken(plain); !ok || amy.Role != RoleAdmin {
		t.Errorf("token of amy after a round trip: %+v %v", amy, ok)
	}
	if _, ok := back.userByToken(plain + "x"); ok {
		t.Error("a wrong token matched")
	}
}

// TestUsersFileHostile: a users file written to hurt is refused, quickly and
// within bounded memory, with a message that names what is wrong and carries
// no control character of the file (it is printed on a terminal and logged):
// anchors and aliases (a YAML bomb, or one entry repeated 200,000 times), more
// than MaxUsers entries, a bcrypt cost a sign-in would spend minutes on (or
// one too weak), control characters in a key, thousands of unknown keys.
func TestUsersFileHostile(t *testing.T) {
	salt := strings.Repeat("a", 53) // 22 of salt and 31 of hash, bcrypt's base64
	var aliases strings.Builder
	aliases.WriteString("users:\n- &u {name: a, role: viewer}\n")
	for aliases.Len() < MaxUsersFileBytes-8 {
		aliases.WriteString("- *u\n")
	}
	bomb := "users:\n- name: amy\n  role: approver\n  teams: &a0 [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9]\n"
	for i := 1; i < 9; i++ {
		bomb += fmt.Sprintf("- {name: u%d, role: approver, teams: &a%d [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	var many strings.Builder
	many.WriteString("users:\n")
	for i := range MaxUsers + 1 {
		fmt.Fprintf(&many, "- {name: u%d, role: viewer}\n", i)
	}
	var unknown strings.Builder
	unknown.WriteString("users:\n- name: amy\n  role: admin\n")
	for i := range 20000 {
		fmt.Fprintf(&unknown, "  k%d: 1\n", i)
	}
	cases := []struct{ name, file, says string }{
		{"aliases", aliases.String(), "line 2: anchors and aliases"},
		{"alias bomb", bomb, "line 4: anchors and aliases"},
		{"merge key", "base: &b {role: admin}\nusers:\n- {name: amy, <<: *b}\n", "anchors and aliases"},
		{"too many users", many.String(), "10001 users, more than 10000"},
		{"cost 31", "users:\n- {name: amy, role: admin, password: \"$2a$31$" + salt + "\"}\n", `entry 1 (line 2) "amy": password: bcrypt cost 31, want 10 to 16`},
		{"cost 4", "users:\n- {name: amy, role: admin, password: \"$2a$04$" + salt + "\"}\n", "bcrypt cost 4, want 10 to 16"},
		{"control characters in a key", "users:\n- {name: amy, role: admin, \"\\e[2J\\e[31mred\": 1}\n", `line 2: field "\x1b[2J\x1b[31mred" not found`},
		{"control characters in a role", "users:\n- {name: amy, role: \"admin\\e[2J\"}\n", `role "admin\x1b[2J"`},
		{"raw control character", "users:\n- {name: amy, role: admin}\x1b[31m\n", "control characters are not allowed"},
		{"deep nesting", "users: " + strings.Repeat("[", 100000), "exceeded max depth"},
		{"thousands of unknown keys", unknown.String(), "line 2: a mapping of 20002 keys, more than 16"},
		{"unknown keys", "users:\n- {name: amy, role: admin, a: 1, b: 2, c: 3, d: 4, e: 5}\n", `line 2: field "a" not found; line 2: field "b" not found; line 2: field "c" not found; and 2 more`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseUsers([]byte(c.file))
			if err == nil || !errors.Is(err, ErrInvalidUsers) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %.300q, want ErrInvalidUsers saying %q", err, c.says)
			}
			msg := err.Error()
			if i := strings.IndexFunc(msg, unicode.IsControl); i >= 0 {
				t.Errorf("the message has control character %q: %q", msg[i], msg)
			}
			if len(msg) > 1000 {
				t.Errorf("the message is %d bytes, want at most 1000: %.200q…", len(msg), msg)
			}
		})
	}
}

// TestLoadUsersHostile: LoadUsers refuses a 200 MB file (sparse: read no
// further than the bound), a file of a million users, and what is not a
// regular file (a FIFO would block the start until something writes to it),
// saying what to do; it never hangs.
func TestLoadUsersHostile(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, []byte("users:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 200<<20); err != nil {
		t.Fatal(err)
	}
	million := filepath.Join(dir, "million.yaml")
	f, err := os.Create(million)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "users:")
	for i := range 1000000 {
		fmt.Fprintf(w, "- {name: u%d, role: viewer}\n", i)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, says string }{
		{huge, "larger than 1 MiB"},
		{million, "larger than 1 MiB"},
		{fifo, "not a regular file"},
		{dir, "not a regular file"},
	} {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := LoadUsers(c.path)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !errors.Is(err, ErrInvalidUsers) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), c.path) {
					t.Errorf("LoadUsers(%s) = %v, want ErrInvalidUsers naming the file and saying %q", c.path, err, c.says)
				}
			case <-time.After(10 * time.Second):
				// Unblock the reader (a FIFO's open waits for a writer), then fail.
				if w, err := os.OpenFile(c.path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				<-done
				t.Errorf("LoadUsers(%s) still reads after 10 s", c.path)
			}
		})
	}
}
