package cluster

import (
	"encoding/json"
	"slices"
	"time"
)

// Status is the group as this member sees it, for GET /api/v1/cluster.
type Status struct {
	Group      string         `json:"group"`
	Member     string         `json:"member"` // this member
	Partitions int            `json:"partitions"`
	Members    []MemberStatus `json:"members"`
	Leases     []LeaseStatus  `json:"leases"`
}

// MemberStatus is one member as this member last saw its record.
type MemberStatus struct {
	Member string `json:"member"`
	API    string `json:"api"`
	// Partitions the member owned when it last wrote its record.
	Partitions []int `json:"partitions"`
	// Alive: its record changed within LeaseTTL (this member is always alive).
	Alive bool `json:"alive"`
	// SeenAgo is how long ago this member saw the record change, in seconds.
	SeenAgo float64         `json:"seen_ago_seconds"`
	Stats   json.RawMessage `json:"stats,omitempty"`
}

// LeaseStatus is the lease of one partition as this member last saw it.
type LeaseStatus struct {
	Partition int    `json:"partition"`
	Holder    string `json:"holder"` // "" when released or never taken
	Epoch     uint64 `json:"epoch"`
	Revision  uint64 `json:"revision"`
	// Alive: it has a holder and has not expired.
	Alive bool `json:"alive"`
	// UnownedFor is how long the partition has been without a live holder, in
	// seconds; 0 when Alive.
	UnownedFor float64 `json:"unowned_seconds"`
}

// Status returns the group as this member sees it from the watched bucket. It
// does not touch the network.
func (m *Membership) Status() Status {
	now := m.opts.Clock()
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Group: m.opts.Group, Member: m.opts.Member, Partitions: m.opts.Partitions,
		Members: []MemberStatus{}, Leases: make([]LeaseStatus, 0, len(m.leases))}
	self := false
	for id, o := range m.members {
		ms := MemberStatus{Member: id, API: o.member.API, Partitions: o.member.Partitions, Stats: o.member.Stats,
			Alive: id == m.opts.Member || now.Sub(o.seen) < m.opts.LeaseTTL, SeenAgo: now.Sub(o.seen).Seconds()}
		if id == m.opts.Member {
			self = true
			ms.Partitions = m.ownedLocked(now)
		}
		if ms.Partitions == nil {
			ms.Partitions = []int{}
		}
		st.Members = append(st.Members, ms)
	}
	if !self {
		st.Members = append(st.Members, MemberStatus{Member: m.opts.Member, API: m.opts.API, Partitions: m.ownedLocked(now), Alive: true})
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int {
		switch {
		case a.Member < b.Member:
			return -1
		case a.Member > b.Member:
			return 1
		}
		return 0
	})
	for p, o := range m.leases {
		ls := LeaseStatus{Partition: p, Holder: o.lease.Holder, Epoch: o.lease.Epoch, Revision: o.rev}
		d, unowned := m.unownedForLocked(p, now)
		ls.Alive, ls.UnownedFor = !unowned, d.Seconds()
		st.Leases = append(st.Leases, ls)
	}
	return st
}

func (m *Membership) ownedLocked(now time.Time) []int {
	owned := []int{}
	for p := range m.held {
		if m.ownsLocked(p, now) {
			owned = append(owned, p)
		}
	}
	return owned
}

// unownedForLocked reports whether partition p has no live holder as this
// member sees it, and for how long: since the key was deleted or released,
// since its lease expired, or since this member started watching if it never
// had one. A lease this member holds counts as live. Call with mu held.
func (m *Membership) unownedForLocked(p int, now time.Time) (time.Duration, bool) {
	if m.held[p] != nil && now.Before(m.held[p].validUntil) {
		return 0, false
	}
	o := m.leases[p]
	var since time.Time
	switch {
	case o.rev == 0:
		since = m.watchSince
	case !o.present, o.lease.Holder == "":
		since = o.seen
	case o.lease.Holder != m.opts.Member && now.Sub(o.seen) < m.opts.LeaseTTL:
		return 0, false
	default: // expired, or naming this member, which does not hold it
		since = o.seen.Add(m.opts.LeaseTTL)
	}
	if since.IsZero() || now.Before(since) {
		return 0, true
	}
	return now.Sub(since), true
}
