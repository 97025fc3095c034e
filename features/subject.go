package features

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// The subject contract of ORDERS. Producers publish an order event to
// orders.<type>.<order_token> (orders.pick.confirmed.SO-100231) and a context event
// to orders.<type> (orders.warehouse.load). The ORDERS stream's subject transform
// puts the partition of the order token in front, so JetStream stores order events
// as orders.<partition>.<type>.<order_token> and context events unchanged; each
// partition is read through PartitionSubject, the context events through
// ContextSubject.

// Subject filters of the stored ORDERS messages.
const (
	// ContextSubject matches the context events as stored (and published):
	// orders.<t1>.<t2>.
	ContextSubject = "orders.*.*"
	// OrderSubject matches the order events as published:
	// orders.<t1>.<t2>.<order_token>. The stream transforms it; nothing is
	// stored under it.
	OrderSubject = "orders.*.*.*"
)

// subjectPrefix starts every subject of ORDERS.
const subjectPrefix = "orders."

// tokenEscape starts an order token that is the base64url encoding of an order
// id that is not a safe subject token itself.
const tokenEscape = '~'

// Subject returns the subject an event of type t about order orderID is
// published to: orders.<t>.<OrderToken(orderID)>, or orders.<t> for a context
// type or an empty orderID.
func Subject(t, orderID string) string {
	if IsContext(t) || orderID == "" {
		return subjectPrefix + t
	}
	return subjectPrefix + t + "." + OrderToken(orderID)
}

// AppendSubject appends Subject(t, orderID) to b.
func AppendSubject(b []byte, t, orderID string) []byte {
	b = append(b, subjectPrefix...)
	b = append(b, t...)
	if IsContext(t) || orderID == "" {
		return b
	}
	b = append(b, '.')
	if safeToken(orderID) {
		return append(b, orderID...)
	}
	b = append(b, tokenEscape)
	return base64.RawURLEncoding.AppendEncode(b, []byte(orderID))
}

// OrderToken returns the subject token of an order id: the id itself when it is
// a safe token (1..128 bytes of A-Z a-z 0-9 _ - :), else "~" followed by the
// base64url encoding, without padding, of its bytes: "SO 1/2" is "~U08gMS8y".
// OrderFromToken reverses it. A safe id is returned without allocating.
func OrderToken(id string) string {
	if safeToken(id) {
		return id
	}
	return string(tokenEscape) + base64.RawURLEncoding.EncodeToString([]byte(id))
}

// OrderFromToken returns the order id whose OrderToken is tok, and false when
// tok is the token of no id (empty, an unsafe byte, a bad or non-canonical
// escape, the escape of a safe id).
func OrderFromToken(tok string) (string, bool) {
	if safeToken(tok) {
		return tok, true
	}
	if len(tok) < 2 || tok[0] != tokenEscape || strings.IndexFunc(tok[1:], notBase64URL) >= 0 {
		return "", false // the decoder would skip \r and \n
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok[1:])
	if err != nil || len(b) == 0 || len(b) > maxIDBytes || safeToken(string(b)) {
		return "", false
	}
	return string(b), true
}

// safeToken reports whether s is its own order token: 1..maxIDBytes bytes, each
// a letter, a digit, '_', '-' or ':'. Such a token never starts with '~'.
func safeToken(s string) bool {
	if len(s) == 0 || len(s) > maxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == ':':
		default:
			return false
		}
	}
	return true
}

// notBase64URL reports whether r is outside the base64url alphabet.
func notBase64URL(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
}

// tokenOf reports whether tok is OrderToken(id), without allocating.
func tokenOf(tok, id string) bool {
	if safeToken(id) {
		return tok == id
	}
	if len(id) == 0 || len(tok) != 1+base64.RawURLEncoding.EncodedLen(len(id)) || tok[0] != tokenEscape {
		return false
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	j := 1
	for i := 0; i < len(id); i += 3 {
		n := min(3, len(id)-i)
		var v uint32
		for k := range 3 {
			v <<= 8
			if k < n {
				v |= uint32(id[i+k])
			}
		}
		for k := range n + 1 {
			if tok[j] != alphabet[v>>(18-6*k)&63] {
				return false
			}
			j++
		}
	}
	return true
}

// Partition returns the partition, 0..n-1, of an order token among n: what the
// ORDERS stream's partition(n,3) computes, the FNV-1a 32-bit hash of the token's
// bytes modulo n (nats-server's getHashPartition). n <= 0 gives 0, as the
// server does for 0.
func Partition(token string, n int) int {
	if n <= 0 {
		return 0
	}
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(token); i++ {
		h ^= uint32(token[i])
		h *= prime32
	}
	return int(h % uint32(n))
}

// PartitionSubject is the filter of the order events stored in partition p:
// orders.<p>.*.*.* (orders.<p>.> would also match the context event orders.3.x
// of a type "3.x").
func PartitionSubject(p int) string {
	return subjectPrefix + strconv.Itoa(p) + ".*.*.*"
}

// ParseStoredSubject splits a subject as ORDERS stores it. An order event's
// orders.<p>.<t1>.<t2>.<token> gives (p, "t1.t2", token, true), p a decimal
// without sign or leading zeros; a context event's orders.<t1>.<t2> gives
// (-1, "t1.t2", "", true). Any other shape, or an empty token, gives ok=false.
// typ and token are substrings of subj: it does not allocate.
func ParseStoredSubject(subj string) (p int, typ, token string, ok bool) {
	rest, found := strings.CutPrefix(subj, subjectPrefix)
	if !found {
		return 0, "", "", false
	}
	var at [4]int // the dots of rest
	n := 0
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			if n == len(at) {
				return 0, "", "", false
			}
			at[n] = i
			n++
		}
	}
	switch n {
	case 1: // t1.t2
		if at[0] == 0 || at[0] == len(rest)-1 {
			return 0, "", "", false
		}
		return -1, rest, "", true
	case 3: // p.t1.t2.token
		p, ok := parsePartition(rest[:at[0]])
		if !ok || at[1] == at[0]+1 || at[2] == at[1]+1 || at[2] == len(rest)-1 {
			return 0, "", "", false
		}
		return p, rest[at[0]+1 : at[2]], rest[at[2]+1:], true
	}
	return 0, "", "", false
}

// parsePartition parses a partition number as the server writes it.
func parsePartition(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	p := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		p = p*10 + int(s[i]-'0')
	}
	return p, true
}

// maxSubjectDetail bounds how much of a subject a dead letter's detail quotes.
const maxSubjectDetail = 200

// CheckSubject checks the subject a decoded event was read from against the
// event, and returns a dead-letter reason and detail when they disagree, or ""
// when they agree:
//   - orders.<p>.<t1>.<t2>.<token>: an order event of type t1.t2 whose
//     OrderToken is token, else ReasonSubjectMismatch;
//   - orders.<t1>.<t2>: a context event of type t1.t2; an order event there is
//     ReasonUnpartitioned (published to orders.<type> by an older producer), a
//     context event of another type ReasonSubjectMismatch;
//   - "" (a replay from a file): no check;
//   - any other subject: ReasonSubjectMismatch.
//
// It does not allocate when the subject agrees.
func CheckSubject(subject string, ev *Event) (reason, detail string) {
	if subject == "" {
		return "", ""
	}
	p, typ, tok, ok := ParseStoredSubject(subject)
	switch {
	case !ok:
		return ReasonSubjectMismatch, "subject " + strconv.Quote(truncate(subject, maxSubjectDetail)) +
			" is neither orders.<partition>.<type>.<order> nor orders.<type>"
	case p < 0 && IsContext(ev.Type):
		if typ != ev.Type {
			return ReasonSubjectMismatch, "subject type " + strconv.Quote(truncate(typ, 64)) + " is not the event's type " + ev.Type
		}
		return "", ""
	case p < 0:
		return ReasonUnpartitioned, "publish order events to orders.<type>.<order_id>"
	case IsContext(ev.Type):
		return ReasonSubjectMismatch, "context event " + ev.Type + " on an order subject; publish it to orders." + ev.Type
	case typ != ev.Type:
		return ReasonSubjectMismatch, "subject type " + strconv.Quote(truncate(typ, 64)) + " is not the event's type " + ev.Type
	case !tokenOf(tok, ev.OrderID):
		return ReasonSubjectMismatch, "subject order token " + strconv.Quote(truncate(tok, maxSubjectDetail)) +
			" is not the token of order_id " + strconv.Quote(ev.OrderID) + ", " + OrderToken(ev.OrderID)
	}
	return "", ""
}
