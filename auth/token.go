package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// userTokenPrefix starts every per-user API token, so that one found in a log or
// a repository is recognised.
const userTokenPrefix = "owu_"

// NewToken returns a new per-user API token, to show once, and the entry the
// users file keeps for it (its SHA-256).
func NewToken(now time.Time) (string, Token) {
	plain := userTokenPrefix + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	sum := sha256.Sum256([]byte(plain))
	return plain, Token{SHA256: hex.EncodeToString(sum[:]), Created: now.UTC().Truncate(time.Second)}
}

// userByToken returns the user whose token plain is. Every stored hash is
// compared, in constant time, whatever matches.
func (u *Users) userByToken(plain string) (User, bool) {
	if u == nil || !strings.HasPrefix(plain, userTokenPrefix) {
		return User{}, false
	}
	sum := sha256.Sum256([]byte(plain))
	found := -1
	for _, t := range u.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found = t.user
		}
	}
	if found < 0 {
		return User{}, false
	}
	return u.list[found], true
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

// IsUserToken reports whether tok has the form of a per-user API token (whose
// requests need no declared "by": the user is known).
func IsUserToken(tok string) bool { return strings.HasPrefix(tok, userTokenPrefix) }
