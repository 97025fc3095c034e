package actions

import (
	"strings"
	"testing"
)

// TestDataQualityValidated: the data-quality checks and their owner are
// checked at load; the owner defaults to the integration team, which the
// shipped policy has, and an error names the field.
func TestDataQualityValidated(t *testing.T) {
	const withIntegration = `version: v1
escalation:
  finance: [{team: credit-desk, sla: 10m}]
  integration: [{team: integration-desk, sla: 30m}]
rules:
- {id: a, action: flag_finance, mode: auto, when: {risk: {gte: 0.5}}}
`
	p, err := ParsePolicy([]byte(withIntegration + "data_quality: [invoiced_before_shipped, shipped_without_pick]\n"))
	if err != nil {
		t.Fatalf("a valid policy: %v", err)
	}
	if p.DataQualityOwner != DefaultDataQualityOwner || !p.RunsCheck(CheckShippedWithoutPick) || p.RunsCheck(CheckActivityAfterCancel) {
		t.Errorf("parsed %+v, want owner %s and two checks", p.ExceptionPolicy, DefaultDataQualityOwner)
	}
	if p, err := ParsePolicy([]byte(deadlinesBase)); err != nil || p.DataQualityOwner != "" || len(p.DataQuality) != 0 {
		t.Errorf("a policy without checks: %v, owner %q; want no checks, no owner, no error", err, p.DataQualityOwner)
	}
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown check", withIntegration + "data_quality: [shipped_twice]\n", `data_quality[0] "shipped_twice": unknown check`},
		{"check twice", withIntegration + "data_quality: [shipped_without_pick, shipped_without_pick]\n", `data_quality[1] "shipped_without_pick" is listed twice`},
		{"default owner missing", deadlinesBase + "data_quality: [shipped_without_pick]\n", `data_quality_owner "integration" is neither a ladder`},
		{"owner unknown", withIntegration + "data_quality: [shipped_without_pick]\ndata_quality_owner: it\n", `data_quality_owner "it"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParsePolicy error = %v, want one containing %q", err, c.want)
			}
		})
	}
	if p, err := ParsePolicy([]byte(withIntegration + "data_quality: [shipped_without_pick]\ndata_quality_owner: credit-desk\n")); err != nil || p.DataQualityOwner != "credit-desk" {
		t.Errorf("owner a team of one: %v", err)
	}
}

// TestShippedPoliciesHaveTheDataQualityOwner: the shipped policy has the
// default owner's ladder, so a policy copied from it may turn the checks on
// without naming an owner; the example policy with deadlines runs every check
// but picked_before_released.
func TestShippedPoliciesHaveTheDataQualityOwner(t *testing.T) {
	def, err := ParsePolicy(DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := def.Escalation[DefaultDataQualityOwner]; !ok {
		t.Errorf("the shipped policy has no ladder %q", DefaultDataQualityOwner)
	}
	p, err := LoadPolicy("../examples/policy-deadlines.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range DataQualityChecks() {
		if p.RunsCheck(c) != (c != CheckPickedBeforeReleased) {
			t.Errorf("the example policy runs %s: %v", c, p.RunsCheck(c))
		}
	}
}
