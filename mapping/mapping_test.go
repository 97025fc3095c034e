package mapping

import (
	"errors"
	"strings"
	"testing"
)

// entryYAML is a valid one-entry mapping; tests replace parts of it.
const entryYAML = `version: 1
tables:
  sites: {S01: WH-EAST}
records:
- name: created
  when: 'r.activity == "Create"'
  type: order.created
  order_id: 'r.case_id'
  occurred_at: 'r.timestamp'
  data:
    warehouse: 'tables.sites[r.site]'
    ship_cutoff: 'timestamp(r.timestamp) + duration("72h")'
    lines: 'int(r.lines)'
`

func TestCompileAcceptsTheExamples(t *testing.T) {
	for _, p := range []string{"../examples/mapping/csv-event-log.yaml", "../examples/mapping/middleware-json.yaml"} {
		if _, err := Load(p); err != nil {
			t.Errorf("Load(%s): %v", p, err)
		}
	}
	if _, err := Compile([]byte(entryYAML)); err != nil {
		t.Fatalf("Compile: %v", err)
	}
}

func TestCompileErrorsNameEntryFieldAndFix(t *testing.T) {
	long := "'" + strings.Repeat("a", MaxExprBytes+1) + "'"
	var many strings.Builder
	many.WriteString("version: 1\nrecords:\n")
	for i := 0; i <= MaxEntries; i++ {
		many.WriteString("- {name: e" + strings.Repeat("x", i%3) + itoa(i) + ", when: 'true', type: pick.confirmed, order_id: 'r.o', occurred_at: 'r.t'}\n")
	}
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown type", strings.Replace(entryYAML, "type: order.created", "type: order.shipped", 1),
			[]string{"entry created", `type "order.shipped" is not a schema-1 event type`, "use one of"}},
		{"unknown data field for the type", strings.Replace(entryYAML, "    lines: 'int(r.lines)'", "    text: 'r.note'", 1),
			[]string{"entry created", "data.text is not a data field of order.created", "remove it"}},
		{"data field of a milestone", strings.Replace(entryYAML, "type: order.created", "type: pick.confirmed", 1),
			[]string{"entry created", "is not a data field of pick.confirmed", "envelope only"}},
		{"does not compile", strings.Replace(entryYAML, "'int(r.lines)'", "'int(r.lines'", 1),
			[]string{"entry created: data.lines", "does not compile", "fix the CEL expression"}},
		{"unknown variable", strings.Replace(entryYAML, "'r.case_id'", "'rec.case_id'", 1),
			[]string{"entry created: order_id", "does not compile"}},
		{"wrong result type of a data field", strings.Replace(entryYAML, "'int(r.lines)'", `'"many"'`, 1),
			[]string{"entry created: data.lines", "gives string", "the field takes an integer"}},
		{"wrong result type of when", strings.Replace(entryYAML, `'r.activity == "Create"'`, `'r.activity + "x"'`, 1),
			[]string{"entry created: when", "the field takes a bool"}},
		{"wrong result type of occurred_at", strings.Replace(entryYAML, "occurred_at: 'r.timestamp'", "occurred_at: '42'", 1),
			[]string{"entry created: occurred_at", "gives int", "timestamp"}},
		{"required data field missing", strings.Replace(entryYAML, "    warehouse: 'tables.sites[r.site]'\n", "", 1),
			[]string{"entry created", "order.created needs data.warehouse"}},
		{"no order_id", strings.Replace(entryYAML, "  order_id: 'r.case_id'\n", "", 1),
			[]string{"entry created", "no `order_id`"}},
		{"order_id on a context event", strings.Replace(strings.Replace(entryYAML, "type: order.created", "type: carrier.performance", 1),
			"data:\n    warehouse: 'tables.sites[r.site]'\n    ship_cutoff: 'timestamp(r.timestamp) + duration(\"72h\")'\n    lines: 'int(r.lines)'\n", "data: {carrier: 'r.c'}\n", 1),
			[]string{"entry created", "context event", "remove `order_id`"}},
		{"unknown key in the file", strings.Replace(entryYAML, "occurred_at:", "ocurred_at:", 1),
			[]string{"yaml", "ocurred_at"}},
		{"wrong version", strings.Replace(entryYAML, "version: 1", "version: 2", 1), []string{"write `version: 1`"}},
		{"duplicate name", entryYAML + strings.SplitN(entryYAML, "records:\n", 2)[1], []string{"entry created: name used twice"}},
		{"expression too long", strings.Replace(entryYAML, "'r.case_id'", long, 1),
			[]string{"entry created: order_id", "limit 4096"}},
		{"too many entries", many.String(), []string{"257 record entries, limit 256"}},
		{"file too large", entryYAML + "#" + strings.Repeat("x", MaxFileBytes), []string{"over 1048576 bytes"}},
		{"skip with a type", "version: 1\nrecords:\n- {name: s, when: 'true', skip: true, type: note.added}\n",
			[]string{"entry s", "a skip entry produces no event"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile([]byte(c.yaml))
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			if !errors.Is(err, ErrBadMapping) {
				t.Errorf("error %v does not wrap ErrBadMapping", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}
