package mapping

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// TimeOrder puts encoded events in time order with a deterministic tie-break (the
// record's position in the input, then the event's position among its record's
// events), in bounded memory: it sorts chunks in memory and spills each full chunk
// to a file of a temporary directory, then merges the runs. An input that is
// already in time order costs the same; memory stays about ChunkBytes whatever the
// input's size. Not safe for concurrent use; Close removes the files.
type TimeOrder struct {
	opts  TimeOrderOptions
	dir   string
	buf   []sortItem
	bytes int
	runs  []string
}

// TimeOrderOptions configure a TimeOrder; the zero value means the defaults.
type TimeOrderOptions struct {
	// TempDir is where the run files' directory is made; default os.TempDir().
	TempDir string
	// ChunkEvents and ChunkBytes bound a chunk held in memory (default 100,000
	// events and 32 MiB of encoded events, whichever is reached first).
	ChunkEvents int
	ChunkBytes  int
}

type sortItem struct {
	t   int64
	seq uint64
	sub uint32
	b   []byte
}

func (a sortItem) compare(b sortItem) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return c
	}
	if c := cmp.Compare(a.seq, b.seq); c != 0 {
		return c
	}
	return cmp.Compare(a.sub, b.sub)
}

// NewTimeOrder returns an empty TimeOrder.
func NewTimeOrder(opts TimeOrderOptions) *TimeOrder {
	if opts.ChunkEvents <= 0 {
		opts.ChunkEvents = 100_000
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = 32 << 20
	}
	return &TimeOrder{opts: opts}
}

// Add adds one encoded event (b is copied) at time t, the seq-th record's sub-th
// event.
func (s *TimeOrder) Add(t time.Time, seq uint64, sub int, b []byte) error {
	s.buf = append(s.buf, sortItem{t: t.UnixNano(), seq: seq, sub: uint32(sub), b: append([]byte(nil), b...)})
	s.bytes += len(b) + 48
	if len(s.buf) >= s.opts.ChunkEvents || s.bytes >= s.opts.ChunkBytes {
		return s.spill()
	}
	return nil
}

// Runs returns how many chunks were spilled to disk so far.
func (s *TimeOrder) Runs() int { return len(s.runs) }

func (s *TimeOrder) sortBuf() {
	slices.SortFunc(s.buf, sortItem.compare)
}

func (s *TimeOrder) spill() error {
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.opts.TempDir, "orderwatch-import-")
		if err != nil {
			return fmt.Errorf("mapping: sort: temp dir: %w", err)
		}
		s.dir = dir
	}
	s.sortBuf()
	name := filepath.Join(s.dir, fmt.Sprintf("run-%06d", len(s.runs)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("mapping: sort: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var hdr [24]byte
	for _, it := range s.buf {
		binary.BigEndian.PutUint64(hdr[0:], uint64(it.t))
		binary.BigEndian.PutUint64(hdr[8:], it.seq)
		binary.BigEndian.PutUint32(hdr[16:], it.sub)
		binary.BigEndian.PutUint32(hdr[20:], uint32(len(it.b)))
		w.Write(hdr[:])
		w.Write(it.b)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("mapping: sort: write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mapping: sort: write %s: %w", name, err)
	}
	s.runs = append(s.runs, name)
	clear(s.buf)
	s.buf, s.bytes = s.buf[:0], 0
	return nil
}

// WriteTo writes every event added, in order, one per line (NDJSON).
func (s *TimeOrder) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var n int64
	emit := func(b []byte) error {
		k, err := bw.Write(b)
		n += int64(k)
		if err == nil {
			err = bw.WriteByte('\n')
			n++
		}
		return err
	}
	if len(s.runs) == 0 {
		s.sortBuf()
		for _, it := range s.buf {
			if err := emit(it.b); err != nil {
				return n, err
			}
		}
		return n, bw.Flush()
	}
	if len(s.buf) > 0 {
		if err := s.spill(); err != nil {
			return n, err
		}
	}
	h := &runHeap{}
	for _, name := range s.runs {
		f, err := os.Open(name)
		if err != nil {
			return n, fmt.Errorf("mapping: sort: %w", err)
		}
		defer f.Close()
		r := &run{r: bufio.NewReaderSize(f, 64<<10)}
		ok, err := r.next()
		if err != nil {
			return n, err
		}
		if ok {
			heap.Push(h, r)
		}
	}
	for h.Len() > 0 {
		r := (*h)[0]
		if err := emit(r.cur.b); err != nil {
			return n, err
		}
		ok, err := r.next()
		if err != nil {
			return n, err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return n, bw.Flush()
}

// Close removes the run files.
func (s *TimeOrder) Close() error {
	s.buf = nil
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir, s.runs = "", nil
	return err
}

type run struct {
	r   *bufio.Reader
	cur sortItem
}

func (r *run) next() (bool, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, fmt.Errorf("mapping: sort: read run: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[20:])
	if n > MaxRecordBytes*4 {
		return false, errors.New("mapping: sort: corrupt run file")
	}
	if cap(r.cur.b) < int(n) {
		r.cur.b = make([]byte, n)
	}
	r.cur.b = r.cur.b[:n]
	if _, err := io.ReadFull(r.r, r.cur.b); err != nil {
		return false, fmt.Errorf("mapping: sort: read run: %w", err)
	}
	r.cur.t = int64(binary.BigEndian.Uint64(hdr[0:]))
	r.cur.seq = binary.BigEndian.Uint64(hdr[8:])
	r.cur.sub = binary.BigEndian.Uint32(hdr[16:])
	return true, nil
}

type runHeap []*run

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].cur.compare(h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*run)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
