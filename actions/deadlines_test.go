package actions

import (
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/features"
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
	if d := p.Deadlines[0]; len(d.Expect) != 1 || d.Expect[0] != "credit.released" || d.Open != OpenDue {
		t.Errorf("expect %v, open %q: want a single string read as a list of one, open defaulting to due", d.Expect, d.Open)
	}
	l, err := ParsePolicy([]byte(deadlinesBase + `exception_owners: {carrier: finance}
deadlines:
- {id: c, after: carrier.status, codes: [NO_SHOW, ROLLED], open: start, expect: [shipment.confirmed, order.changed], within: 2h, class: carrier, category: execution}
`))
	if err != nil {
		t.Fatalf("a deadline with a list, codes and open: start: %v", err)
	}
	if d := l.Deadlines[0]; !d.OpensAtStart() || !d.Expects("order.changed") || d.Expects("carrier.status") || len(d.Codes) != 2 {
		t.Errorf("parsed %+v, want open at start, expecting either event, two codes", d)
	}
	cases := []struct{ name, doc, want string }{
		{"unknown after", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.held, expect: credit.released, within: 1h, class: credit, category: policy}]", `deadlines[0] (x).after "credit.held"`},
		{"context type", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: warehouse.load, within: 1h, class: credit, category: policy}]", `deadlines[0] (x).expect[0] "warehouse.load"`},
		{"expect list", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: [credit.released, order.cancelled, credit.helt], within: 1h, class: credit, category: policy}]", `deadlines[0] (x).expect[2] "credit.helt"`},
		{"expect empty", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: [], within: 1h, class: credit, category: policy}]", `deadlines[0] (x).expect is empty`},
		{"next milestone with others", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: integration.error, expect: [next_milestone, credit.released], within: 1h, class: credit, category: policy}]", `expect[0] "next_milestone" stands alone`},
		{"bad open", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: credit.hold, expect: credit.released, within: 1h, class: credit, category: policy, open: now}]", `deadlines[0] (x).open "now"`},
		{"open at the cutoff", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: cutoff, expect: shipment.confirmed, within: 1h, class: credit, category: policy, open: start}]", `open start: an exception cannot open at the cutoff`},
		{"empty code", "exception_owners: {credit: finance}\ndeadlines: [{id: x, after: carrier.status, expect: shipment.confirmed, within: 1h, class: credit, category: policy, codes: [NO_SHOW, \"\"]}]", `deadlines[0] (x).codes[1] ""`},
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

// TestDefaultPolicyShipsDeadlines: the shipped policy watches the milestones
// of issue 18, each reminded until resolved, and every exception class has an
// owner, a team of the escalation ladders.
func TestDefaultPolicyShipsDeadlines(t *testing.T) {
	p, err := ParsePolicy(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"released-not-picked":   "pick.released pick.confirmed 1h0m0s",
		"credit-hold-open":      "credit.hold credit.released 4h0m0s",
		"shipped-not-invoiced":  "shipment.confirmed invoice.created 24h0m0s",
		"past-cutoff-unshipped": "cutoff shipment.confirmed 0s",
	}
	for id, w := range want {
		d := deadlineByID(p, id)
		if d == nil {
			t.Errorf("the shipped policy has no deadline %s", id)
			continue
		}
		if got := d.After + " " + strings.Join(d.Expect, ",") + " " + d.Within.D().String(); got != w {
			t.Errorf("deadline %s: %s, want %s", id, got, w)
		}
		if d.RemindEvery <= 0 {
			t.Errorf("deadline %s sends no reminders", id)
		}
	}
	for _, class := range features.ExceptionClasses[1:] {
		if p.Owner(class) == "" {
			t.Errorf("class %s has no owner in the shipped policy", class)
		}
	}
	if p.WatchUntil != "invoice.created" {
		t.Errorf("watch_until %q, want invoice.created", p.WatchUntil)
	}
}

func deadlineByID(p *Policy, id string) *Deadline {
	for i := range p.Deadlines {
		if p.Deadlines[i].ID == id {
			return &p.Deadlines[i]
		}
	}
	return nil
}

// TestEscalates: an exception's owner moves up the ladder that holds it, one
// tier at a time with that tier's SLA, and stops at the ladder's end; a ladder
// name starts at its first tier, a team of no ladder does not move.
func TestEscalates(t *testing.T) {
	p, err := ParsePolicy([]byte(`version: v1
escalation:
  finance: [{team: credit-desk, sla: 10m}, {team: finance-controller, sla: 30m}, {team: cfo-office, sla: 2h}]
  ops: [{team: order-desk, sla: 15m}]
rules:
- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ owner, next, sla string }{
		{"finance", "finance-controller", "10m0s"},
		{"credit-desk", "finance-controller", "10m0s"},
		{"finance-controller", "cfo-office", "30m0s"},
		{"cfo-office", "", ""},
		{"ops", "", ""},
		{"order-desk", "", ""},
		{"nobody", "", ""},
	} {
		next, sla, ok := p.Escalates(c.owner)
		got := ""
		if ok {
			got = sla.String()
		}
		if next != c.next || got != c.sla {
			t.Errorf("Escalates(%s) = %q after %q, want %q after %q", c.owner, next, got, c.next, c.sla)
		}
	}
}
