package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/orderwatch/orderwatch/mapping"
)

type importConfig struct {
	Format, Mapping, In, Out, Rejects string
	Strict                            bool
	// sort bounds the chunks of the time-order sort; the zero value is the default
	// (tests make it small to exercise the merge).
	sort mapping.TimeOrderOptions
}

// maxSummaryKinds bounds the kinds (activities) the summary tells apart; the rest
// are counted under "(other)".
const maxSummaryKinds = 100

// ocelChunkBytes bounds the time-order sort's chunk for an OCEL 2.0 import.
const ocelChunkBytes = 4 << 20

func importCmd(args []string) error {
	var c importConfig
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.StringVar(&c.Format, "format", "csv", "input format: csv (an event log: a header row, a row per event) or ocel2 (OCEL 2.0 JSON; the mapping's ocel section says which objects are orders)")
	fs.StringVar(&c.Mapping, "mapping", "", "mapping `file` (YAML, CEL expressions; see README \"Bring your own events\")")
	fs.StringVar(&c.In, "in", "", "input `file`; - for stdin")
	fs.StringVar(&c.Out, "out", "", "write the schema-1 events, in time order, to this NDJSON `file`; default stdout")
	fs.StringVar(&c.Rejects, "rejects", "", "write each record not mapped to this NDJSON `file`: line, reason, detail, record")
	fs.BoolVar(&c.Strict, "strict", false, "stop at the first record not mapped, and write no output")
	memLimit := memoryLimit{auto: true}
	fs.Var(&memLimit, "memory-limit", "Go heap soft `limit`, as run takes it: auto, off, or a size such as 160MiB (an OCEL 2.0 log's objects stay in memory)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	memLimit.apply(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return runImport(ctx, c, os.Stdout, os.Stderr)
}

// importSource is a log import reads records from: mapping.CSVLog or
// mapping.OCELLog. Next's int is the record's line (CSV) or event number (OCEL).
type importSource interface {
	Next() (mapping.Record, int, error)
	Row(mapping.Record) map[string]string
}

// importSummary counts what an import did.
type importSummary struct {
	Records, Mapped, Skipped, Rejected, Events int
	ByType                                     map[string]int    // events by schema-1 type
	ByReason                                   map[string]int    // rejected records by reason
	ByKind                                     map[string][3]int // records by kind: mapped, skipped, rejected
}

// Columns of importSummary.ByKind.
const (
	kindMapped = iota
	kindSkipped
	kindRejected
)

func (s *importSummary) kind(k string, col int) {
	if k == "" {
		k = "(no kind)"
	}
	if _, ok := s.ByKind[k]; !ok && len(s.ByKind) >= maxSummaryKinds {
		k = "(other)"
	}
	c := s.ByKind[k]
	c[col]++
	s.ByKind[k] = c
}

// rejectLine is one line of the rejects file.
type rejectLine struct {
	Line   int               `json:"line"`
	Reason string            `json:"reason"`
	Entry  string            `json:"entry,omitempty"`
	Field  string            `json:"field,omitempty"`
	Detail string            `json:"detail"`
	Record map[string]string `json:"record,omitempty"`
}

func runImport(ctx context.Context, c importConfig, stdout, stderr io.Writer) (err error) {
	switch c.Format {
	case "csv", "ocel2":
	default:
		return fmt.Errorf("import: --format %q: want csv or ocel2", c.Format)
	}
	if c.Mapping == "" || c.In == "" {
		return errors.New("import: --mapping and --in are required")
	}
	m, err := mapping.Load(c.Mapping)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	in, err := openInput("import", c.In)
	if err != nil {
		return err
	}
	defer in.Close()
	var log importSource
	badKind := "(bad csv)"
	if c.Format == "ocel2" {
		log, err = mapping.NewOCELLog(bufio.NewReaderSize(in, 1<<20), m)
		badKind = "(bad event)"
	} else {
		log, err = mapping.NewCSVLog(bufio.NewReaderSize(in, 1<<20))
	}
	if err != nil {
		return fmt.Errorf("import: %s: %w", c.In, err)
	}

	var rejects *bufio.Writer
	var rejectsFile *os.File
	if c.Rejects != "" {
		if rejectsFile, err = os.Create(c.Rejects); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer rejectsFile.Close()
		rejects = bufio.NewWriter(rejectsFile)
	}
	if c.Format == "ocel2" && c.sort.ChunkBytes == 0 {
		// The log's objects stay in memory while the events stream: a smaller
		// chunk keeps the whole under 200 MB for a million events (README).
		c.sort.ChunkBytes = ocelChunkBytes
	}
	order := mapping.NewTimeOrder(c.sort)
	defer order.Close()

	sum := importSummary{ByType: map[string]int{}, ByReason: map[string]int{}, ByKind: map[string][3]int{}}
	progress := newProgress(stderr, "import", "records", in)
	shown := 0
	reject := func(line int, re *mapping.RecordError, row map[string]string) error {
		sum.Rejected++
		sum.ByReason[re.Reason]++
		if c.Strict {
			return fmt.Errorf("import: %s line %d: %w (--strict stops at the first; without it, --rejects FILE keeps every rejected record)", c.In, line, re)
		}
		if rejects != nil {
			b, _ := json.Marshal(rejectLine{Line: line, Reason: re.Reason, Entry: re.Entry, Field: re.Field, Detail: re.Detail, Record: row})
			rejects.Write(b)
			return rejects.WriteByte('\n')
		}
		if shown < 10 {
			shown++
			fmt.Fprintf(stderr, "import: line %d rejected: %s\n", line, re.Error())
		}
		return nil
	}
	for seq := uint64(0); ; seq++ {
		if seq%1024 == 0 && ctx.Err() != nil {
			return fmt.Errorf("import: %w", ctx.Err())
		}
		rec, line, err := log.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if !errors.Is(err, mapping.ErrBadCSV) && !errors.Is(err, mapping.ErrBadOCEL) {
				return fmt.Errorf("import: %s: %w", c.In, err)
			}
			sum.Records++
			sum.kind(badKind, kindRejected)
			reason := mapping.ReasonBadRecord
			if errors.Is(err, mapping.ErrOCELOversize) {
				reason = mapping.ReasonOversize
			}
			if err := reject(line, &mapping.RecordError{Reason: reason, Detail: err.Error()}, nil); err != nil {
				return err
			}
			continue
		}
		sum.Records++
		progress.show(sum.Records)
		kind := m.Kind(rec)
		evs, err := m.Map(rec)
		if err != nil {
			var re *mapping.RecordError
			if !errors.As(err, &re) {
				return fmt.Errorf("import: %s line %d: %w", c.In, line, err)
			}
			sum.kind(kind, kindRejected)
			if err := reject(line, re, log.Row(rec)); err != nil {
				return err
			}
			continue
		}
		if len(evs) == 0 {
			sum.kind(kind, kindSkipped)
			sum.Skipped++
			continue
		}
		sum.kind(kind, kindMapped)
		sum.Mapped++
		for i, ev := range evs {
			sum.Events++
			sum.ByType[ev.Event.Type]++
			if err := order.Add(ev.Event.OccurredAt, seq, i, ev.JSON); err != nil {
				return fmt.Errorf("import: %w", err)
			}
		}
	}
	progress.done()
	if rejects != nil {
		if err := rejects.Flush(); err != nil {
			return fmt.Errorf("import: write %s: %w", c.Rejects, err)
		}
		if err := rejectsFile.Close(); err != nil {
			return fmt.Errorf("import: write %s: %w", c.Rejects, err)
		}
	}
	if err := writeImport(c.Out, order, stdout); err != nil {
		return err
	}
	printImportSummary(stderr, c, &sum)
	return nil
}

// writeImport writes the events in time order to out (stdout when empty), through a
// temporary file renamed at the end, so a failed import leaves no half file.
func writeImport(out string, order *mapping.TimeOrder, stdout io.Writer) error {
	if out == "" {
		if _, err := order.WriteTo(stdout); err != nil {
			return fmt.Errorf("import: write stdout: %w", err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it 0600; an output is for others too
		f.Close()
		return fmt.Errorf("import: %w", err)
	}
	if _, err := order.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("import: write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("import: write %s: %w", out, err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

func printImportSummary(w io.Writer, c importConfig, s *importSummary) {
	fmt.Fprintf(w, "import: %d records: %d mapped to %d events, %d skipped, %d rejected\n",
		s.Records, s.Mapped, s.Events, s.Skipped, s.Rejected)
	if len(s.ByKind) > 0 {
		fmt.Fprintf(w, "  %-28s %8s %8s %8s\n", "kind", "mapped", "skipped", "rejected")
		for _, k := range slices.Sorted(maps.Keys(s.ByKind)) {
			c := s.ByKind[k]
			fmt.Fprintf(w, "  %-28s %8d %8d %8d\n", k, c[kindMapped], c[kindSkipped], c[kindRejected])
		}
	}
	if len(s.ByType) > 0 {
		fmt.Fprintf(w, "  events by type: %s\n", countList(s.ByType))
	}
	if s.Rejected > 0 {
		where := "not kept: give --rejects FILE"
		if c.Rejects != "" {
			where = "in " + c.Rejects
		}
		fmt.Fprintf(w, "  rejected by reason: %s (%s)\n", countList(s.ByReason), where)
	}
}

func countList(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
