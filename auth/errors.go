package auth

import "errors"

var (
	// ErrBadCredentials is returned when a request carries a bearer token that is
	// neither the shared token nor a user's: it is refused, not treated as
	// anonymous.
	ErrBadCredentials = errors.New("auth: wrong bearer token")
	// ErrSignIn is returned by SignIn for an unknown name or a wrong password (the
	// two are not told apart).
	ErrSignIn = errors.New("auth: wrong name or password")
	// ErrThrottled is returned by SignIn while the name or the client address has
	// failed too often; a ThrottledError says how long to wait.
	ErrThrottled = errors.New("auth: too many failed sign-ins")
	// ErrInvalidUsers is returned when a users file or entry is not valid; the
	// message names the entry and what to change.
	ErrInvalidUsers = errors.New("auth: invalid users file")
)

// ThrottledError is ErrThrottled with the time left before the next attempt.
type ThrottledError struct {
	Wait int // seconds, at least 1
}

func (e *ThrottledError) Error() string {
	return ErrThrottled.Error() + ": try again later"
}

// Unwrap makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }
