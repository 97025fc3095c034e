package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, subject and consumer names: contracts with producers and operators.
const (
	StreamOrders   = "ORDERS"
	StreamDLQ      = "ORDERS_DLQ"
	StreamActions  = "ACTIONS"
	SubjectsOrders = "orders.>"
	SubjectsDLQ    = "orderwatch.dlq.>"
	SubjectActions = "orderwatch.actions.>"
	ConsumerName   = "orderwatch"
)

// DuplicateWindow is JetStream's Nats-Msg-Id dedupe window on our streams.
const DuplicateWindow = 2 * time.Minute

// StreamConfigs are the streams orderwatch needs, file-backed. Replicas is 1 here;
// a clustered deployment raises it on the server side.
func StreamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{Name: StreamOrders, Subjects: []string{SubjectsOrders}, Storage: jetstream.FileStorage, Duplicates: DuplicateWindow,
			Description: "order lifecycle events (schema 1), read by orderwatch"},
		{Name: StreamDLQ, Subjects: []string{SubjectsDLQ}, Storage: jetstream.FileStorage, Duplicates: DuplicateWindow,
			Description: "events orderwatch could not accept, with the reason in headers"},
		{Name: StreamActions, Subjects: []string{SubjectActions}, Storage: jetstream.FileStorage, Duplicates: DuplicateWindow,
			Description: "action commands decided by orderwatch, Nats-Msg-Id = idempotency key"},
	}
}

// EnsureStreams creates the streams that are missing. Existing streams are left as
// they are, so an operator's settings (replicas, limits) are kept.
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range StreamConfigs() {
		_, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("pipeline: look up stream %s: %w", cfg.Name, err)
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("pipeline: create stream %s (%v): %w", cfg.Name, cfg.Subjects, err)
		}
	}
	return nil
}
