package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// putMember advertises this member; false when JetStream could not be reached.
func (l *loop) putMember(ctx context.Context) bool {
	m := l.m
	rec := memberRecord{Member: m.opts.Member, API: m.opts.API, Started: rfc3339(m.started), Partitions: []int{}, Epochs: []uint64{}}
	now := m.opts.Clock()
	m.mu.Lock()
	for p, h := range m.held {
		if m.ownsLocked(p, now) {
			rec.Partitions = append(rec.Partitions, p)
			rec.Epochs = append(rec.Epochs, h.epoch)
		}
	}
	m.mu.Unlock()
	if m.opts.Stats != nil {
		switch s := m.opts.Stats(); {
		case len(s) == 0: // none this time
		case json.Valid(s):
			rec.Stats = s
		case !l.statsBad:
			l.statsBad = true
			m.log.Warn("Options.Stats returned invalid JSON; member records go without stats", "stats_bytes", len(s))
		}
	}
	b, _ := json.Marshal(rec)
	octx, cancel := l.opCtx(ctx)
	defer cancel()
	rev, err := m.kv.Put(octx, memberKey(m.opts.Member), b)
	if err != nil {
		l.failed(fmt.Errorf("cluster: put member record: %w", err))
		return false
	}
	l.memberRev = rev
	return true
}

// aliveLocked returns the alive members, sorted, this member included.
func (l *loop) aliveLocked(now time.Time) []string {
	m := l.m
	alive := []string{m.opts.Member}
	for id, o := range m.members {
		if id != m.opts.Member && now.Sub(o.seen) < m.opts.LeaseTTL {
			alive = append(alive, id)
		}
	}
	slices.Sort(alive)
	return alive
}

// deleteDeadMembers deletes the records of members whose revision did not
// change for LeaseTTL, once per revision; failures do not matter.
func (l *loop) deleteDeadMembers(ctx context.Context) {
	m := l.m
	now := m.opts.Clock()
	type dead struct {
		id  string
		rev uint64
	}
	var deads []dead
	m.mu.Lock()
	for id, o := range m.members {
		if id != m.opts.Member && now.Sub(o.seen) >= m.opts.LeaseTTL && o.deleteTried != o.rev {
			o.deleteTried = o.rev
			deads = append(deads, dead{id, o.rev})
		}
	}
	m.mu.Unlock()
	for _, d := range deads {
		octx, cancel := l.opCtx(ctx)
		err := m.kv.Delete(octx, memberKey(d.id), jetstream.LastRevision(d.rev))
		cancel()
		if err == nil {
			m.log.Info("deleted the record of a dead member", "dead_member", d.id)
		}
	}
}
