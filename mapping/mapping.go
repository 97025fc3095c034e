// Package mapping turns foreign records (a middleware's JSON message, a row of a CSV
// event log, an event of an OCEL 2.0 log with the order it reaches) into schema-1 events, by a mapping file: YAML whose entries say, with
// CEL expressions (cel.dev/cel-go, formerly github.com/google/cel-go), which records become
// which event type and where each field of the event comes from. The import command
// and the live bridge (run --mapping, pipeline.Bridge) use it. It is pure Go.
//
// CEL, as Kubernetes uses it for admission policies, is a well-kept language made for
// this: it is sandboxed (no I/O, no loops beyond bounded macros), type-checked when
// the file is compiled, and every evaluation has a cost bound, so a mapping file from
// outside cannot hang or exhaust the process.
package mapping

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"

	"github.com/orderwatch/orderwatch/features"
)

// Bounds of a mapping file and of what it evaluates; everything from outside is
// bounded.
const (
	// MaxFileBytes bounds the mapping file.
	MaxFileBytes = 1 << 20
	// MaxEntries bounds the record entries of a mapping file.
	MaxEntries = 256
	// MaxExprBytes bounds one CEL expression.
	MaxExprBytes = 4096
	// MaxTableRows bounds the rows of all tables together.
	MaxTableRows = 100_000
	// MaxRecordBytes bounds one record (a message, a CSV row); a larger one is
	// rejected with ReasonOversize. Schema-1 events are bounded the same.
	MaxRecordBytes = features.MaxEventBytes
	// CostLimit bounds the cost of one evaluation of one expression, in CEL's
	// cost units (about one per operation, strings by their length): far above
	// any mapping (a field read, a lookup, a concatenation cost tens), low enough
	// that no expression can spend more than microseconds on one record.
	CostLimit = 100_000
)

// Mapping is a compiled mapping file. It is safe for concurrent use.
type Mapping struct {
	tables  map[string]map[string]string
	kind    *expr // nil: no kind expression
	entries []*entry
	ocel    *ocelConfig // nil: no ocel section
}

// entry is one compiled record entry.
type entry struct {
	name     string
	subjects []string
	skip     bool
	typ      string
	when     *expr
	id       *expr // nil: a derived id
	orderID  *expr
	occurred *expr
	source   *expr
	actor    *expr
	data     []dataExpr
}

type dataExpr struct {
	name string
	kind kind
	e    *expr
}

// expr is one compiled expression with its text (for details).
type expr struct {
	field string
	text  string
	prg   cel.Program
}

// fileShape is the YAML of a mapping file.
type fileShape struct {
	Version int                          `yaml:"version"`
	Kind    string                       `yaml:"kind"`
	Tables  map[string]map[string]string `yaml:"tables"`
	Records []entryShape                 `yaml:"records"`
	OCEL    *ocelShape                   `yaml:"ocel"`
}

type entryShape struct {
	Name       string            `yaml:"name"`
	Subjects   []string          `yaml:"subjects"`
	When       string            `yaml:"when"`
	Skip       bool              `yaml:"skip"`
	Type       string            `yaml:"type"`
	ID         string            `yaml:"id"`
	OrderID    string            `yaml:"order_id"`
	OccurredAt string            `yaml:"occurred_at"`
	Source     string            `yaml:"source"`
	Actor      string            `yaml:"actor"`
	Data       map[string]string `yaml:"data"`
}

// Load reads and compiles the mapping file at path.
func Load(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("mapping: read %s: %w", path, err)
	}
	m, err := Compile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Compile parses and compiles a mapping file. Every error wraps ErrBadMapping and
// names the entry, the field and what to do.
func Compile(b []byte) (*Mapping, error) {
	if len(b) > MaxFileBytes {
		return nil, badMapping("file is over %d bytes: split it or shorten its tables", MaxFileBytes)
	}
	var f fileShape
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, badMapping("yaml: %v", err)
	}
	if f.Version != 1 {
		return nil, badMapping("version is %d: write `version: 1`", f.Version)
	}
	if len(f.Records) == 0 {
		return nil, badMapping("no records: add at least one entry under `records`")
	}
	if len(f.Records) > MaxEntries {
		return nil, badMapping("%d record entries, limit %d", len(f.Records), MaxEntries)
	}
	rows := 0
	for _, t := range f.Tables {
		rows += len(t)
	}
	if rows > MaxTableRows {
		return nil, badMapping("tables hold %d rows, limit %d", rows, MaxTableRows)
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("mapping: cel environment: %w", err)
	}
	m := &Mapping{tables: f.Tables}
	if m.tables == nil {
		m.tables = map[string]map[string]string{}
	}
	if m.ocel, err = compileOCEL(f.OCEL); err != nil {
		return nil, err
	}
	if f.Kind != "" {
		if m.kind, err = compileExpr(env, "", "kind", f.Kind, kindString); err != nil {
			return nil, err
		}
	}
	names := map[string]bool{}
	for i, s := range f.Records {
		if s.Name == "" {
			return nil, badMapping("records[%d]: no name: give each entry a unique `name`", i)
		}
		if names[s.Name] {
			return nil, badMapping("entry %s: name used twice: give each entry a unique `name`", s.Name)
		}
		names[s.Name] = true
		e, err := compileEntry(env, s)
		if err != nil {
			return nil, err
		}
		m.entries = append(m.entries, e)
	}
	return m, nil
}

func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("r", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("tables", cel.MapType(cel.StringType, cel.MapType(cel.StringType, cel.StringType))),
		cel.OptionalTypes(),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(MaxExprBytes),
	)
}

func compileEntry(env *cel.Env, s entryShape) (*entry, error) {
	e := &entry{name: s.Name, subjects: s.Subjects, skip: s.Skip, typ: s.Type}
	for _, subj := range s.Subjects {
		if subj == "" || strings.ContainsAny(subj, " \t\r\n") || strings.HasPrefix(subj, ".") || strings.HasSuffix(subj, ".") {
			return nil, badMapping("entry %s: subject %q is not a NATS subject: write tokens separated by dots, with * or > as wildcards", s.Name, subj)
		}
	}
	var err error
	if s.When == "" {
		return nil, badMapping("entry %s: no `when`: give a CEL bool over the record r (e.g. 'r.kind == \"SalesOrderCreated\"'; 'true' for every record)", s.Name)
	}
	if e.when, err = compileExpr(env, s.Name, "when", s.When, kindBool); err != nil {
		return nil, err
	}
	if s.Skip {
		if s.Type != "" || s.ID != "" || s.OrderID != "" || s.OccurredAt != "" || len(s.Data) > 0 {
			return nil, badMapping("entry %s: a skip entry produces no event: remove its type, id, order_id, occurred_at and data", s.Name)
		}
		return e, nil
	}
	if !features.KnownType(s.Type) {
		return nil, badMapping("entry %s: type %q is not a schema-1 event type: use one of %s", s.Name, s.Type, strings.Join(features.Types, ", "))
	}
	if s.ID != "" {
		if e.id, err = compileExpr(env, s.Name, "id", s.ID, kindString); err != nil {
			return nil, err
		}
	}
	if !features.IsContext(s.Type) {
		if s.OrderID == "" {
			return nil, badMapping("entry %s: no `order_id`: %s needs a CEL expression for its order (e.g. 'r.order')", s.Name, s.Type)
		}
		if e.orderID, err = compileExpr(env, s.Name, "order_id", s.OrderID, kindString); err != nil {
			return nil, err
		}
	} else if s.OrderID != "" {
		return nil, badMapping("entry %s: %s is a context event and carries no order: remove `order_id`", s.Name, s.Type)
	}
	if s.OccurredAt == "" {
		return nil, badMapping("entry %s: no `occurred_at`: give a CEL expression for the event's time (an RFC 3339 string or a timestamp)", s.Name)
	}
	if e.occurred, err = compileExpr(env, s.Name, "occurred_at", s.OccurredAt, kindTime); err != nil {
		return nil, err
	}
	if s.Source != "" {
		if e.source, err = compileExpr(env, s.Name, "source", s.Source, kindString); err != nil {
			return nil, err
		}
	}
	if s.Actor != "" {
		if e.actor, err = compileExpr(env, s.Name, "actor", s.Actor, kindString); err != nil {
			return nil, err
		}
	}
	allowed := typeFields[s.Type]
	for _, name := range slices.Sorted(maps.Keys(s.Data)) {
		if !slices.Contains(allowed, name) {
			want := "none: it carries the envelope only"
			if len(allowed) > 0 {
				want = strings.Join(allowed, ", ")
			}
			return nil, badMapping("entry %s: data.%s is not a data field of %s: remove it (the fields of %s: %s)", s.Name, name, s.Type, s.Type, want)
		}
		k := dataKinds[name]
		x, err := compileExpr(env, s.Name, "data."+name, s.Data[name], k)
		if err != nil {
			return nil, err
		}
		e.data = append(e.data, dataExpr{name: name, kind: k, e: x})
	}
	for _, name := range requiredFields[s.Type] {
		if _, ok := s.Data[name]; !ok {
			return nil, badMapping("entry %s: %s needs data.%s: add a CEL expression for it", s.Name, s.Type, name)
		}
	}
	return e, nil
}

// compileExpr compiles one expression and checks that its result type fits k.
func compileExpr(env *cel.Env, entryName, field, text string, k kind) (*expr, error) {
	where := "entry " + entryName + ": " + field
	if entryName == "" {
		where = field
	}
	if len(text) > MaxExprBytes {
		return nil, badMapping("%s: expression is %d bytes, limit %d: move constants to a table", where, len(text), MaxExprBytes)
	}
	ast, iss := env.Compile(text)
	if iss != nil && iss.Err() != nil {
		return nil, badMapping("%s: %q does not compile: fix the CEL expression:\n%v", where, clip(text), iss.Err())
	}
	if !resultFits(ast.OutputType(), k) {
		return nil, badMapping("%s: %q gives %s, the field takes %s: convert it (string(x), int(x), double(x), timestamp(x))", where, clip(text), ast.OutputType(), k)
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, badMapping("%s: %q: %v", where, clip(text), err)
	}
	return &expr{field: field, text: text, prg: prg}, nil
}

// resultFits reports whether an expression whose static type is t may give a value
// of kind k: dyn is checked at run time, an optional by its parameter.
func resultFits(t *cel.Type, k kind) bool {
	if t.IsDyn() {
		return true
	}
	name := t.String()
	if strings.HasPrefix(name, "optional_type(") && len(t.Parameters()) == 1 {
		return resultFits(t.Parameters()[0], k)
	}
	switch k {
	case kindString:
		return name == "string"
	case kindInt, kindFloat:
		return name == "int" || name == "uint" || name == "double"
	case kindTime:
		return name == "string" || name == "google.protobuf.Timestamp"
	case kindBool:
		return name == "bool"
	}
	return false
}

// Subjects returns the NATS subjects the entries name (for the live wiring), in
// file order without repeats.
func (m *Mapping) Subjects() []string {
	var out []string
	for _, e := range m.entries {
		for _, s := range e.subjects {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
