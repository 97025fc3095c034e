package process_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// TestHugeBatchIsSplit: a burst of events near the size limit is more than Badger
// takes in one commit; the batch is applied in parts instead of failing forever.
func TestHugeBatchIsSplit(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	policy, _ := actions.LoadPolicy("")
	at := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	var lines [][]byte
	text := strings.Repeat("pallet label unreadable, re-scan at dock 4; ", (features.MaxEventBytes-512)/45)
	for i := range 300 {
		order := fmt.Sprintf("SO-%d", i%40)
		lines = append(lines, event(fmt.Sprintf("n-%d", i), "note.added", order, at.Add(time.Duration(i)*time.Second), fmt.Sprintf(`{"text":%q}`, text)))
	}
	stats, err := process.Replay(context.Background(), bytes.NewReader(bytes.Join(lines, []byte("\n"))), process.ReplayOptions{
		Store: st, Policy: actions.NewLive(policy), BatchSize: 1024,
	})
	if err != nil {
		t.Fatalf("a batch of %d events of %d bytes: %v", len(lines), len(lines[0]), err)
	}
	if stats.Applied != len(lines) {
		t.Errorf("applied %d of %d", stats.Applied, len(lines))
	}
	if s, _ := st.Stats(); s.EventsApplied != int64(len(lines)) {
		t.Errorf("durable events_applied = %d, want %d", s.EventsApplied, len(lines))
	}
}

func event(id, typ, order string, at time.Time, data string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"test","schema":1,"data":%s}`,
		id, typ, order, at.UTC().Format(time.RFC3339Nano), data)
}
