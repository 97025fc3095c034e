package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
)

// FuzzOpenItemFields: what openItemFields reads of a JSON value is what
// encoding/json decodes of it, the way waitingOn read open items before.
func FuzzOpenItemFields(f *testing.F) {
	item, err := json.Marshal(actions.OpenItem{Kind: actions.OpenApproval, DecisionID: "d1", OrderID: "SO-1", Action: "flag_finance",
		RuleID: "credit-hold", Since: time.Unix(1, 0), Team: "credit-desk", Due: time.Unix(600, 0),
		Ladder: actions.Ladder{{Team: "credit-desk"}, {Team: "finance-controller"}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(item), `{}`, ` { "team" : "a" , "order_id":"b" } `, `{"ladder":[{"team":"x"}],"team":"y"}`,
		`{"team":"a","team":"b"}`, `{"Team":"a"}`, `{"te\u0061m":"a"}`, `{"team":"\u0061"}`, `{"team":null}`, `{"team":1}`,
		`{"a":{"b":["}",{"team":"c"}]},"order_id":"SO-\"1"}`, `{"a":-1.5e3,"b":true,"c":null,"team":"t"}`, `[]`, `"team"`,
		`{"order_id":"\xff"}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		order, team, ok := openItemFields(v)
		if !ok || !json.Valid(v) {
			return // decoded by encoding/json, or not JSON (never written)
		}
		var it struct {
			OrderID string `json:"order_id"`
			Team    string `json:"team"`
		}
		if err := json.Unmarshal(v, &it); err != nil {
			t.Fatalf("%q: read as order %q team %q, encoding/json refuses it: %v", v, order, team, err)
		}
		if string(order) != it.OrderID || string(team) != it.Team {
			t.Fatalf("%q: read as order %q team %q, encoding/json gives %q %q", v, order, team, it.OrderID, it.Team)
		}
	})
}

// TestOpenItemFieldsReadsWithoutDecoding: an open item as actions writes it
// is read by the scan (no fallback), its ladder's teams not taken for its own.
func TestOpenItemFieldsReadsWithoutDecoding(t *testing.T) {
	item, err := json.Marshal(actions.OpenItem{Kind: actions.OpenApproval, OrderID: "SO-1", Team: "credit-desk",
		Ladder: actions.Ladder{{Team: "credit-desk"}, {Team: "finance-controller"}}})
	if err != nil {
		t.Fatal(err)
	}
	order, team, ok := openItemFields(item)
	if !ok || string(order) != "SO-1" || string(team) != "credit-desk" {
		t.Errorf("%s: order %q team %q ok %t", item, order, team, ok)
	}
	if testing.AllocsPerRun(100, func() { openItemFields(item) }) != 0 {
		t.Error("openItemFields allocates")
	}
}
