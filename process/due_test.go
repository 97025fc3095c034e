package process

import (
	"fmt"
	"testing"
	"time"
)

// TestCheckpointsAreSpread: orders that share a cutoff are rescored at moments
// spread over a tenth of each checkpoint's offset, the same moments on every run,
// and the miss is still counted at the cutoff itself.
func TestCheckpointsAreSpread(t *testing.T) {
	cutoff := time.Date(2026, 5, 18, 17, 0, 0, 0, time.UTC)
	start := cutoff.Add(-5 * time.Hour)
	first := map[time.Time]bool{}
	for i := range 500 {
		order := fmt.Sprintf("SO-%d", i)
		at, ok := NextCheckpoint(order, cutoff, start)
		if !ok {
			t.Fatalf("%s: no checkpoint 5 h before its cutoff", order)
		}
		if early := cutoff.Add(-4 * time.Hour).Sub(at); early < 0 || early >= 24*time.Minute {
			t.Fatalf("%s: first checkpoint %v is %v before the 4-hour one, want [0, 24m)", order, at, early)
		}
		if again, _ := NextCheckpoint(order, cutoff, start); !again.Equal(at) {
			t.Fatalf("%s: checkpoint %v then %v for the same moment", order, at, again)
		}
		first[at] = true
		// Walk every checkpoint: increasing, the last one at the cutoff.
		last, n := start, 0
		for {
			next, ok := NextCheckpoint(order, cutoff, last)
			if !ok {
				break
			}
			if !next.After(last) {
				t.Fatalf("%s: checkpoint %v not after %v", order, next, last)
			}
			last, n = next, n+1
		}
		if n != len(checkpoints) || !last.Equal(cutoff) {
			t.Fatalf("%s: %d checkpoints ending %v, want %d ending at the cutoff %v", order, n, last, len(checkpoints), cutoff)
		}
	}
	if len(first) < 300 {
		t.Errorf("500 orders sharing a cutoff got only %d distinct first checkpoints", len(first))
	}
}
