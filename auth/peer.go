package auth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// peerTTL bounds how long a principal sealed for a forwarded request is
// accepted: a forward takes seconds at most.
const peerTTL = time.Minute

type sealedPrincipal struct {
	Name  string   `json:"n"`
	Role  Role     `json:"r"`
	Teams []string `json:"t,omitempty"`
	Via   string   `json:"v"`
	Exp   int64    `json:"e"`
}

// SealPrincipal signs p for a request this member forwards to another of its
// group (the cluster.HeaderPrincipal header): that member takes it without
// checking credentials again, since this one did.
func (a *Authenticator) SealPrincipal(p Principal) string {
	b, _ := json.Marshal(sealedPrincipal{Name: p.Name, Role: p.Role, Teams: p.Teams, Via: p.Via, Exp: a.o.Clock().Add(peerTTL).Unix()})
	return a.sign.seal("peer-principal", b)
}

// OpenPrincipal returns the principal another member sealed, as ViaPeer; the
// caller believes it only for a request that came from a member (over NATS),
// never over HTTP.
func (a *Authenticator) OpenPrincipal(v string) (Principal, error) {
	b, ok := a.sign.open("peer-principal", v)
	if !ok {
		return Principal{}, errNoPeerPrincipal
	}
	var s sealedPrincipal
	if err := json.Unmarshal(b, &s); err != nil {
		return Principal{}, fmt.Errorf("auth: forwarded principal: %w", err)
	}
	if !a.o.Clock().Before(time.Unix(s.Exp, 0)) || s.Name == "" || rank(s.Role) == 0 {
		return Principal{}, errNoPeerPrincipal
	}
	return Principal{Name: s.Name, Role: s.Role, Teams: s.Teams, Via: ViaPeer + ":" + s.Via}, nil
}

// errNoPeerPrincipal is OpenPrincipal's error for a value that does not hold.
var errNoPeerPrincipal = errors.New("auth: forwarded principal not signed with the group's key, or expired")

func subtleEq(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
