package auth

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// DefaultPasswordCost is the bcrypt cost of the passwords `orderwatch users add`
// sets (about a quarter of a second on a laptop core).
const DefaultPasswordCost = 12

// Bounds of a password: bcrypt reads 72 bytes at most.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// HashPassword returns the bcrypt hash of password at cost (0 means
// DefaultPasswordCost).
func HashPassword(password string, cost int) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	if cost == 0 {
		cost = DefaultPasswordCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

func checkPassword(p string) error {
	switch {
	case len(p) < MinPasswordLen:
		return fmt.Errorf("auth: password shorter than %d bytes: choose a longer one", MinPasswordLen)
	case len(p) > MaxPasswordLen:
		return fmt.Errorf("auth: password longer than %d bytes (bcrypt reads no more): choose a shorter one", MaxPasswordLen)
	case !utf8.ValidString(p):
		return errors.New("auth: password is not valid UTF-8")
	}
	return nil
}

// dummyHash (cost DefaultPasswordCost, of a password nobody has) is compared
// when the name is unknown, so that a sign-in takes as long whether the name
// exists or not.
const dummyHash = "$2a$12$WpQAMcps74ilkJrzy7VTZOiKImTGuTNKaXRYioIiOpRSpmJfF23ti"

// passwordMatches compares password with a bcrypt hash ("" never matches, after
// the same work).
func passwordMatches(hash, password string) bool {
	if hash == "" || len(password) > MaxPasswordLen {
		_ = bcrypt.CompareHashAndPassword([]byte(dummyHash), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
