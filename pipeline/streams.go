package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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

// StreamConfigs are the streams orderwatch needs, file-backed, with one replica;
// EnsureStreams sets the replicas it is asked for.
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

// StreamOptions say how EnsureStreams creates the streams that are missing.
type StreamOptions struct {
	// Replicas of each stream created: 1 on a single server, 3 (or 5) on a
	// JetStream cluster. 0 means 1.
	Replicas int
	// Logger is told when an existing stream has fewer replicas than asked; nil
	// says nothing.
	Logger *slog.Logger
}

// EnsureStreams creates the streams that are missing. Existing streams are left as
// they are, so an operator's settings (replicas, limits) are kept; one with fewer
// replicas than asked is logged as a warning, with the command that raises them.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	replicas := max(opts.Replicas, 1)
	for _, cfg := range StreamConfigs() {
		s, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			if err := coversSubjects(s.CachedInfo().Config, cfg); err != nil {
				return err
			}
			if have := s.CachedInfo().Config.Replicas; have < replicas && opts.Logger != nil {
				opts.Logger.Warn("stream has fewer replicas than asked; left as it is",
					"stream", cfg.Name, "replicas", have, "asked", replicas,
					"to_raise", fmt.Sprintf("nats stream edit %s --replicas %d", cfg.Name, replicas))
			}
			continue
		}
		if noJetStream(err) {
			return fmt.Errorf("pipeline: look up stream %s: %w: the server has no JetStream for this user's account; enable it (a jetstream block in the server's config, JetStream limits on the account) or run orderwatch without --nats-url, on its embedded server", cfg.Name, err)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("pipeline: look up stream %s: %w", cfg.Name, err)
		}
		cfg.Replicas = replicas
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("pipeline: create stream %s (%v, %d replicas): %w", cfg.Name, cfg.Subjects, replicas, err)
		}
	}
	return nil
}

// noJetStream reports whether err says the server does not serve JetStream to us:
// off on the server (nobody answers the API), or not enabled for the account.
func noJetStream(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// coversSubjects refuses an existing stream that does not take orderwatch's
// subjects: events published to orders.<type> would be stored nowhere, and the
// consumer would wait for ever, with nothing to say so. A stream that mirrors or
// sources others keeps their subjects and is left to its operator.
func coversSubjects(have, want jetstream.StreamConfig) error {
	if have.Mirror != nil || len(have.Sources) > 0 {
		return nil
	}
	for _, subj := range want.Subjects {
		if !slices.Contains(have.Subjects, subj) {
			return fmt.Errorf("pipeline: stream %s exists with subjects %v, without %s, which orderwatch uses: add it (nats stream edit %s --subjects %s), or delete the stream and let orderwatch create it",
				have.Name, have.Subjects, subj, have.Name, strings.Join(append(slices.Clone(have.Subjects), subj), ","))
		}
	}
	return nil
}
