package mapping

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

func TestTimeOrderSpillsAndMergesToTheSameOrder(t *testing.T) {
	base := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	add := func(s *TimeOrder) {
		rng := rand.New(rand.NewPCG(1, 2))
		for seq := range 5000 {
			for sub := range 1 + rng.IntN(2) {
				at := base.Add(time.Duration(rng.IntN(600)) * time.Second) // many ties
				if err := s.Add(at, uint64(seq), sub, fmt.Appendf(nil, `{"t":%d,"seq":%d,"sub":%d}`, at.Unix(), seq, sub)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	mem := NewTimeOrder(TimeOrderOptions{})
	defer mem.Close()
	add(mem)
	dir := t.TempDir()
	disk := NewTimeOrder(TimeOrderOptions{TempDir: dir, ChunkEvents: 333})
	add(disk)
	if disk.Runs() < 10 {
		t.Fatalf("%d runs spilled, want many", disk.Runs())
	}
	var a, b bytes.Buffer
	if _, err := mem.WriteTo(&a); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if mem.Runs() != 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("the merged runs differ from the in-memory sort (%d vs %d bytes)", a.Len(), b.Len())
	}
	// In order: time, then record, then the event's place in its record.
	var prevT, prevSeq, prevSub int64 = -1, -1, -1
	for _, line := range bytes.Split(bytes.TrimSpace(a.Bytes()), []byte("\n")) {
		var tt, seq, sub int64
		if _, err := fmt.Sscanf(string(line), `{"t":%d,"seq":%d,"sub":%d}`, &tt, &seq, &sub); err != nil {
			t.Fatal(err)
		}
		if tt < prevT || tt == prevT && (seq < prevSeq || seq == prevSeq && sub <= prevSub) {
			t.Fatalf("%s after t=%d seq=%d sub=%d", line, prevT, prevSeq, prevSub)
		}
		prevT, prevSeq, prevSub = tt, seq, sub
	}
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Close left %d entries in the temp dir", len(left))
	}
}
