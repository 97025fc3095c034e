package pipeline

import (
	"testing"
	"time"
)

// TestReadinessWaitsForTheFailedMessages: a batch of other messages committing
// does not make the pipeline ready while a failed one has not committed since;
// one that never comes back stops counting after stuckFor.
func TestReadinessWaitsForTheFailedMessages(t *testing.T) {
	var s stuckSet
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	if why := s.reason(t0); why != "" {
		t.Fatalf("reason %q before any failure", why)
	}
	s.failed([]*Message{{Seq: 7}, {Seq: 8}}, "publish to ORDERS_DLQ: insufficient resources", t0)
	s.committed([]*Message{{Seq: 9}})
	if why := s.reason(t0.Add(time.Second)); why != "publish to ORDERS_DLQ: insufficient resources" {
		t.Fatalf("reason %q after another batch committed, want the failure", why)
	}
	s.committed([]*Message{{Seq: 7}})
	if why := s.reason(t0.Add(2 * time.Second)); why == "" {
		t.Fatal("ready while message 8 has not committed")
	}
	if why := s.reason(t0.Add(stuckFor + time.Second)); why != "" {
		t.Fatalf("reason %q a minute after message 8 last failed, want it forgotten", why)
	}
	s.failed([]*Message{{Seq: 10}}, "commit: disk full", t0)
	s.committed([]*Message{{Seq: 10}})
	if why := s.reason(t0); why != "" {
		t.Fatalf("reason %q after the failed message committed", why)
	}
}
