package models

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeBundleContract: the README's table of bundle.json fields ("The
// bundle contract (for data scientists)") is the contract data scientists
// write to, so it must match Bundle field by field: the same names, "yes" in
// the required column exactly for the fields bundle.json must have, and every
// tensor written in it a TensorSpec that decodes strictly, with its dtype.
func TestReadmeBundleContract(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := bytes.Cut(raw, []byte("### The bundle contract (for data scientists)"))
	if !ok {
		t.Fatal(`README has no section "### The bundle contract (for data scientists)"`)
	}
	if i := bytes.Index(sec, []byte("\n#")); i >= 0 {
		sec = sec[:i]
	}

	// The table's rows: | `a`, `b` | required | contents |
	documented := map[string]string{} // field -> required column
	contents := map[string]string{}
	row := regexp.MustCompile("^\\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) \\| ([^|]+) \\| (.+) \\|$")
	for line := range strings.SplitSeq(string(sec), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for f := range strings.SplitSeq(m[1], ", ") {
			f = strings.Trim(f, "`")
			documented[f] = strings.TrimSpace(m[2])
			contents[f] = m[3]
		}
	}
	if len(documented) == 0 {
		t.Fatal("found no field rows in the README's bundle contract table")
	}

	// What Bundle reads: json names, required unless omitempty.
	code := map[string]bool{} // field -> required
	bt := reflect.TypeFor[Bundle]()
	for i := range bt.NumField() {
		tag := bt.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		code[name] = !strings.Contains(opts, "omitempty")
	}
	for f, required := range code {
		req, ok := documented[f]
		switch {
		case !ok:
			t.Errorf("bundle.json field %q is not in the README's contract table", f)
		case required && req != "yes":
			t.Errorf("README says %q is required %q; bundle.json must have it: write yes", f, req)
		case !required && req == "yes":
			t.Errorf("README says %q is required; the code reads it as optional (omitempty): say when it is needed, or no", f)
		}
	}
	for f := range documented {
		if _, ok := code[f]; !ok {
			t.Errorf("README's contract table documents %q, which bundle.json does not have (unknown fields are refused)", f)
		}
	}

	// Every tensor the table writes ({"name": …}) is a TensorSpec as the
	// loader reads it: no unknown field, a dtype, a name and a shape.
	tensor := regexp.MustCompile("`(\\{\"name\"[^`]*\\})`")
	var n int
	for _, f := range []string{"inputs", "outputs"} {
		for _, m := range tensor.FindAllStringSubmatch(contents[f], -1) {
			n++
			var ts TensorSpec
			// "[...]" stands for the feature names, listed elsewhere.
			dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(m[1], "[...]", "[]")))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ts); err != nil {
				t.Errorf("README's %s example %s does not decode as a tensor: %v", f, m[1], err)
				continue
			}
			if !slices.Contains([]string{"float32", "int64"}, ts.DType) || ts.Name == "" || len(ts.Shape) == 0 {
				t.Errorf("README's %s example %s lacks a dtype (float32 or int64), a name or a shape: bundle.json requires them", f, m[1])
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d tensor examples in the README's inputs and outputs rows, want the features, tokens and both models' outputs", n)
	}
}
