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
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/mapping"
)

// The bridge's stream and consumer: contracts with the middleware and operators.
const (
	// StreamForeign stores the middleware's messages on the mapping's subjects.
	StreamForeign = "FOREIGN"
	// ConsumerBridge is the durable pull consumer on FOREIGN that every member
	// of a group shares.
	ConsumerBridge = "orderwatch-bridge"
	// BridgeMaxAckPending bounds the foreign messages being mapped at once,
	// over the whole group.
	BridgeMaxAckPending = 1024
	// bridgeAckWait is how long a fetched message may take before it is
	// redelivered (to any member).
	bridgeAckWait = 30 * time.Second
	// bridgeRetryDelay is how long a message whose publish failed waits before
	// it is redelivered.
	bridgeRetryDelay = time.Second
	// bridgeFetch is the most messages fetched at once.
	bridgeFetch = 64
	// bridgePublishTimeout bounds the publishes of one foreign message; they
	// finish on shutdown too.
	bridgePublishTimeout = 10 * time.Second
)

// Results of a foreign message, the label of orderwatch_bridge_messages_total.
const (
	BridgeMapped       = "mapped"
	BridgeDeadLettered = "dead_lettered"
	BridgeSkipped      = "skipped"
)

// ErrForeignSubject is returned (wrapped) when a mapping's subjects cannot be
// bridged: none, or one that overlaps orderwatch's own subjects.
var ErrForeignSubject = errors.New("pipeline: mapping subjects cannot be bridged")

// CheckForeignSubjects refuses mapping subjects that would take orderwatch's own
// messages (orders.>, orderwatch.>), and a mapping with none: the bridge would
// read back what it publishes, or nothing.
func CheckForeignSubjects(subjects []string) error {
	if len(subjects) == 0 {
		return fmt.Errorf("%w: the mapping names no subjects: give its entries `subjects` (e.g. [\"erp.>\"]) for run --mapping", ErrForeignSubject)
	}
	for _, s := range subjects {
		for _, own := range []string{SubjectsOrders, "orderwatch.>"} {
			if subjectsOverlap(s, own) {
				return fmt.Errorf("%w: subject %q overlaps %s, which orderwatch publishes: the bridge would read its own messages; give the middleware's subjects (e.g. erp.>, wms.>)", ErrForeignSubject, s, own)
			}
		}
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both patterns a and b.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		if i == len(at) || i == len(bt) {
			return len(at) == len(bt)
		}
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
}

// ForeignSubjects are the subjects of FOREIGN for a mapping's: those no other
// covers (JetStream refuses a stream whose subjects overlap, erp.> and
// erp.orders.>), in the mapping's order.
func ForeignSubjects(subjects []string) []string {
	var out []string
	for i, s := range subjects {
		covered := false
		for j, t := range subjects {
			if i != j && covers(t, s) && (!covers(s, t) || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	return out
}

// covers reports whether pattern a matches every subject pattern b matches.
func covers(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, x := range at {
		if x == ">" {
			return i < len(bt)
		}
		if i == len(bt) || bt[i] == ">" || (x != "*" && x != bt[i]) {
			return false
		}
	}
	return len(at) == len(bt)
}

// BridgeOptions configure a Bridge.
type BridgeOptions struct {
	JetStream jetstream.JetStream
	Mapping   *mapping.Mapping
	// Replicas of FOREIGN when the bridge creates it; 0 means 1.
	Replicas   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Bridge maps the middleware's messages (stream FOREIGN) onto schema-1 events
// and publishes them to ORDERS, each with Nats-Msg-Id = the event's id; it acks a
// foreign message only after every event of it (or its dead letter) is stored.
// A redelivered message maps to the same ids, which JetStream's dedupe window and
// the processor's event-id check apply once.
type Bridge struct {
	js       jetstream.JetStream
	m        *mapping.Mapping
	replicas int
	log      *slog.Logger

	messages *prometheus.CounterVec
	mapped   prometheus.Counter
	dead     prometheus.Counter
	skipped  prometheus.Counter
	events   prometheus.Counter
	failures prometheus.Counter

	// deadSince and lastReason feed the aggregated dead-letter log.
	deadSince  int
	lastReason string
}

// NewBridge checks the mapping's subjects and registers the bridge's metrics.
func NewBridge(opts BridgeOptions) (*Bridge, error) {
	if opts.JetStream == nil || opts.Mapping == nil {
		return nil, errors.New("pipeline: bridge needs JetStream and a mapping")
	}
	if err := CheckForeignSubjects(opts.Mapping.Subjects()); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	b := &Bridge{js: opts.JetStream, m: opts.Mapping, replicas: max(opts.Replicas, 1), log: log.With("component", "bridge")}
	b.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "orderwatch_bridge_messages_total",
		Help: "Foreign messages of FOREIGN handled by the bridge, by result: mapped (events published to ORDERS), dead_lettered (to orderwatch.dlq.<reason>), skipped (a skip entry of the mapping).",
	}, []string{"result"})
	b.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderwatch_bridge_events_total",
		Help: "Schema-1 events the bridge published to ORDERS (acked, duplicates included).",
	})
	b.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "orderwatch_bridge_failures_total",
		Help: "Foreign messages left unacked because a publish (to ORDERS or the DLQ) failed; each is redelivered.",
	})
	for _, c := range []prometheus.Collector{b.messages, b.events, b.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: register bridge metrics: %w", err)
		}
	}
	b.mapped = b.messages.WithLabelValues(BridgeMapped)
	b.dead = b.messages.WithLabelValues(BridgeDeadLettered)
	b.skipped = b.messages.WithLabelValues(BridgeSkipped)
	return b, nil
}

// Ensure creates FOREIGN (file storage, the mapping's subjects) or sets an
// existing one's subjects to the mapping's, and the consumer ConsumerBridge.
func (b *Bridge) Ensure(ctx context.Context) error {
	subjects := ForeignSubjects(b.m.Subjects())
	s, err := b.js.Stream(ctx, StreamForeign)
	switch {
	case err == nil:
		cfg := s.CachedInfo().Config
		if !sameSet(cfg.Subjects, subjects) {
			b.log.Info("stream subjects set to the mapping's", "stream", StreamForeign, "was", cfg.Subjects, "now", subjects)
			cfg.Subjects = subjects
			if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("pipeline: set the subjects of stream %s to the mapping's %v: %w; a subject taken by another stream must leave it (nats stream edit)", StreamForeign, subjects, err)
			}
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		cfg := jetstream.StreamConfig{Name: StreamForeign, Subjects: subjects, Storage: jetstream.FileStorage,
			Replicas: b.replicas, Duplicates: DuplicateWindow, MaxAge: DefaultOrdersMaxAge,
			Description: "the middleware's messages, mapped onto ORDERS by orderwatch's bridge (run --mapping)"}
		if _, err := b.js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("pipeline: create stream %s (%v): %w; a subject taken by another stream must leave it, or change the mapping's subjects", StreamForeign, subjects, err)
		}
	default:
		return fmt.Errorf("pipeline: look up stream %s: %w", StreamForeign, err)
	}
	_, err = b.js.CreateOrUpdateConsumer(ctx, StreamForeign, jetstream.ConsumerConfig{
		Durable: ConsumerBridge, AckPolicy: jetstream.AckExplicitPolicy, AckWait: bridgeAckWait,
		MaxAckPending: BridgeMaxAckPending, DeliverPolicy: jetstream.DeliverAllPolicy,
		Description: "orderwatch's bridge: maps FOREIGN onto ORDERS, shared by the group",
	})
	if err != nil {
		return fmt.Errorf("pipeline: create consumer %s on %s: %w", ConsumerBridge, StreamForeign, err)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// Run fetches and maps foreign messages until ctx is done; it stops fetching
// first and finishes the message in hand (its publishes are not cut by ctx), and
// gives the rest of the batch back at once (Nak) for any member to take.
func (b *Bridge) Run(ctx context.Context) error {
	cons, err := b.js.Consumer(ctx, StreamForeign, ConsumerBridge)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("pipeline: bridge consumer %s: %w: is the stream %s there (Ensure)?", ConsumerBridge, err, StreamForeign)
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			b.logDead()
		default:
		}
		batch, err := cons.Fetch(bridgeFetch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			b.log.Warn("bridge fetch failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(bridgeRetryDelay):
			}
			continue
		}
		for msg := range batch.Messages() {
			if ctx.Err() != nil {
				_ = msg.Nak()
				continue
			}
			b.handle(msg)
		}
	}
	b.logDead()
	return nil
}

// logDead logs the dead letters since the last call, aggregated.
func (b *Bridge) logDead() {
	if b.deadSince > 0 {
		b.log.Warn("bridge dead-lettered foreign messages", "count", b.deadSince, "last_reason", b.lastReason, "stream", StreamDLQ)
		b.deadSince = 0
	}
}

// handle maps one foreign message and acks it after its events (or its dead
// letter) are stored; a failed publish leaves it for redelivery.
func (b *Bridge) handle(msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), bridgePublishTimeout)
	defer cancel()
	data := msg.Data()
	var events []mapping.Event
	rec, err := mapping.JSONRecord(data)
	if err == nil {
		events, err = b.m.Map(rec)
	}
	var re *mapping.RecordError
	switch {
	case errors.As(err, &re):
		if err := b.deadLetter(ctx, msg, re); err != nil {
			b.fail(msg, err)
			return
		}
		b.dead.Inc()
		b.deadSince++
		b.lastReason = re.Reason
	case err != nil: // not a RecordError: not the record's fault; try again
		b.fail(msg, err)
		return
	case len(events) == 0:
		b.skipped.Inc()
	default:
		if err := b.publish(ctx, events); err != nil {
			b.fail(msg, err)
			return
		}
		b.mapped.Inc()
	}
	if err := msg.Ack(); err != nil {
		// Redelivered: the same ids, applied once.
		b.failures.Inc()
		b.log.Warn("bridge ack failed; the message will be redelivered and deduplicated", "err", err)
	}
}

// publish publishes events to ORDERS on their canonical subjects with
// Nats-Msg-Id = the event's id, and waits for every PubAck.
func (b *Bridge) publish(ctx context.Context, events []mapping.Event) error {
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		ev := &events[i].Event
		f, err := b.js.PublishMsgAsync(&nats.Msg{
			Subject: features.Subject(ev.Type, ev.OrderID),
			Data:    events[i].JSON,
			Header:  nats.Header{jetstream.MsgIDHeader: []string{ev.ID}},
		})
		if err != nil {
			return fmt.Errorf("publish event %s: %w", ev.ID, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
			b.events.Inc()
		case err := <-f.Err():
			return fmt.Errorf("publish event %s to %s: %w", events[i].Event.ID, StreamOrders, err)
		case <-ctx.Done():
			return fmt.Errorf("publish event %s to %s: no ack: %w", events[i].Event.ID, StreamOrders, ctx.Err())
		}
	}
	return nil
}

// deadLetter publishes msg to orderwatch.dlq.<reason> with the DLQ's headers; its
// Nats-Msg-Id derives from the FOREIGN sequence.
func (b *Bridge) deadLetter(ctx context.Context, msg jetstream.Msg, re *mapping.RecordError) error {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	m := &Message{Seq: seq, Subject: msg.Subject(), Data: msg.Data(), Header: msg.Headers()}
	return deadLetterAs(ctx, b.js, m, re.Reason, re.Error(), "dlq-foreign-"+strconv.FormatUint(seq, 10))
}

// fail leaves msg for redelivery after bridgeRetryDelay.
func (b *Bridge) fail(msg jetstream.Msg, err error) {
	b.failures.Inc()
	b.log.Warn("bridge publish failed; the message will be redelivered", "subject", msg.Subject(), "err", err)
	_ = msg.NakWithDelay(bridgeRetryDelay)
}
