package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// input is a command's --in: a file, or standard input for "-", counted as it
// is read so that progress can say how far it is.
type input struct {
	r    io.Reader
	n    int64 // bytes read so far
	size int64 // the file's size; 0 for standard input
	f    *os.File
}

// openInput opens path for cmd (the error names cmd).
func openInput(cmd, path string) (*input, error) {
	if path == "-" {
		return &input{r: os.Stdin}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	in := &input{r: f, f: f}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		in.size = fi.Size()
	}
	return in, nil
}

func (in *input) Read(p []byte) (int, error) {
	n, err := in.r.Read(p)
	in.n += int64(n)
	return n, err
}

// Close closes the file; standard input stays open.
func (in *input) Close() error {
	if in.f == nil {
		return nil
	}
	return in.f.Close()
}

// progressLine shows "cmd: NN% N what" on a terminal, at most twice a second,
// over itself; it is nil, and its methods do nothing, when stderr is no
// terminal (a log, a pipe, a test).
type progressLine struct {
	w         io.Writer
	cmd, what string
	in        *input
	last      time.Time
}

func newProgress(stderr io.Writer, cmd, what string, in *input) *progressLine {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progressLine{w: stderr, cmd: cmd, what: what, in: in, last: time.Now()}
}

// show says that n things are done.
func (p *progressLine) show(n int) {
	if p == nil || time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	pct := ""
	if p.in.size > 0 {
		pct = fmt.Sprintf(" %3.0f%%", 100*float64(p.in.n)/float64(p.in.size))
	}
	fmt.Fprintf(p.w, "\r%s:%s %d %s", p.cmd, pct, n, p.what)
}

// done clears the line.
func (p *progressLine) done() {
	if p != nil {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
