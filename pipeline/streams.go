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

// DefaultOrdersMaxAge is how long ORDERS (and ACTIONS) keep a message when
// orderwatch creates them: Badger keeps its own copy of every applied event in the
// orders' timelines, so the stream needs only enough for an outage, a replay of
// the recent past and a restore.
const DefaultOrdersMaxAge = 30 * 24 * time.Hour

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
	// OrdersMaxAge is how long ORDERS and ACTIONS keep a message when
	// EnsureStreams creates them. 0 means DefaultOrdersMaxAge.
	OrdersMaxAge time.Duration
	// Logger is told when an existing stream has fewer replicas than asked; nil
	// says nothing.
	Logger *slog.Logger
}

// EnsureStreams creates the streams that are missing: ORDERS and ACTIONS with an
// age limit (OrdersMaxAge), ORDERS_DLQ without one (each dead letter waits for a
// person). Existing streams are left as they are, so an operator's settings
// (replicas, limits) are kept; one with fewer replicas than asked, and an ORDERS
// with no limit at all, are logged as warnings with the command that fixes them.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	replicas := max(opts.Replicas, 1)
	maxAge := opts.OrdersMaxAge
	if maxAge <= 0 {
		maxAge = DefaultOrdersMaxAge
	}
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
			if have := s.CachedInfo().Config; cfg.Name == StreamOrders && unlimited(have) && opts.Logger != nil {
				opts.Logger.Warn("stream keeps every message for ever, beside Badger's copy of each event; left as it is",
					"stream", cfg.Name, "to_limit", fmt.Sprintf("nats stream edit %s --max-age=%s", cfg.Name, hours(maxAge)))
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
		if cfg.Name != StreamDLQ {
			cfg.MaxAge = maxAge
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("pipeline: create stream %s (%v, %d replicas): %w", cfg.Name, cfg.Subjects, replicas, err)
		}
	}
	return nil
}

// unlimited reports whether a stream has no limit on age, bytes or messages.
func unlimited(c jetstream.StreamConfig) bool {
	return c.MaxAge <= 0 && c.MaxBytes <= 0 && c.MaxMsgs <= 0
}

// hours writes d as the nats CLI takes it: whole hours when it is, "720h".
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
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
