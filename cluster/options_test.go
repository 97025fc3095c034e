package cluster

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/internal/natstest"
)

func TestNewRefusesBadOptions(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	for _, tc := range []struct {
		name string
		opts Options
		want string // in the error
	}{
		{"no JetStream", Options{Member: "a", Partitions: 1}, "JetStream is required"},
		{"no member", Options{JetStream: js, Partitions: 1}, "Member is required"},
		{"member with a dot", Options{JetStream: js, Member: "a.b", Partitions: 1}, `Member "a.b"`},
		{"group with a space", Options{JetStream: js, Group: "my group", Member: "a", Partitions: 1}, `Group "my group"`},
		{"group with a wildcard", Options{JetStream: js, Group: "g*", Member: "a", Partitions: 1}, `Group "g*"`},
		{"member too long", Options{JetStream: js, Member: strings.Repeat("m", 65), Partitions: 1}, "at most 64"},
		{"group too long", Options{JetStream: js, Group: strings.Repeat("g", 100000), Member: "a", Partitions: 1}, "at most 64"},
		{"no partitions", Options{JetStream: js, Member: "a"}, "Partitions is 0"},
		{"guard above the ttl", Options{JetStream: js, Member: "a", Partitions: 1, LeaseTTL: time.Second, Guard: 2 * time.Second}, "Guard 2s must be below LeaseTTL 1s"},
		{"renew too slow", Options{JetStream: js, Member: "a", Partitions: 1, Renew: 8 * time.Second}, "Renew 8s must be below LeaseTTL-Guard 7s"},
		{"negative", Options{JetStream: js, Member: "a", Partitions: 1, HandoffWait: -time.Second}, "must not be negative"},
		{"too many replicas", Options{JetStream: js, Member: "a", Partitions: 1, Replicas: 7}, "Replicas is 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want ErrInvalidOptions saying %q", err, tc.want)
			}
		})
	}
}

func TestNewCreatesTheGroupBucket(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, nil).ClientURL())
	m, err := New(Options{JetStream: js, Group: "east-1_b", Member: "a", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.kv.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != "orderwatch_east-1_b" || st.History() != 1 {
		t.Errorf("bucket %s history %d, want orderwatch_east-1_b, 1", st.Bucket(), st.History())
	}
	if m.opts.LeaseTTL != 10*time.Second || m.opts.Renew != 2*time.Second || m.opts.Guard != 3*time.Second || m.opts.HandoffWait != 5*time.Second {
		t.Errorf("defaults %s %s %s %s, want 10s 2s 3s 5s", m.opts.LeaseTTL, m.opts.Renew, m.opts.Guard, m.opts.HandoffWait)
	}
	// A second member of the group opens the same bucket.
	if _, err := New(Options{JetStream: js, Group: "east-1_b", Member: "b", Partitions: 3}); err != nil {
		t.Fatalf("second member: %v", err)
	}
}

func TestLeaseKeys(t *testing.T) {
	for _, tc := range []struct {
		partitions, p int
		want          string
	}{{1, 0, "lease.00"}, {16, 7, "lease.07"}, {16, 15, "lease.15"}, {100, 99, "lease.99"}, {101, 5, "lease.005"}, {1000, 999, "lease.999"}} {
		k := newKeys(tc.partitions)
		if got := k.lease(tc.p); got != tc.want {
			t.Errorf("lease(%d) of %d = %q, want %q", tc.p, tc.partitions, got, tc.want)
		}
		if p, ok := k.parseLease(tc.want, tc.partitions); !ok || p != tc.p {
			t.Errorf("parseLease(%q) = %d, %v", tc.want, p, ok)
		}
	}
	k := newKeys(16)
	for _, key := range []string{"lease.16", "lease.7", "lease.x1", "member.a", "lease.-1"} {
		if p, ok := k.parseLease(key, 16); ok {
			t.Errorf("parseLease(%q) = %d, want refused", key, p)
		}
	}
}

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		partitions int
		alive      []string
		want       []int // per member of alive
	}{
		{16, []string{"a"}, []int{16}},
		{16, []string{"a", "b"}, []int{8, 8}},
		{16, []string{"a", "b", "c"}, []int{6, 5, 5}},
		{16, []string{"a", "b", "c", "d", "e"}, []int{4, 3, 3, 3, 3}},
		{2, []string{"a", "b", "c"}, []int{1, 1, 0}},
	} {
		sum := 0
		for i, me := range tc.alive {
			got := share(tc.partitions, tc.alive, me)
			sum += got
			if got != tc.want[i] {
				t.Errorf("share(%d, %v, %s) = %d, want %d", tc.partitions, tc.alive, me, got, tc.want[i])
			}
		}
		if sum != tc.partitions {
			t.Errorf("shares of %v sum to %d, want %d", tc.alive, sum, tc.partitions)
		}
	}
}
