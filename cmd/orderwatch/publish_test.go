package main

import (
	"errors"
	"testing"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestActionPublisherSaysDuplicate: the executor's publisher tells a publish the
// stream dropped as a duplicate (the same Nats-Msg-Id, as after a takeover) from
// a new one, so that the executor counts it apart.
func TestActionPublisherSaysDuplicate(t *testing.T) {
	ns := natstest.Start(t, nil)
	js := natstest.JetStream(t, ns.ClientURL())
	if _, err := pipeline.EnsureStreams(t.Context(), js, pipeline.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	publish := actionPublisher(js)
	subject := actions.Subject(actions.ActionNotifyCS)
	if err := publish(t.Context(), subject, "k-1", []byte(`{}`)); err != nil {
		t.Fatalf("first publish: %v", err)
	}
	if err := publish(t.Context(), subject, "k-1", []byte(`{}`)); !errors.Is(err, actions.ErrDuplicate) {
		t.Errorf("second publish with the same msg id: %v, want actions.ErrDuplicate", err)
	}
	if err := publish(t.Context(), subject, "k-2", []byte(`{}`)); err != nil {
		t.Errorf("publish with another msg id: %v", err)
	}
}
