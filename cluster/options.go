package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultGroup is the group a Membership joins when Options.Group is empty.
const DefaultGroup = "orderwatch"

// Options configures a Membership. The zero value of every field but JetStream,
// Member and Partitions means its default; New applies the defaults and
// validates the whole.
type Options struct {
	// JetStream holds the bucket of the group. Required.
	JetStream jetstream.JetStream
	// Group names the set of members that share the partitions; "" means
	// DefaultGroup. Letters, digits, '_' and '-' only: it is part of the bucket's
	// name, orderwatch_<group>.
	Group string
	// Member is this instance's id, stable per data directory (a restarted member
	// gets its own partitions back). Required; letters, digits, '_' and '-'.
	Member string
	// Partitions is how many partitions the group shares. Required, >= 1; every
	// member of a group must use the same number.
	Partitions int
	// Replicas of the KV bucket; 0 means 1 (3 on a JetStream cluster).
	Replicas int
	// API is the advertised API URL of this member, published in its member
	// record; may be "".
	API string
	// LeaseTTL is how long a lease or member record whose revision did not change
	// stays valid, on the observer's clock; 0 means 10s.
	LeaseTTL time.Duration
	// Renew is the tick: leases and the member record are renewed and the
	// balance is checked this often; 0 means 2s. Must be below LeaseTTL-Guard.
	Renew time.Duration
	// Guard is how long before an observer may take a lease its holder stops
	// owning it; 0 means 3s. Must be below LeaseTTL.
	Guard time.Duration
	// HandoffWait is how long a member that gives a partition up waits for the
	// user's Handoff before it releases the lease anyway; 0 means 5s.
	HandoffWait time.Duration
	// Stats, if set, is called at every Renew; its result goes into the member
	// record as is (Status shows it). It must be quick and valid JSON.
	Stats func() json.RawMessage
	// Logger receives the membership's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the orderwatch_cluster_* metrics; nil means none.
	Registerer prometheus.Registerer
	// Clock reads the local time; nil means time.Now. Only differences of its
	// readings are used (keep the monotonic reading), never compared across hosts.
	Clock func() time.Time
}

// withDefaults returns opts with the defaults applied, or an error naming the
// first field that is wrong.
func (o Options) withDefaults() (Options, error) {
	if o.JetStream == nil {
		return o, fmt.Errorf("%w: JetStream is required", ErrInvalidOptions)
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if !validName(o.Group) {
		return o, fmt.Errorf("%w: Group %q: use only letters, digits, '_' and '-', at most %d", ErrInvalidOptions, shown(o.Group), maxName)
	}
	if o.Member == "" {
		return o, fmt.Errorf("%w: Member is required (a stable id per data directory)", ErrInvalidOptions)
	}
	if !validName(o.Member) {
		return o, fmt.Errorf("%w: Member %q: use only letters, digits, '_' and '-', at most %d", ErrInvalidOptions, shown(o.Member), maxName)
	}
	if o.Partitions < 1 {
		return o, fmt.Errorf("%w: Partitions is %d, want >= 1", ErrInvalidOptions, o.Partitions)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return o, fmt.Errorf("%w: Replicas is %d, want 1 to 5", ErrInvalidOptions, o.Replicas)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.LeaseTTL, 10 * time.Second}, {&o.Renew, 2 * time.Second}, {&o.Guard, 3 * time.Second}, {&o.HandoffWait, 5 * time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
		if *d.v < 0 {
			return o, fmt.Errorf("%w: durations must not be negative (LeaseTTL %s, Renew %s, Guard %s, HandoffWait %s)",
				ErrInvalidOptions, o.LeaseTTL, o.Renew, o.Guard, o.HandoffWait)
		}
	}
	if o.Guard >= o.LeaseTTL {
		return o, fmt.Errorf("%w: Guard %s must be below LeaseTTL %s", ErrInvalidOptions, o.Guard, o.LeaseTTL)
	}
	if o.Renew >= o.LeaseTTL-o.Guard {
		return o, fmt.Errorf("%w: Renew %s must be below LeaseTTL-Guard %s, or leases run out between renewals",
			ErrInvalidOptions, o.Renew, o.LeaseTTL-o.Guard)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o, nil
}

// maxName bounds a group or member name: they make the bucket, key, subject
// and consumer names (<group>-follow-<member>), which JetStream bounds.
const maxName = 64

// shown is a name as an error quotes it: not the whole of a huge one.
func shown(s string) string {
	if len(s) > maxName+16 {
		return s[:maxName+16] + "…"
	}
	return s
}

// validName reports whether s is a run of 1 to maxName of [A-Za-z0-9_-], what
// KV bucket names and single key tokens allow.
func validName(s string) bool {
	if s == "" || len(s) > maxName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
