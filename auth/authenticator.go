package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultSessionTTL = 12 * time.Hour
	MaxSessionTTL     = 7 * 24 * time.Hour
	// KeyBytes is the length of the signing key of sessions, CSRF tokens and
	// principals passed between members.
	KeyBytes = 32
	// MaxPasswordChecks is how many sign-ins compare a password at once; more
	// are refused as throttled (retry in a second).
	MaxPasswordChecks = 4
)

// Options configures an Authenticator. The zero value accepts nobody.
type Options struct {
	// Users are the people who may sign in; nil means none (the shared token
	// only). SetUsers replaces them while serving.
	Users *Users
	// SharedToken is ORDERWATCH_API_TOKEN, the machine clients' bearer token;
	// empty means none.
	SharedToken string
	// Key signs session cookies, CSRF tokens and the principals forwarded between
	// members: the group's (GroupKey), so that every member accepts what another
	// signed. Nil means a random key of this process alone.
	Key []byte
	// SessionTTL bounds a session (0 means DefaultSessionTTL, at most
	// MaxSessionTTL).
	SessionTTL time.Duration
	// ProxyHeader names the header a trusted reverse proxy sets to the signed-in
	// user's name (X-Forwarded-User); empty means no proxy mode.
	ProxyHeader string
	// ProxyTrusted are the addresses the proxy connects from; the header of any
	// other peer is ignored. Required with ProxyHeader.
	ProxyTrusted []netip.Prefix
	Clock        func() time.Time      // nil means time.Now
	Logger       *slog.Logger          // nil means discard
	Registerer   prometheus.Registerer // nil means no metrics
}

// Authenticator resolves the principal of a request and signs people in and
// out. Safe for concurrent use; SignIn blocks for one bcrypt comparison.
type Authenticator struct {
	o        Options
	users    atomic.Pointer[Users]
	sign     signer
	throttle *Throttle
	// checking bounds the password checks in progress: each holds a core for
	// a quarter of a second, and sign-ins are not under --api-max-inflight.
	checking chan struct{}
	log      *slog.Logger
	m        *metrics
}

// New validates o and returns an authenticator.
func New(o Options) (*Authenticator, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.SessionTTL == 0:
		o.SessionTTL = DefaultSessionTTL
	case o.SessionTTL < time.Minute || o.SessionTTL > MaxSessionTTL:
		return nil, fmt.Errorf("auth: Options.SessionTTL %s: want 1m to %s", o.SessionTTL, MaxSessionTTL)
	}
	if o.Key == nil {
		o.Key = randomBytes(KeyBytes)
	}
	if len(o.Key) < KeyBytes {
		return nil, fmt.Errorf("auth: Options.Key is %d bytes: want at least %d", len(o.Key), KeyBytes)
	}
	if o.ProxyHeader != "" && len(o.ProxyTrusted) == 0 {
		return nil, errors.New("auth: Options.ProxyHeader needs ProxyTrusted: the addresses the proxy connects from (--auth-proxy-trusted)")
	}
	if o.ProxyHeader == "" && len(o.ProxyTrusted) > 0 {
		return nil, errors.New("auth: Options.ProxyTrusted needs ProxyHeader (--auth-proxy-header)")
	}
	o.ProxyHeader = http.CanonicalHeaderKey(o.ProxyHeader)
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{o: o, sign: signer{key: o.Key}, throttle: NewThrottle(o.Clock), checking: make(chan struct{}, MaxPasswordChecks),
		log: o.Logger.With("component", "auth"), m: m}
	a.users.Store(o.Users)
	return a, nil
}

// SetUsers puts users in force (a reloaded users file); sessions of people no
// longer in it stop working at their next request.
func (a *Authenticator) SetUsers(u *Users) { a.users.Store(u) }

// Users returns the users in force.
func (a *Authenticator) Users() *Users { return a.users.Load() }

// Configured reports whether anybody at all can be accepted: a shared token, a
// user or a proxy.
func (a *Authenticator) Configured() bool {
	return a.o.SharedToken != "" || a.users.Load().Len() > 0 || a.o.ProxyHeader != ""
}

// Throttle is the sign-in throttle (its state is what tests look at).
func (a *Authenticator) Throttle() *Throttle { return a.throttle }

// Resolve returns who makes r: a bearer token (the shared token, or a user's),
// else a trusted proxy's header, else a session cookie. ok is false when r
// carries none of them; err is ErrBadCredentials for a bearer token that is
// nobody's.
func (a *Authenticator) Resolve(r *http.Request) (p Principal, ok bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, isBearer := strings.CutPrefix(h, "Bearer ")
		if !isBearer {
			return Principal{}, false, ErrBadCredentials
		}
		if a.o.SharedToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(a.o.SharedToken)) == 1 {
			return Principal{Name: ServiceName, Role: RoleService, Via: ViaSharedToken}, true, nil
		}
		if u, found := a.users.Load().userByToken(tok); found {
			return principalOf(u, ViaUserToken, ""), true, nil
		}
		return Principal{}, false, ErrBadCredentials
	}
	if a.o.ProxyHeader != "" {
		if name := r.Header.Get(a.o.ProxyHeader); name != "" {
			if p, ok := a.fromProxy(r, name); ok {
				return p, true, nil
			}
		}
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if s, ok := a.openSession(c.Value); ok {
			if u, found := a.users.Load().Lookup(s.name); found {
				return principalOf(u, ViaSession, "s:"+s.id), true, nil
			}
		}
	}
	return Principal{}, false, nil
}

func principalOf(u User, via, binding string) Principal {
	return Principal{Name: u.Name, Role: u.Role, Teams: u.Teams, Via: via, binding: binding}
}

// fromProxy honours the proxy header of a trusted peer: the user of the users
// file by that name, or a viewer when the file does not know it.
func (a *Authenticator) fromProxy(r *http.Request, name string) (Principal, bool) {
	if !a.trustedPeer(r.RemoteAddr) {
		a.m.proxyIgnored.Inc()
		return Principal{}, false
	}
	if !userName.MatchString(name) || name == ServiceName {
		a.m.proxyIgnored.Inc()
		return Principal{}, false
	}
	if u, found := a.users.Load().Lookup(name); found {
		return principalOf(u, ViaProxy, "p:"+name), true
	}
	return Principal{Name: name, Role: RoleViewer, Via: ViaProxy, binding: "p:" + name}, true
}

func (a *Authenticator) trustedPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.o.ProxyTrusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseCIDRs reads a comma-separated list of CIDRs (a bare address is one
// host), as --auth-proxy-trusted takes it.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("auth: trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", f)
			}
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("auth: trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
