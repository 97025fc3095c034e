package actions

import (
	"strings"
	"testing"
)

const deadlinesBase = `version: v1
escalation:
  finance: [{team: credit-desk, sla: 10m}]
rules:
- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}
`

// TestDeadlinesValidated: the deadlines and exception owners of a policy are
// checked at load: event types, durations, classes, categories and teams; an
// error names the field.
func TestDeadlinesValidated(t *testing.T) {
	const ok = `exception_owners: {credit: finance, invoicing: credit-desk}
deadlines:
- {id: hold, after: credit.hold, expect: credit.released, within: 4h, class: credit, category: policy, remind_every: 1h}
- {id: cut, after: cutoff, expect: shipment.confirmed, within: 0m, class: invoicing, category: execution}
`
	p, err := ParsePolicy([]byte(deadlinesBase + ok))
	if err != nil {
		t.Fatalf("a valid policy: %v", err)
	}
	if p.WatchUntil != DefaultWatchUntil || p.Owner("credit") != "finance" || len(p.Deadlines) != 2 || p.Deadlines[0].Within.D().Hours() != 4 {
		t.Errorf("parsed %+v, want watch_until %s, the owner of credit finance and two deadlines", p.ExceptionPolicy, DefaultWatchUntil)
	}
	cases := []struct{ name, doc, want string }{
		{"unknown after", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.held, expect: credit.released, within: 1h, class: credit, category: policy}]", `deadlines[0] (x).after "credit.held"`},
		{"context type", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: warehouse.load, within: 1h, class: credit, category: policy}]", `deadlines[0] (x).expect "warehouse.load"`},
		{"bad duration", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: soon, class: credit, category: policy}]", "soon"},
		{"negative", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: -1h, class: credit, category: policy}]", "within -1h0m0s is negative"},
		{"unknown class", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: money, category: policy}]", `class "money": unknown exception class`},
		{"no owner", "deadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: credit, category: policy}]", "has no owner: add it to exception_owners"},
		{"unknown team", "exception_owners: {credit: accounts}", `exception_owners.credit: team "accounts"`},
		{"owner of no class", "exception_owners: {money: finance}", "exception_owners.money: unknown exception class"},
		{"bad category", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: credit, category: money}]", `category "money"`},
		{"twice", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: credit, category: policy}, {id: x, after: pick.released, expect: pick.confirmed, within: 1h, class: credit, category: policy}]", `id "x" is used twice`},
		{"same event", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.hold, within: 1h, class: credit, category: policy}]", "after and expect are both"},
		{"watch_until", "watch_until: invoiced", `watch_until "invoiced"`},
		{"unknown key", "deadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: credit, category: policy, owner: finance}]", "owner"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(deadlinesBase + c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParsePolicy error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestExamplePolicyHasDeadlines: the example policy with deadlines watches
// the milestones of issue 18, each with an owner.
func TestExamplePolicyHasDeadlines(t *testing.T) {
	p, err := LoadPolicy("../examples/policy-deadlines.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"released-not-picked", "credit-hold-open", "shipped-not-invoiced", "past-cutoff-unshipped"} {
		var d *Deadline
		for i := range p.Deadlines {
			if p.Deadlines[i].ID == id {
				d = &p.Deadlines[i]
			}
		}
		if d == nil {
			t.Errorf("the example policy has no deadline %s", id)
			continue
		}
		if p.Owner(d.Class) == "" {
			t.Errorf("deadline %s: class %s has no owner", id, d.Class)
		}
	}
}
