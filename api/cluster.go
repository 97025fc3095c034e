package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/store"
)

// Group is the group of instances this one belongs to (a cluster.Membership).
type Group interface {
	Status() cluster.Status
}

// MemberStats is what an instance publishes in its member record, every
// renewal: the counters of each partition it has, and its own decisions and
// actions. The group's stats are summed from these, each partition from its
// owner's record.
type MemberStats struct {
	Partitions          map[string]store.PartStats `json:"partitions"`
	Decisions           int64                      `json:"decisions"`
	ActionsPublished    int64                      `json:"actions_published"`
	ActionsDeduplicated int64                      `json:"actions_deduplicated"`
}

// ReadMemberStats reads a member record's stats from the store.
func ReadMemberStats(st *store.Store) (json.RawMessage, error) {
	parts, err := st.PartitionStats()
	if err != nil {
		return nil, err
	}
	all, err := st.Stats()
	if err != nil {
		return nil, err
	}
	ms := MemberStats{Partitions: make(map[string]store.PartStats, len(parts)),
		Decisions: all.Decisions, ActionsPublished: all.ActionsPublished, ActionsDeduplicated: all.ActionsDeduplicated}
	for p, ps := range parts {
		ms.Partitions[partKey(p)] = ps
	}
	return json.Marshal(ms)
}

func partKey(p int) string {
	if p == store.ContextPart {
		return "ctx"
	}
	return strconv.Itoa(p)
}

// GroupStats are the counters of a group, from its members' records.
type GroupStats struct {
	Scope string `json:"scope"`
	store.Stats
	// Members is how many members are alive; their own decisions and actions
	// are summed (a member gone takes its count with it until it returns).
	Members int `json:"members"`
	// PartitionsUnowned counts the partitions with no live owner: their
	// counters are missing from the sums until one takes them over.
	PartitionsUnowned int `json:"partitions_unowned"`
}

// SumGroup sums the stats of a group: each partition's counters as its live
// owner reports them, the context subjects' with partition 0.
func SumGroup(s cluster.Status) (GroupStats, error) {
	out := GroupStats{Scope: "group"}
	byMember := map[string]MemberStats{}
	for _, m := range s.Members {
		if !m.Alive {
			continue
		}
		out.Members++
		var ms MemberStats
		if len(m.Stats) > 0 {
			if err := json.Unmarshal(m.Stats, &ms); err != nil {
				return GroupStats{}, fmt.Errorf("api: stats of member %s: %w", m.Member, err)
			}
		}
		byMember[m.Member] = ms
		out.Decisions += ms.Decisions
		out.ActionsPublished += ms.ActionsPublished
		out.ActionsDeduplicated += ms.ActionsDeduplicated
	}
	add := func(ps store.PartStats) {
		out.EventsApplied += ps.EventsApplied
		out.Duplicates += ps.Duplicates
		out.DeadLettered += ps.DeadLettered
		out.OpenOrders += ps.OpenOrders
	}
	for _, l := range s.Leases {
		ms, ok := byMember[l.Holder]
		if !l.Alive || !ok {
			out.PartitionsUnowned++
			continue
		}
		add(ms.Partitions[strconv.Itoa(l.Partition)])
		if l.Partition == 0 {
			add(ms.Partitions["ctx"])
		}
	}
	out.PartitionsUnowned += max(s.Partitions-len(s.Leases), 0)
	return out, nil
}

// cluster serves GET /api/v1/cluster: the group, its partitions, members and
// leases.
func (s *server) cluster(w http.ResponseWriter, _ *http.Request) {
	if s.o.Group == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this instance is not in a group"})
		return
	}
	writeJSON(w, http.StatusOK, s.o.Group.Status())
}

// groupStats serves GET /api/v1/stats?scope=group.
func (s *server) groupStats(w http.ResponseWriter) {
	if s.o.Group == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this instance is not in a group"})
		return
	}
	gs, err := SumGroup(s.o.Group.Status())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, gs)
}
