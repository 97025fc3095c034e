package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func testHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
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
		{"too big", "users: []\n#" + strings.Repeat("x", MaxUsersFileBytes), "more than 1048576"},
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
