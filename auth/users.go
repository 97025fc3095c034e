package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Bounds of a users file, checked where it is read.
const (
	MaxUsersFileBytes = 1 << 20 // 1 MiB
	MaxUsers          = 10000
	MaxTeamsPerUser   = 64
	MaxTokensPerUser  = 64
)

var (
	// userName: letters, digits, '.', '_', '@' and '-' (an e-mail address as a
	// proxy sends it fits), at most 128.
	userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
	// teamName is the policy's rule for a team of an escalation ladder.
	teamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// User is one entry of the users file.
type User struct {
	Name  string   `yaml:"name"`
	Role  Role     `yaml:"role"`
	Teams []string `yaml:"teams,omitempty"`
	// Password is a bcrypt hash; empty means the user cannot sign in with a
	// password (proxy or per-user tokens only).
	Password string  `yaml:"password,omitempty"`
	Tokens   []Token `yaml:"tokens,omitempty"`
}

// Token is a per-user API token as the file keeps it: its SHA-256, never the
// token.
type Token struct {
	SHA256  string    `yaml:"sha256"`
	Created time.Time `yaml:"created"`
}

// Users is a validated users file. It is not changed once built (With returns
// a new one), so it is safe for concurrent use.
type Users struct {
	list   []User
	byName map[string]int
	tokens []tokenRef
}

type tokenRef struct {
	sum  [sha256.Size]byte
	user int
}

type usersFile struct {
	Users []User `yaml:"users"`
}

// ParseUsers reads and validates a users file's content. Errors name the entry
// (its number, line and name) and what to change.
func ParseUsers(b []byte) (*Users, error) {
	if len(b) > MaxUsersFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidUsers, len(b), MaxUsersFileBytes)
	}
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w (want users: [{name, role, teams, password, tokens}])", ErrInvalidUsers, err)
	}
	// The entries' lines, for the messages.
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc)
	lines := entryLines(&doc)
	return newUsers(f.Users, func(i int) string {
		if i < len(lines) {
			return fmt.Sprintf("entry %d (line %d)", i+1, lines[i])
		}
		return fmt.Sprintf("entry %d", i+1)
	})
}

// entryLines finds the line of each entry of users: in a parsed document.
func entryLines(doc *yaml.Node) []int {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "users" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, e := range m.Content[i+1].Content {
				out = append(out, e.Line)
			}
			return out
		}
	}
	return nil
}

func newUsers(list []User, where func(int) string) (*Users, error) {
	if len(list) > MaxUsers {
		return nil, fmt.Errorf("%w: %d users, more than %d", ErrInvalidUsers, len(list), MaxUsers)
	}
	u := &Users{list: list, byName: make(map[string]int, len(list))}
	for i := range u.list {
		e := &u.list[i]
		if err := validUser(e); err != nil {
			return nil, fmt.Errorf("%w: %s%s: %w", ErrInvalidUsers, where(i), namedAs(e.Name), err)
		}
		if j, dup := u.byName[e.Name]; dup {
			return nil, fmt.Errorf("%w: %s%s: the name is also %s's: names are unique", ErrInvalidUsers, where(i), namedAs(e.Name), where(j))
		}
		u.byName[e.Name] = i
		for _, t := range e.Tokens {
			var ref tokenRef
			_, _ = hex.Decode(ref.sum[:], []byte(t.SHA256)) // checked by validUser
			ref.user = i
			u.tokens = append(u.tokens, ref)
		}
	}
	return u, nil
}

func namedAs(name string) string {
	if name == "" {
		return ""
	}
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return " " + strconv.Quote(name)
}

// validUser says what is wrong with one entry, or nil.
func validUser(e *User) error {
	switch {
	case e.Name == "":
		return errors.New("name is missing")
	case !userName.MatchString(e.Name):
		return errors.New("name: use letters, digits, '.', '_', '@' and '-', at most 128, starting with a letter or digit")
	case e.Name == ServiceName:
		return errors.New(`name "service" is the shared token's: choose another`)
	}
	switch e.Role {
	case RoleViewer, RoleAdmin:
		if len(e.Teams) > 0 {
			return fmt.Errorf("role %s takes no teams: teams are an approver's (an admin answers for every team)", e.Role)
		}
	case RoleApprover:
		if len(e.Teams) == 0 {
			return errors.New("role approver needs teams: list the teams (of the policy's escalation ladders) this person approves for")
		}
	case "":
		return errors.New("role is missing: want viewer, approver or admin")
	default:
		return fmt.Errorf("role %q: want viewer, approver or admin", shorten(string(e.Role)))
	}
	if len(e.Teams) > MaxTeamsPerUser {
		return fmt.Errorf("%d teams, more than %d", len(e.Teams), MaxTeamsPerUser)
	}
	for i, t := range e.Teams {
		if !teamName.MatchString(t) {
			return fmt.Errorf("teams[%d] %q: want a team name of letters, digits, '.', '_' or '-', at most 64 (the policy's rule)", i, shorten(t))
		}
		if slices.Index(e.Teams, t) != i {
			return fmt.Errorf("teams[%d] %q is listed twice", i, t)
		}
	}
	if e.Password != "" {
		if _, err := bcrypt.Cost([]byte(e.Password)); err != nil || !strings.HasPrefix(e.Password, "$2") {
			return errors.New("password is not a bcrypt hash: set it with `orderwatch users add NAME --role ROLE` (the file keeps hashes, never passwords)")
		}
	}
	if len(e.Tokens) > MaxTokensPerUser {
		return fmt.Errorf("%d tokens, more than %d: remove old ones", len(e.Tokens), MaxTokensPerUser)
	}
	for i, t := range e.Tokens {
		if len(t.SHA256) != 2*sha256.Size || strings.ToLower(t.SHA256) != t.SHA256 {
			return fmt.Errorf("tokens[%d].sha256: want 64 lowercase hex digits: create tokens with `orderwatch users token NAME`", i)
		}
		if _, err := hex.DecodeString(t.SHA256); err != nil {
			return fmt.Errorf("tokens[%d].sha256: want 64 lowercase hex digits: %w", i, err)
		}
	}
	return nil
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// LoadUsers reads and validates the users file at path.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read users file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxUsersFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: read users file %s: %w", path, err)
	}
	u, err := ParseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return u, nil
}

// Lookup returns the user named name.
func (u *Users) Lookup(name string) (User, bool) {
	if u == nil {
		return User{}, false
	}
	i, ok := u.byName[name]
	if !ok {
		return User{}, false
	}
	return u.list[i], true
}

// Len is the number of users.
func (u *Users) Len() int {
	if u == nil {
		return 0
	}
	return len(u.list)
}

// With returns the users with e added, or replacing the entry of the same name;
// u is not changed.
func (u *Users) With(e User) (*Users, error) {
	var list []User
	if u != nil {
		list = slices.Clone(u.list)
	}
	if i, ok := u.index(e.Name); ok {
		list[i] = e
	} else {
		list = append(list, e)
	}
	return newUsers(list, func(i int) string { return fmt.Sprintf("entry %d", i+1) })
}

func (u *Users) index(name string) (int, bool) {
	if u == nil {
		return 0, false
	}
	i, ok := u.byName[name]
	return i, ok
}

// Marshal returns the users file's content.
func (u *Users) Marshal() ([]byte, error) {
	f := usersFile{Users: []User{}}
	if u != nil {
		f.Users = u.list
	}
	var buf bytes.Buffer
	buf.WriteString("# orderwatch users (README \"People and roles\"): edit with `orderwatch users add|token`.\n")
	buf.WriteString("# Passwords are bcrypt hashes and tokens SHA-256 sums: the file holds no secret, keep it 0600 anyway.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("auth: encode users file: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteUsers writes u to path atomically (a temporary file renamed over it),
// readable by its owner only.
func WriteUsers(path string, u *Users) error {
	b, err := u.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*.yaml")
	if err != nil {
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: write users file %s: %w", path, err)
	}
	return nil
}
