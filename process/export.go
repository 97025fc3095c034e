package process

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/orderwatch/orderwatch/features"
)

// Label is the known outcome of an order, as `orderwatch simulate --labels` writes
// it: order_id,missed_cutoff,minutes_late,exception_class.
type Label struct {
	MissedCutoff   bool
	MinutesLate    float64
	ExceptionClass string
}

// ReadLabels reads a labels CSV with a header line.
func ReadLabels(r io.Reader) (map[string]Label, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("process: read labels header: %w", err)
	}
	want := []string{"order_id", "missed_cutoff", "minutes_late", "exception_class"}
	if len(head) < len(want) {
		return nil, fmt.Errorf("process: labels header %v, want %v", head, want)
	}
	for i, w := range want {
		if head[i] != w {
			return nil, fmt.Errorf("process: labels column %d is %q, want %q", i+1, head[i], w)
		}
	}
	out := map[string]Label{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("process: labels line %d: %w", line, err)
		}
		late, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return nil, fmt.Errorf("process: labels line %d: minutes_late %q: %w", line, rec[2], err)
		}
		out[rec[0]] = Label{MissedCutoff: rec[1] == "1", MinutesLate: late, ExceptionClass: rec[3]}
	}
}

// appendLabelColumns appends the names of the label columns, last in an
// exported row.
func appendLabelColumns(head []string) []string {
	return append(head, "missed_cutoff", "minutes_late", "exception_class")
}

// appendLabel appends the label columns of l, or empty ones when ok is false.
func appendLabel(rec []string, l Label, ok bool) []string {
	if !ok {
		return append(rec, "", "", "")
	}
	missed := "0"
	if l.MissedCutoff {
		missed = "1"
	}
	return append(rec, missed, strconv.FormatFloat(l.MinutesLate, 'f', -1, 64), l.ExceptionClass)
}

// Exporter writes rows as CSV training data: order, moment, trigger, every feature
// of the spec, the score, and the order's label when labels are given. Rows only
// hold what had arrived by their moment, so they are point-in-time correct.
type Exporter struct {
	w      *csv.Writer
	labels map[string]Label
	tok    *features.Tokenizer
	ids    []int64
	buf    []byte
	rec    []string
	err    error
}

// NewExporter writes the header line. labels may be nil. With a tokenizer, a
// "tokens" column holds the token ids of the order's texts at the moment,
// space-separated (features.MaxTokens of them), for text models.
func NewExporter(w io.Writer, labels map[string]Label, tok *features.Tokenizer) *Exporter {
	e := &Exporter{w: csv.NewWriter(w), labels: labels, tok: tok}
	head := []string{"order_id", "moment", "trigger", "event_id"}
	head = append(head, features.Names[:]...)
	head = append(head, "risk")
	if tok != nil {
		head = append(head, "tokens")
	}
	if labels != nil {
		head = appendLabelColumns(head)
	}
	e.rec = make([]string, 0, len(head))
	e.err = e.w.Write(head)
	return e
}

// Row writes one row. Errors are kept for Flush.
func (e *Exporter) Row(r *Row) {
	if e.err != nil {
		return
	}
	rec := append(e.rec[:0], r.OrderID, r.Moment.UTC().Format(time.RFC3339Nano), r.Trigger, r.EventID)
	for _, v := range r.Vector {
		rec = append(rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
	}
	rec = append(rec, strconv.FormatFloat(float64(r.Risk), 'g', 6, 32))
	if e.tok != nil {
		e.ids = e.tok.Encode(r.Texts, e.ids[:0])
		e.buf = e.buf[:0]
		for i, id := range e.ids {
			if i > 0 {
				e.buf = append(e.buf, ' ')
			}
			e.buf = strconv.AppendInt(e.buf, id, 10)
		}
		rec = append(rec, string(e.buf))
	}
	if e.labels != nil {
		l, ok := e.labels[r.OrderID]
		rec = appendLabel(rec, l, ok)
	}
	e.rec = rec
	e.err = e.w.Write(rec)
}

// Flush writes what is buffered and returns the first error.
func (e *Exporter) Flush() error {
	e.w.Flush()
	if e.err != nil {
		return e.err
	}
	return e.w.Error()
}

// JoinStats counts the rows JoinLabels wrote.
type JoinStats struct {
	Rows      int // rows written, the header not counted
	Unlabeled int // of those, rows whose order has no label
}

// JoinLabels copies rows exported without labels (an Exporter with nil labels)
// from src to dst, with the label columns added: each row's order's label from
// labels, or empty columns when it has none. dst then has the columns an
// Exporter given those labels would have written. It reads one row at a time,
// so the rows may be far more than memory holds; labels is one entry per order.
func JoinLabels(dst io.Writer, src io.Reader, labels map[string]Label) (JoinStats, error) {
	var st JoinStats
	cr := csv.NewReader(src)
	cr.ReuseRecord = true
	cw := csv.NewWriter(dst)
	rec, err := cr.Read()
	if err != nil {
		return st, fmt.Errorf("process: join labels: read header: %w", err)
	}
	if rec[0] != "order_id" || rec[len(rec)-1] == "exception_class" {
		return st, fmt.Errorf("process: join labels: header %q...%q is not that of rows exported without labels", rec[0], rec[len(rec)-1])
	}
	out := appendLabelColumns(append(make([]string, 0, len(rec)+3), rec...))
	if err := cw.Write(out); err != nil {
		return st, fmt.Errorf("process: join labels: %w", err)
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("process: join labels: row %d: %w", line, err)
		}
		l, ok := labels[rec[0]]
		if !ok {
			st.Unlabeled++
		}
		out = appendLabel(append(out[:0], rec...), l, ok)
		if err := cw.Write(out); err != nil {
			return st, fmt.Errorf("process: join labels: %w", err)
		}
		st.Rows++
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return st, fmt.Errorf("process: join labels: %w", err)
	}
	return st, nil
}
