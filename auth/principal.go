// Package auth says who makes a request of orderwatch's HTTP API and what they may
// do: people from a users file (passwords, per-user API tokens, signed session
// cookies, or a trusted reverse proxy's header) and the machine clients of the
// shared ORDERWATCH_API_TOKEN, recorded as "service". api resolves every request's
// Principal with an Authenticator; cmd/orderwatch manages the users file with it.
package auth

import (
	"context"
	"slices"
)

// Role is what a principal may do.
type Role string

// Roles, from the least to the most rights. Service is the shared token's: it
// keeps every right the token had before people signed in.
const (
	RoleViewer   Role = "viewer"   // reads
	RoleApprover Role = "approver" // reads; approves, rejects and acknowledges for its teams
	RoleAdmin    Role = "admin"    // everything: kill switch, policy reload, model activation, any team
	RoleService  Role = "service"  // the shared token: a machine client with an admin's rights
)

// ServiceName is the name of the shared token's principal.
const ServiceName = "service"

// How a principal was resolved: the Via of a Principal.
const (
	ViaSharedToken = "shared-token" // the shared ORDERWATCH_API_TOKEN
	ViaUserToken   = "user-token"   // a per-user API token
	ViaSession     = "session"      // a signed session cookie
	ViaProxy       = "proxy"        // a trusted reverse proxy's header
	ViaPeer        = "peer"         // another member of the group, which resolved it
)

// Principal is who makes a request. The zero value is nobody.
type Principal struct {
	Name  string   `json:"name"`
	Role  Role     `json:"role"`
	Teams []string `json:"teams,omitempty"`
	Via   string   `json:"via"`
	// binding is what a CSRF token is bound to: the session's id, or the proxy
	// user's name; "" for bearer tokens and peers, which need no CSRF token.
	binding string
}

// IsService reports whether p is the shared token's machine client.
func (p Principal) IsService() bool { return p.Role == RoleService }

// Can reports whether p has at least role r's rights (viewer < approver <
// admin; service has all).
func (p Principal) Can(r Role) bool {
	return rank(p.Role) >= rank(r)
}

// MayAnswer reports whether p may approve, reject or acknowledge a decision
// waiting on team: admins and service always, approvers for their teams. A
// decision that waits on no team ("", a rule without an escalation ladder) may
// be answered by any approver.
func (p Principal) MayAnswer(team string) bool {
	switch p.Role {
	case RoleAdmin, RoleService:
		return true
	case RoleApprover:
		return team == "" || slices.Contains(p.Teams, team)
	}
	return false
}

// NeedsCSRF reports whether p's mutating requests need a CSRF token: those of a
// browser (session cookie or proxy header), which another site could make it
// send.
func (p Principal) NeedsCSRF() bool { return p.binding != "" }

func rank(r Role) int {
	switch r {
	case RoleViewer:
		return 1
	case RoleApprover:
		return 2
	case RoleAdmin:
		return 3
	case RoleService:
		return 4
	}
	return 0
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal ctx carries, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok && p.Name != ""
}
