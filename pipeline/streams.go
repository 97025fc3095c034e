package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/features"
)

// Stream, subject and consumer names: contracts with producers and operators.
const (
	StreamOrders  = "ORDERS"
	StreamDLQ     = "ORDERS_DLQ"
	StreamActions = "ACTIONS"
	// SubjectsOrders matches every subject ORDERS stores: the order events of
	// all partitions (orders.<p>.<type>.<order_token>) and the context events
	// (orders.<type>). A partition's consumer filters features.PartitionSubject.
	SubjectsOrders = "orders.>"
	SubjectsDLQ    = "orderwatch.dlq.>"
	SubjectActions = "orderwatch.actions.>"
	ConsumerName   = "orderwatch"
)

// DuplicateWindow is JetStream's Nats-Msg-Id dedupe window on ORDERS and
// ORDERS_DLQ.
const DuplicateWindow = 2 * time.Minute

// DuplicateWindowActions is the Nats-Msg-Id dedupe window of ACTIONS when
// orderwatch creates it: after a partition moves, its new owner may decide
// again the events the old owner decided but did not ack, hours later when
// the old owner was cut off; the same idempotency key must still be refused.
const DuplicateWindowActions = 24 * time.Hour

// DefaultPartitions is the number of partitions of ORDERS orderwatch creates
// when it is not told; MaxPartitions the most it accepts.
const (
	DefaultPartitions = 16
	MaxPartitions     = 1024
)

// DefaultOrdersMaxAge is how long ORDERS (and ACTIONS) keep a message when
// orderwatch creates them: enough for an outage, a replay of the recent past and
// a restore. The orders' timelines reference their events in ORDERS rather than
// keep a copy, so it is also how long the API shows an event whole; after that,
// in its compact form.
const DefaultOrdersMaxAge = 30 * 24 * time.Hour

// ordersSubjects are the subjects producers publish to: orders.<type> for a
// context event, orders.<type>.<order_token> for an order event.
var ordersSubjects = []string{features.ContextSubject, features.OrderSubject}

// OrdersTransform is the subject transform of an ORDERS of n partitions: it
// puts the partition of the order token (nats-server's partition(n,3), which
// features.Partition computes) in front of an order event's subject.
func OrdersTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{Source: features.OrderSubject, Destination: transformDest(n)}
}

func transformDest(n int) string {
	return "orders.{{partition(" + strconv.Itoa(n) + ",3)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"
}

// StreamPartitions reads the number of partitions back from the subject
// transform of an ORDERS stream's config. It fails on a stream without
// OrdersTransform(n): one made by an orderwatch before partitions (orders.>,
// no transform) or by hand.
func StreamPartitions(cfg jetstream.StreamConfig) (int, error) {
	tr := cfg.SubjectTransform
	if tr == nil {
		return 0, fmt.Errorf("pipeline: stream %s has no subject transform, so its order events are in no partition (%w)", cfg.Name, ErrNotPartitioned)
	}
	rest, ok := strings.CutPrefix(tr.Destination, "orders.{{partition(")
	digits, _, _ := strings.Cut(rest, ",")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 1 || tr.Source != features.OrderSubject || tr.Destination != transformDest(n) {
		return 0, fmt.Errorf("pipeline: stream %s transforms %s to %s, not as orderwatch partitions, %s to %s (%w)",
			cfg.Name, tr.Source, tr.Destination, features.OrderSubject, transformDest(DefaultPartitions), ErrNotPartitioned)
	}
	return n, nil
}

// ErrNotPartitioned is returned (wrapped) by StreamPartitions and EnsureStreams
// for an ORDERS stream without orderwatch's partitioning transform.
var ErrNotPartitioned = errors.New("pipeline: ORDERS is not partitioned")

// StreamConfigs are the streams orderwatch needs, file-backed, with one replica,
// ORDERS with partitions partitions (DefaultPartitions for 0); EnsureStreams sets
// the replicas it is asked for.
func StreamConfigs(partitions int) []jetstream.StreamConfig {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return []jetstream.StreamConfig{
		{Name: StreamOrders, Subjects: slices.Clone(ordersSubjects), SubjectTransform: OrdersTransform(partitions),
			Storage: jetstream.FileStorage, Duplicates: DuplicateWindow,
			Description: "order lifecycle events (schema 1), read by orderwatch; order events partitioned by order"},
		{Name: StreamDLQ, Subjects: []string{SubjectsDLQ}, Storage: jetstream.FileStorage, Duplicates: DuplicateWindow,
			Description: "events orderwatch could not accept, with the reason in headers"},
		{Name: StreamActions, Subjects: []string{SubjectActions}, Storage: jetstream.FileStorage, Duplicates: DuplicateWindowActions,
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
	// Partitions of ORDERS, 1..MaxPartitions. It is fixed when ORDERS is
	// created: 0 means the existing stream's, or DefaultPartitions for a new
	// one; another number than the existing stream's is an error.
	Partitions int
	// Logger is told when an existing stream has fewer replicas than asked; nil
	// says nothing.
	Logger *slog.Logger
}

// EnsureStreams creates the streams that are missing: ORDERS with the
// partitioning transform of opts.Partitions, ORDERS and ACTIONS with an age limit
// (OrdersMaxAge), ORDERS_DLQ without one (each dead letter waits for a person).
// It returns the number of partitions of ORDERS. Existing streams are left as
// they are, so an operator's settings (replicas, limits) are kept; one with fewer
// replicas than asked, an ORDERS with no limit at all and an ACTIONS with a
// shorter dedupe window than DuplicateWindowActions are logged as warnings with
// the command that fixes them. An existing ORDERS without the partitioning
// transform, or with another number of partitions than asked, is an error that
// says how to move on.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) (partitions int, err error) {
	replicas := max(opts.Replicas, 1)
	maxAge := opts.OrdersMaxAge
	if maxAge <= 0 {
		maxAge = DefaultOrdersMaxAge
	}
	if opts.Partitions < 0 || opts.Partitions > MaxPartitions {
		return 0, fmt.Errorf("pipeline: partitions %d: want 1..%d (0 for the stream's, or %d)", opts.Partitions, MaxPartitions, DefaultPartitions)
	}
	partitions = opts.Partitions
	for _, cfg := range StreamConfigs(opts.Partitions) {
		s, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			have := s.CachedInfo().Config
			if cfg.Name == StreamOrders {
				if partitions, err = existingPartitions(have, opts.Partitions, opts.Logger); err != nil {
					return 0, err
				}
			}
			if err := coversSubjects(have, cfg); err != nil {
				return 0, err
			}
			if have.Replicas < replicas && opts.Logger != nil {
				opts.Logger.Warn("stream has fewer replicas than asked; left as it is",
					"stream", cfg.Name, "replicas", have.Replicas, "asked", replicas,
					"to_raise", fmt.Sprintf("nats stream edit %s --replicas %d", cfg.Name, replicas))
			}
			if cfg.Name == StreamOrders {
				raiseMaxConsumers(ctx, js, have, partitions, opts.Logger)
			}
			if cfg.Name == StreamOrders && unlimited(have) && opts.Logger != nil {
				opts.Logger.Warn("stream keeps every message for ever, beside Badger's copy of each event; left as it is",
					"stream", cfg.Name, "to_limit", fmt.Sprintf("nats stream edit %s --max-age=%s", cfg.Name, hours(maxAge)))
			}
			if cfg.Name == StreamActions && have.Duplicates < DuplicateWindowActions && opts.Logger != nil {
				opts.Logger.Warn("stream forgets idempotency keys before a moved partition may decide again; left as it is",
					"stream", cfg.Name, "duplicate_window", have.Duplicates.String(), "want", DuplicateWindowActions.String(),
					"to_raise", fmt.Sprintf("nats stream edit %s --dupe-window %s", cfg.Name, hours(DuplicateWindowActions)))
			}
			continue
		}
		if noJetStream(err) {
			return 0, fmt.Errorf("pipeline: look up stream %s: %w: the server has no JetStream for this user's account; enable it (a jetstream block in the server's config, JetStream limits on the account) or run orderwatch without --nats-url, on its embedded server", cfg.Name, err)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("pipeline: look up stream %s: %w", cfg.Name, err)
		}
		cfg.Replicas = replicas
		if cfg.Name != StreamDLQ {
			cfg.MaxAge = maxAge
		}
		if cfg.Name == StreamOrders {
			partitions = orDefault(opts.Partitions)
			if need := consumersFor(partitions); need > serverDefaultMaxConsumers {
				cfg.MaxConsumers = need
			}
		}
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			return 0, fmt.Errorf("pipeline: create stream %s (%v, %d replicas): %w", cfg.Name, cfg.Subjects, replicas, err)
		}
	}
	return partitions, nil
}

// serverDefaultMaxConsumers is nats-server's limit of consumers per stream when
// neither the stream nor the account sets one (default_max_consumers, 2.11+).
const serverDefaultMaxConsumers = 1000

// consumersFor is how many consumers ORDERS may need with n partitions: one per
// partition, and its next owner's while a partition moves, the rebuilds' and
// each member's follower of the context subjects, with room for operators'.
func consumersFor(n int) int { return 2*n + 256 }

// raiseMaxConsumers lifts the consumer limit of an existing ORDERS that is below
// what its partitions need; a stream the server's default leaves at 1,000 cannot
// hold more than about 370 partitions' consumers.
func raiseMaxConsumers(ctx context.Context, js jetstream.JetStream, have jetstream.StreamConfig, partitions int, log *slog.Logger) {
	need := consumersFor(partitions)
	limit := have.MaxConsumers
	if limit <= 0 {
		limit = serverDefaultMaxConsumers
	}
	if limit >= need {
		return
	}
	cfg := have
	cfg.MaxConsumers = need
	if _, err := js.UpdateStream(ctx, cfg); err != nil && log != nil {
		log.Warn("stream allows fewer consumers than its partitions need; partitions beyond it cannot be read",
			"stream", have.Name, "max_consumers", limit, "need", need, "err", err,
			"to_raise", fmt.Sprintf("nats stream edit %s --max-consumers %d (or default_max_consumers in the server's jetstream limits)", have.Name, need))
	}
}

// changeN says how to change the number of partitions: a new ORDERS.
const changeN = "stop every orderwatch of the group and let it drain, delete ORDERS (nats stream rm ORDERS) and the group's KV buckets (nats kv rm orderwatch_<group>; nats kv rm orderwatch_<group>_state), then start again with the --partitions wanted (see the README, Streams and subjects)"

// existingPartitions returns the partitions of an existing ORDERS, checked
// against those asked for (0: any). A stream that mirrors or sources others is
// left to its operator: the partitions asked for, or DefaultPartitions, are
// taken as they are, with a warning.
func existingPartitions(have jetstream.StreamConfig, asked int, log *slog.Logger) (int, error) {
	if have.Mirror != nil || len(have.Sources) > 0 {
		n, err := StreamPartitions(have)
		if err != nil {
			n = orDefault(asked)
			if log != nil {
				log.Warn("stream mirrors or sources others; its partitions are taken as asked, unchecked",
					"stream", have.Name, "partitions", n)
			}
			return n, nil
		}
		return checkPartitions(have.Name, n, asked)
	}
	n, err := StreamPartitions(have)
	if err != nil {
		if have.SubjectTransform == nil && slices.Contains(have.Subjects, SubjectsOrders) {
			return 0, fmt.Errorf("pipeline: stream %s takes %s without partitions, as an orderwatch before partitions made it; to move on, %s; producers then publish order events to orders.<type>.<order_id>: %w",
				have.Name, SubjectsOrders, changeN, ErrNotPartitioned)
		}
		return 0, fmt.Errorf("%w; delete the stream and let orderwatch create it, or give it the subjects %s and the transform %s to %s",
			err, strings.Join(ordersSubjects, ","), features.OrderSubject, transformDest(orDefault(asked)))
	}
	return checkPartitions(have.Name, n, asked)
}

// orDefault is n, or DefaultPartitions for 0.
func orDefault(n int) int {
	if n == 0 {
		return DefaultPartitions
	}
	return n
}

// checkPartitions returns have unless asked is another number than have.
func checkPartitions(name string, have, asked int) (int, error) {
	if asked != 0 && asked != have {
		return 0, fmt.Errorf("pipeline: stream %s has %d partitions, %d asked: the number is fixed when the stream is created; start with --partitions %d, or to change it, %s",
			name, have, asked, have, changeN)
	}
	return have, nil
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
