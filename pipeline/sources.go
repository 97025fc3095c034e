package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// Ownership says which partitions of ORDERS this instance owns: a
// cluster.Membership, or nil for an instance that owns every partition alone.
type Ownership interface {
	// Changes reports each partition taken or lost, in order.
	Changes() <-chan cluster.Change
	// Owns reports whether the lease of a partition is held and valid now.
	Owns(part int) bool
	// Handoff says the pipeline stopped acting on a partition it lost or gave.
	Handoff(part int)
	// LeaseEpoch is the epoch of a partition's lease, whoever holds it; 0 if none.
	LeaseEpoch(part int) uint64
	// OwnsEpoch is Owns for the lease taken at epoch only: false once that
	// lease ended, even when the partition is owned again under a newer one.
	OwnsEpoch(part int, epoch uint64) bool
}

// source is one consumer the pipeline reads: an order partition's, the context
// subjects' account (owned with partition 0), or this instance's follower of the
// context subjects.
type source struct {
	part    int    // partition, store.ContextPart or process.FollowPart
	epoch   uint64 // of the lease it was started under; 0 alone
	mode    process.Mode
	name    string // durable consumer name
	mu      sync.Mutex
	it      jetstream.MessagesContext // replaced by reopen; guarded by mu
	stopped atomic.Bool
	done    chan struct{} // the reader returned
	// held are messages committed after the partition stopped being owned,
	// not acked; lose settles them. Touched on the run loop only.
	held []jetstream.Msg
}

// setIter makes it the source's iterator, unless the source was stopped.
func (src *source) setIter(it jetstream.MessagesContext) bool {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.stopped.Load() {
		return false
	}
	src.it = it
	return true
}

// stopIter stops the source's current iterator.
func (src *source) stopIter() {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.it != nil {
		src.it.Stop()
	}
}

// inMsg is a message with the source it came from.
type inMsg struct {
	msg jetstream.Msg
	src *source
}

// sourceSet is the pipeline's sources by partition number. The run loop and the
// manager read it; active is read by the processor's timers too.
type sourceSet struct {
	mu     sync.Mutex
	byPart map[int]*source
}

func (s *sourceSet) get(part int) *source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byPart[part]
}

func (s *sourceSet) put(src *source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPart == nil {
		s.byPart = map[int]*source{}
	}
	s.byPart[src.part] = src
}

func (s *sourceSet) remove(part int) *source {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.byPart[part]
	delete(s.byPart, part)
	return src
}

func (s *sourceSet) all() []*source {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*source, 0, len(s.byPart))
	for _, src := range s.byPart {
		out = append(out, src)
	}
	return out
}

// names returns the consumer names of the sources that count toward the lag:
// the partitions and the context account.
func (s *sourceSet) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.byPart))
	for _, src := range s.byPart {
		if src.mode != process.ModeFollow {
			out = append(out, src.name)
		}
	}
	slices.Sort(out)
	return out
}

// consumerPrefix is the name prefix of a partition's consumers: one per lease
// epoch, "<group>-p<NN>-e<epoch>", the context account's "<group>-ctx-e<epoch>".
func (p *Pipeline) consumerPrefix(part int) string {
	if part == store.ContextPart {
		return p.opts.Group + "-ctx-e"
	}
	return fmt.Sprintf("%s-p%0*d-e", p.opts.Group, len(strconv.Itoa(p.parts-1)), part)
}

// filterOf is the subject filter of a partition's consumer.
func filterOf(part int) string {
	if part == store.ContextPart || part == process.FollowPart {
		return features.ContextSubject
	}
	return features.PartitionSubject(part)
}

// allParts is the part of the one source of event-time mode: ORDERS whole, in
// stream order, each message's partition read from its subject.
const allParts = -2

// ordered starts the one source of event-time mode.
func (p *Pipeline) ordered(ctx context.Context) error {
	name := p.opts.Group + "-ordered"
	cfg := p.consumerConfig(name, allParts)
	cfg.FilterSubject, cfg.MaxAckPending = SubjectsOrders, 8*p.opts.BatchSize
	return p.start(ctx, &source{part: allParts, mode: process.ModeLive, name: name}, cfg)
}

// partOf is the partition of a message of the event-time source, from its
// stored subject.
func partOf(subject string) int {
	if part, _, _, ok := features.ParseStoredSubject(subject); ok && part >= 0 {
		return part
	}
	return store.ContextPart
}

// active reports whether the pipeline acts on a partition now: its lease is
// valid and its state is rebuilt (its source started).
func (p *Pipeline) active(part int) bool {
	if p.opts.EventTime {
		return true
	}
	src := p.sources.get(part)
	return src != nil && !src.stopped.Load() && p.ownsSource(src)
}

// ownsSource reports whether the very lease a source was started under is
// still held and valid: a message it delivered is acted on only then.
func (p *Pipeline) ownsSource(src *source) bool {
	if p.opts.Ownership == nil {
		return true
	}
	return p.opts.Ownership.OwnsEpoch(partOwner(src.part), src.epoch)
}

func (p *Pipeline) owns(part int) bool {
	if p.opts.Ownership == nil {
		return true
	}
	return p.opts.Ownership.Owns(part)
}

// keep reports whether a delivered message may be staged: its source still
// reads, and its partition is still owned (the context follower always is).
func (p *Pipeline) keep(m inMsg) bool {
	if m.src.stopped.Load() {
		return false
	}
	switch m.src.part {
	case process.FollowPart, allParts:
		return true
	}
	return p.ownsSource(m.src)
}

// start creates (or opens) a consumer and starts reading it into msgs.
func (p *Pipeline) start(ctx context.Context, src *source, cfg jetstream.ConsumerConfig) error {
	cons, err := p.opts.JetStream.CreateOrUpdateConsumer(ctx, StreamOrders, cfg)
	if err != nil {
		return fmt.Errorf("pipeline: create consumer %s on %s: %w", cfg.Durable, StreamOrders, err)
	}
	// Short pulls: a pull request lost with a consumer's leader (a cluster
	// node going away) is noticed by its missing heartbeats within seconds, not
	// after the default 30 s expiry.
	pull := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(cfg.MaxAckPending), jetstream.PullExpiry(5 * time.Second)}
	it, err := cons.Messages(pull...)
	if err != nil {
		return fmt.Errorf("pipeline: start fetching from %s: %w", cfg.Durable, err)
	}
	src.setIter(it)
	src.done = make(chan struct{})
	p.sources.put(src)
	go func() {
		defer close(src.done)
		for {
			msg, err := it.Next()
			if err != nil {
				if src.stopped.Load() {
					return
				}
				gone := errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
					errors.Is(err, jetstream.ErrConsumerNotFound)
				if !gone {
					// Missed heartbeats while the server restarts: the
					// iterator re-pulls by itself.
					p.log.Warn("fetch from consumer", "consumer", src.name, "err", err)
					continue
				}
				// The iterator gave up: JetStream restarted (its disk was
				// full, the node moved) or the partition's new owner deleted
				// the consumer. Read on while the source is this instance's.
				if it = p.reopen(ctx, src, pull, err); it == nil {
					return
				}
				continue
			}
			select {
			case p.in <- inMsg{msg, src}:
			case <-p.stopReaders:
				_ = msg.Nak()
				return
			}
		}
	}()
	return nil
}

// reopen opens a source's consumer again after its iterator gave up, retrying
// every second while the source reads and its lease lasts; nil when it should
// stop. A consumer that is gone is not made again: a partition's next owner
// deletes it, and its own lease's loss then stops the source.
func (p *Pipeline) reopen(ctx context.Context, src *source, pull []jetstream.PullMessagesOpt, why error) jetstream.MessagesContext {
	p.log.Warn("consumer reading stopped; opened again when it can be", "consumer", src.name, "err", why)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.stopReaders:
			return nil
		case <-time.After(time.Second):
		}
		if src.stopped.Load() || (src.part != process.FollowPart && src.part != allParts && !p.ownsSource(src)) {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := p.opts.JetStream.Consumer(cctx, StreamOrders, src.name)
		cancel()
		if err != nil {
			continue
		}
		it, err := cons.Messages(pull...)
		if err != nil {
			continue
		}
		if !src.setIter(it) {
			it.Stop() // stopped meanwhile
			return nil
		}
		p.log.Info("consumer reading again", "consumer", src.name)
		return it
	}
}

// stop stops reading a source; what it delivered and was not staged is left
// unacked (another owner's consumer starts after what was acked).
func (p *Pipeline) stop(src *source) {
	if src == nil || src.stopped.Swap(true) {
		return
	}
	src.stopIter()
	select {
	case <-src.done:
	case <-time.After(5 * time.Second):
		p.log.Warn("message reader did not stop within 5s", "consumer", src.name)
	}
}

func (p *Pipeline) consumerConfig(name string, part int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "orderwatch pipeline: acks only after the Badger commit",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.opts.AckWait,
		MaxAckPending: p.perSource(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: filterOf(part),
	}
}

// perSource is the most messages one consumer has delivered and not acked:
// together the sources (every partition, the context account and follower)
// hold at most 8 batches, as one consumer of the whole stream did, so the
// memory a backlog takes stays bounded however many partitions a member owns.
func (p *Pipeline) perSource() int {
	return max(8*p.opts.BatchSize/(p.parts+2), 16)
}

// follow starts this instance's follower of the context subjects: every
// instance applies every context event to its own aggregates.
func (p *Pipeline) follow(ctx context.Context) error {
	name := p.opts.Group + "-follow-" + p.opts.Member
	src := &source{part: process.FollowPart, mode: process.ModeFollow, name: name}
	return p.start(ctx, src, p.consumerConfig(name, process.FollowPart))
}

// partOwner is the lease that covers a partition number: the context account
// goes with partition 0.
func partOwner(part int) int {
	if part == store.ContextPart {
		return 0
	}
	return part
}

func partLabel(part int) string {
	if part == store.ContextPart {
		return "ctx"
	}
	return strconv.Itoa(part)
}

// do runs fn on the run loop, between batches, and returns its error.
func (p *Pipeline) do(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	select {
	case p.ctrl <- func() { done <- fn() }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
