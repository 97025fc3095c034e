package mapping

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCSVLogReadsRowsAndRejectsBadOnes(t *testing.T) {
	l, err := NewCSVLog(strings.NewReader("case_id,activity,note\nSO-1,Create,\"two\nlines\"\nSO-2,Pick\nSO-3,Pick,\n"))
	if err != nil {
		t.Fatal(err)
	}
	rec, line, err := l.Next()
	if err != nil || line != 2 || rec.Fields["note"] != "two\nlines" {
		t.Fatalf("Next = %v, %d, %v", rec.Fields, line, err)
	}
	if _, line, err := l.Next(); !errors.Is(err, ErrBadCSV) || line != 4 {
		t.Fatalf("a short row: line %d, %v; want ErrBadCSV at line 4", line, err)
	}
	rec, line, err = l.Next()
	if err != nil || line != 5 || len(rec.Fields) != 2 {
		t.Fatalf("after a bad row: %v, %d, %v (empty cells left out)", rec.Fields, line, err)
	}
	if _, _, err := l.Next(); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}

func TestCSVLogStopsAtALineWithoutEnd(t *testing.T) {
	l, err := NewCSVLog(strings.NewReader("a,b\n1," + strings.Repeat("x", maxCSVLineBytes+1) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Next = %v, want ErrLineTooLong", err)
	}
	if _, err := NewCSVLog(strings.NewReader(strings.Repeat("a", maxCSVLineBytes+1))); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("NewCSVLog = %v, want ErrLineTooLong", err)
	}
}

func TestCSVLogRefusesABadHeader(t *testing.T) {
	for _, h := range []string{"", "a,,b\n", "a,b,a\n"} {
		if _, err := NewCSVLog(strings.NewReader(h)); err == nil {
			t.Errorf("header %q accepted", h)
		}
	}
}
