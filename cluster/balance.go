package cluster

import (
	"context"
	"slices"
	"sort"
)

// share returns this member's fair share of the partitions among alive:
// floor(P/A), +1 for the first P%A members in sorted order.
func share(partitions int, alive []string, me string) int {
	i, _ := slices.BinarySearch(alive, me)
	n := partitions / len(alive)
	if i < partitions%len(alive) {
		n++
	}
	return n
}

// candidate is a lease this member may take.
type candidate struct {
	p      int
	obs    observed
	reason string
	mine   bool // this member held or released it last
}

// balance takes free, released or expired leases while this member is below its
// share, and starts releasing its highest-numbered ones while above it.
func (l *loop) balance(ctx context.Context) {
	m := l.m
	now := m.opts.Clock()
	m.mu.Lock()
	alive := l.aliveLocked(now)
	want := share(m.opts.Partitions, alive, m.opts.Member)
	var mine []int
	for p, h := range m.held {
		if h != nil && !h.releasing {
			mine = append(mine, p)
		}
	}
	if len(mine) > want {
		for _, p := range mine[want:] {
			l.startReleaseLocked(p, ReasonRebalance, now)
		}
		m.mu.Unlock()
		return
	}
	var cands []candidate
	if len(mine) < want {
		for p := range m.leases {
			if m.held[p] != nil {
				continue
			}
			o := m.leases[p]
			c := candidate{p: p, obs: o}
			switch {
			case !o.present:
				c.reason = ReasonFree
			case o.lease.Holder == "":
				c.reason = ReasonReleased
				c.mine = o.lease.ReleasedBy == m.opts.Member
			case now.Sub(o.seen) < m.opts.LeaseTTL && !(o.lease.Holder == m.opts.Member && l.lostRev[p] == o.rev):
				continue // held, by another or by our id in another process
			case o.lease.Holder == m.opts.Member:
				c.reason, c.mine = ReasonOwn, true
			default:
				c.reason = ReasonExpired
			}
			c.mine = c.mine || o.present && o.lease.Previous == m.opts.Member
			cands = append(cands, c)
		}
	}
	m.mu.Unlock()
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].mine && !cands[j].mine })
	for _, c := range cands[:min(len(cands), want-len(mine))] {
		if !l.take(ctx, c) {
			return
		}
	}
}
