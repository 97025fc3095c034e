package actions

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/store"
)

// TestStateOfIsNewViews: StateOf gives every decision the state and wait
// NewView gives it, from its status, open item, trail and command outcome.
func TestStateOfIsNewViews(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	open := func(kind string) []byte {
		return enc(OpenItem{Kind: kind, DecisionID: "d", OrderID: "SO-1", Team: "credit-desk", Since: now.Add(-time.Minute)})
	}
	trail := func(kinds ...string) [][]byte {
		var out [][]byte
		for _, k := range kinds {
			out = append(out, enc(TrailRecord{Kind: k, DecisionID: "d", At: now}))
		}
		return out
	}
	published := map[string][]byte{"": enc(Outcome{Entry: "d", At: now})}
	for _, c := range []struct {
		status   string
		dv       store.DecisionView
		want     string
		waitKind string
	}{
		{StatusShadow, store.DecisionView{}, StateShadow, ""},
		{StatusSuppressed, store.DecisionView{}, StateSuppressed, ""},
		{StatusPendingApproval, store.DecisionView{Open: open(OpenApproval)}, StatePending, OpenApproval},
		{StatusPendingApproval, store.DecisionView{Trail: trail(TrailEscalated), Open: open(OpenApproval)}, StatePending, OpenApproval},
		{StatusPendingApproval, store.DecisionView{Trail: trail(TrailRejected)}, StateRejected, ""},
		{StatusPendingApproval, store.DecisionView{Trail: trail(TrailApproved)}, StateQueued, ""},
		{StatusPendingApproval, store.DecisionView{}, StatePending, ""},
		{StatusPendingApproval, store.DecisionView{Trail: trail(TrailApproved), Outcomes: published}, StatePublished, ""},
		{StatusQueued, store.DecisionView{}, StateQueued, ""},
		{StatusQueued, store.DecisionView{Outcomes: published}, StatePublished, ""},
		{StatusQueued, store.DecisionView{Outcomes: published, Open: open(OpenAck)}, StateAwaitingAck, OpenAck},
		{StatusQueued, store.DecisionView{Outcomes: published, Trail: trail(TrailAcknowledged)}, StateAcked, ""},
	} {
		dv := c.dv
		dv.ID = "d"
		dv.Record = enc(Decision{ID: "d", OrderID: "SO-1", Status: c.status, Features: map[string]float32{"lines": 2}})
		v, err := NewView(dv, now)
		if err != nil {
			t.Fatal(err)
		}
		state, waiting, err := StateOf(c.status, dv, now)
		if err != nil {
			t.Fatal(err)
		}
		kind := ""
		if waiting != nil {
			kind = waiting.Kind
			if waiting.Team != v.Waiting.Team || waiting.AgeSeconds != v.Waiting.AgeSeconds {
				t.Errorf("%s %+v: waits %+v, NewView %+v", c.status, c.dv, waiting, v.Waiting)
			}
		}
		if state != v.State || state != c.want || kind != c.waitKind || (waiting == nil) != (v.Waiting == nil) {
			t.Errorf("%s %+v: %s waiting %q; NewView %s; want %s waiting %q", c.status, c.dv, state, kind, v.State, c.want, c.waitKind)
		}
	}
	if _, _, err := StateOf(StatusQueued, store.DecisionView{ID: "d", Open: []byte("{not json")}, now); err == nil {
		t.Error("StateOf of a damaged open item: no error")
	}
}
