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
	"unicode"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Bounds of a users file, checked where it is read.
const (
	MaxUsersFileBytes = 1 << 20 // 1 MiB
	MaxUsers          = 10000
	MaxTeamsPerUser   = 64
	MaxTokensPerUser  = 64
	// MinUsersPasswordCost and MaxUsersPasswordCost bound the bcrypt cost of a
	// password hash in the file: what `orderwatch users add --cost` writes. A
	// higher cost would make each sign-in of that user (or with its name) spend
	// minutes of a core.
	MinUsersPasswordCost = 10
	MaxUsersPasswordCost = 16
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
// (its number, line and name) and what to change, and carry no control
// character of the file. Anchors and aliases are refused before anything is
// decoded: a file of `users add` never has them, and they are how a small file
// becomes a large document.
func ParseUsers(b []byte) (*Users, error) {
	if len(b) > MaxUsersFileBytes {
		return nil, tooLarge(int64(len(b)))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s (want users: [{name, role, teams, password, tokens}])", ErrInvalidUsers, yamlMessage(err))
	}
	if line, msg := checkShape(&doc); msg != "" {
		return nil, fmt.Errorf("%w: line %d: %s", ErrInvalidUsers, line, msg)
	}
	entries := usersEntries(&doc)
	if len(entries) > MaxUsers {
		return nil, fmt.Errorf("%w: %d users, more than %d", ErrInvalidUsers, len(entries), MaxUsers)
	}
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s (want users: [{name, role, teams, password, tokens}])", ErrInvalidUsers, yamlMessage(err))
	}
	return newUsers(f.Users, func(i int) string {
		if i < len(entries) {
			return fmt.Sprintf("entry %d (line %d)", i+1, entries[i].Line)
		}
		return fmt.Sprintf("entry %d", i+1)
	})
}

func tooLarge(size int64) error {
	return fmt.Errorf("%w: larger than 1 MiB (%d bytes, at most %d): a users file holds at most %d users: remove the entries nobody uses", ErrInvalidUsers, size, MaxUsersFileBytes, MaxUsers)
}

// usersEntries returns the entries of users: in a parsed document.
func usersEntries(doc *yaml.Node) []*yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "users" && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1].Content
		}
	}
	return nil
}

// maxMappingKeys bounds the keys of a mapping of the file: an entry has five
// fields. The decoder's check for a repeated key takes the square of a
// mapping's keys, so a 1 MiB mapping would hold the start for seconds.
const maxMappingKeys = 16

// checkShape says what makes a parsed document no users file before it is
// decoded, and the line: an anchor or alias (how a small file becomes a large
// document), a mapping of more than maxMappingKeys keys. The parser bounds the
// depth of a document (10,000), so the recursion is bounded too.
func checkShape(n *yaml.Node) (line int, msg string) {
	switch {
	case n.Kind == yaml.AliasNode || n.Anchor != "":
		return max(n.Line, 1), "anchors and aliases (& and *) are not allowed in a users file: write each entry out"
	case n.Kind == yaml.MappingNode && len(n.Content) > 2*maxMappingKeys:
		return max(n.Line, 1), fmt.Sprintf("a mapping of %d keys, more than %d: an entry has name, role, teams, password, tokens", len(n.Content)/2, maxMappingKeys)
	}
	for _, c := range n.Content {
		if line, msg := checkShape(c); msg != "" {
			return line, msg
		}
	}
	return 0, ""
}

// Bounds of the YAML parser's message in an error.
const maxYAMLErrors = 3

var unknownField = regexp.MustCompile(`^(line \d+): field (.*) not found in type \S+$`)

// yamlMessage is the YAML parser's message for a person: at most
// maxYAMLErrors of its errors on one line, an unknown field's name quoted and
// any control character of the file escaped.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return printable(err.Error())
	}
	var parts []string
	for _, e := range te.Errors[:min(len(te.Errors), maxYAMLErrors)] {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			e = m[1] + ": field " + strconv.Quote(shorten(m[2])) + " not found"
		}
		parts = append(parts, printable(shorten(e)))
	}
	msg := "yaml: " + strings.Join(parts, "; ")
	if n := len(te.Errors) - maxYAMLErrors; n > 0 {
		msg += fmt.Sprintf("; and %d more", n)
	}
	return msg
}

// printable escapes the control characters of s, as %q would.
func printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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
		cost, err := bcrypt.Cost([]byte(e.Password))
		if err != nil || !strings.HasPrefix(e.Password, "$2") {
			return errors.New("password is not a bcrypt hash: set it with `orderwatch users add NAME --role ROLE` (the file keeps hashes, never passwords)")
		}
		if cost < MinUsersPasswordCost || cost > MaxUsersPasswordCost {
			return fmt.Errorf("password: bcrypt cost %d, want %d to %d (a sign-in spends 2^cost rounds): set it again with `orderwatch users add NAME --role ROLE`", cost, MinUsersPasswordCost, MaxUsersPasswordCost)
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

// LoadUsers reads and validates the users file at path: a regular file of at
// most MaxUsersFileBytes (anything else is refused before it is read: a FIFO
// would block until something writes to it).
func LoadUsers(path string) (*Users, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read users file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("users file %s: %w: not a regular file (%s): give --users the YAML file itself", path, ErrInvalidUsers, fi.Mode().Type())
	}
	if fi.Size() > MaxUsersFileBytes {
		return nil, fmt.Errorf("users file %s: %w", path, tooLarge(fi.Size()))
	}
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
