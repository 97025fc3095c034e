package cluster

import "errors"

// ErrInvalidOptions is returned, wrapped with the field at fault, by New when
// the Options are wrong.
var ErrInvalidOptions = errors.New("cluster: invalid options")

// ErrRunning is returned by Run when it was called before on the same
// Membership: a Membership runs once; make a new one to rejoin.
var ErrRunning = errors.New("cluster: Run already called on this membership")
