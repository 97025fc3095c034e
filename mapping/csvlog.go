package mapping

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// CSVLog reads a CSV event log as records: a header row naming the columns, then a
// row per event. It streams: one row in memory at a time. Not safe for concurrent
// use.
type CSVLog struct {
	r      *csv.Reader
	header []string
	raw    []byte
}

// ErrBadCSV is returned (wrapped, with the line) by CSVLog.Next for a row that is
// not CSV of the header's width; the log can be read on past it.
var ErrBadCSV = errors.New("mapping: bad csv row")

// maxCSVLineBytes bounds one physical line of a CSV log, so that a file with no
// line breaks cannot make the reader hold it all; a row over MaxRecordBytes is
// rejected (oversize) by Map, a line over this stops the read.
const maxCSVLineBytes = 4 * MaxRecordBytes

// ErrLineTooLong is returned (wrapped) by NewCSVLog and CSVLog.Next when a line of
// the log is over 256 KiB: the file is not a CSV event log, or not one a row per
// line; the read cannot go on.
var ErrLineTooLong = errors.New("mapping: csv line too long")

// NewCSVLog reads the header row of r.
func NewCSVLog(r io.Reader) (*CSVLog, error) {
	cr := csv.NewReader(&lineLimit{r: r})
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("mapping: csv log is empty: want a header row naming the columns")
		}
		return nil, fmt.Errorf("mapping: csv header: %w", err)
	}
	header = append([]string(nil), header...)
	seen := map[string]bool{}
	for i, h := range header {
		if h == "" {
			return nil, fmt.Errorf("mapping: csv header: column %d has no name: name every column", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("mapping: csv header: column %q twice: name every column once", h)
		}
		seen[h] = true
	}
	cr.FieldsPerRecord = len(header)
	return &CSVLog{r: cr, header: header}, nil
}

// Header returns the column names.
func (l *CSVLog) Header() []string { return l.header }

// Next reads the next row as a record (empty cells left out of Fields) with the
// line it starts on. It returns io.EOF at the end, and an error wrapping ErrBadCSV
// for a malformed row, after which Next may be called again. Raw is a canonical
// encoding of the row (column=value pairs), the same however the CSV quoted it;
// it is valid until the next call.
func (l *CSVLog) Next() (Record, int, error) {
	row, err := l.r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Record{}, 0, io.EOF
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return Record{}, pe.StartLine, fmt.Errorf("%w: line %d: %v", ErrBadCSV, pe.StartLine, pe.Err)
		}
		return Record{}, 0, fmt.Errorf("mapping: read csv: %w", err)
	}
	line, _ := l.r.FieldPos(0)
	fields := make(map[string]any, len(row))
	raw := l.raw[:0]
	for i, v := range row {
		raw = append(raw, l.header[i]...)
		raw = append(raw, '=')
		raw = append(raw, v...)
		raw = append(raw, 0)
		if v != "" {
			fields[l.header[i]] = v
		}
	}
	l.raw = raw
	return Record{Fields: fields, Raw: raw}, line, nil
}

// Row returns the cells of a record read by Next as column -> value, every column
// included (for a rejects file).
func (l *CSVLog) Row(rec Record) map[string]string {
	out := make(map[string]string, len(l.header))
	for _, h := range l.header {
		s, _ := rec.Fields[h].(string)
		out[h] = s
	}
	return out
}

// lineLimit fails a read once a line grows over maxCSVLineBytes.
type lineLimit struct {
	r   io.Reader
	run int // bytes since the last newline
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for _, c := range p[:n] {
		if c == '\n' {
			l.run = 0
			continue
		}
		l.run++
		if l.run > maxCSVLineBytes {
			return 0, fmt.Errorf("%w: a line is over %d bytes: want a header row, then a row per event", ErrLineTooLong, maxCSVLineBytes)
		}
	}
	return n, err
}
