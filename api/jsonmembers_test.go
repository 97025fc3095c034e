package api

import (
	"encoding/json"
	"slices"
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

// FuzzDecodeRowRecord: what decodeRowRecord reads of a JSON value is what
// json.Unmarshal decodes of it, error or not.
func FuzzDecodeRowRecord(f *testing.F) {
	rec, err := json.Marshal(actions.Decision{ID: "0190-a", OrderID: "SO-1", At: time.Unix(1, 5).UTC(), RuleID: "credit-hold",
		Action: "flag_finance", Mode: "approval", Status: actions.StatusPendingApproval, Reasons: []string{"on credit hold", "cutoff in 2h"},
		Features: map[string]float32{"lines": 2, "on_credit_hold": 1}, Scores: map[string]float64{"cutoff_risk": 0.7},
		Attributes: map[string]string{"warehouse": "DAL"}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(rec), `{}`, `{"id":"a\u00e9","reasons":null,"at":null}`, `{"ID":"x"}`, `{"id":1}`,
		`{"at":"yesterday"}`, `{"reasons":["a",1]}`, `{"features":{"x":[1,{"id":"no"}]},"id":"yes"}`, `{"id":"a","id":"b"}`,
		`{"ſtatus":"x"}`, `{"mode":"\xff"}`, `{not json`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if !json.Valid(v) {
			return // a record damaged inside a member the row does not show is read all the same
		}
		var got, want rowRecord
		gotErr, wantErr := decodeRowRecord(v, &got), json.Unmarshal(v, &want)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("%q: error %v, json.Unmarshal's %v", v, gotErr, wantErr)
		}
		if gotErr == nil && (got.ID != want.ID || !got.At.Equal(want.At) || got.RuleID != want.RuleID || got.Action != want.Action ||
			got.Mode != want.Mode || got.Status != want.Status || !slices.Equal(got.Reasons, want.Reasons) || (got.Reasons == nil) != (want.Reasons == nil)) {
			t.Fatalf("%q: read %+v, json.Unmarshal gives %+v", v, got, want)
		}
	})
}
