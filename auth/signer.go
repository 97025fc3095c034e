package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// signer signs small values with the group's key (HMAC-SHA256), each for one
// purpose, so that a value signed for one (a session) is never taken for
// another (a peer's principal, a CSRF token).
type signer struct {
	key []byte
}

func (s signer) mac(purpose string, payload []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)
}

// seal returns payload and its MAC, base64url, joined by a dot.
func (s signer) seal(purpose string, payload []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(s.mac(purpose, payload))
}

// open returns the payload of a sealed value whose MAC holds.
func (s signer) open(purpose, v string) ([]byte, bool) {
	if len(v) > 4096 {
		return nil, false
	}
	p, m, ok := strings.Cut(v, ".")
	if !ok {
		return nil, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac(purpose, payload)) {
		return nil, false
	}
	return payload, true
}

// token is a MAC of binding for purpose, base64url: a CSRF token.
func (s signer) token(purpose, binding string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(purpose, []byte(binding)))
}

// Seal signs payload for purpose with the group's key, so that a value the
// browser keeps (a console message in a cookie) cannot be made by anyone else.
// The purposes are apart from the authenticator's own (sessions, CSRF tokens).
func (a *Authenticator) Seal(purpose string, payload []byte) string {
	return a.sign.seal("app:"+purpose, payload)
}

// Unseal returns the payload of a value Seal made for purpose, and whether its
// signature holds.
func (a *Authenticator) Unseal(purpose, v string) ([]byte, bool) {
	return a.sign.open("app:"+purpose, v)
}
