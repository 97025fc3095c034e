package pipeline

// Taking and giving up partitions: the ownership changes, the rebuild of a
// partition taken from another member, and what is forgotten or acked when one
// is lost or given.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/store"
)

// manage handles the ownership changes, one at a time, until ctx is done.
func (p *Pipeline) manage(ctx context.Context) {
	if p.opts.Ownership == nil {
		for part := range p.parts {
			if err := p.take(ctx, cluster.Change{Partition: part, Owned: true, Reason: "solo"}); err != nil && ctx.Err() == nil {
				p.log.Error("start partition", "partition", part, "err", err)
			}
		}
		return
	}
	changes := p.opts.Ownership.Changes()
	// A takeover that fails (the stream unreachable, a consumer refused) is
	// tried again while the lease is held, backing off to 30s.
	retry := make(chan cluster.Change, p.parts)
	backoff := map[int]time.Duration{}
	stale := time.NewTicker(2 * time.Second)
	defer stale.Stop()
	for {
		var ch cluster.Change
		select {
		case <-ctx.Done():
			return
		case <-stale.C:
			p.forgetStale(ctx)
			continue
		case c, ok := <-changes:
			if !ok {
				changes = nil // the membership stopped: no more changes
				continue
			}
			ch = c
		case ch = <-retry:
			if !p.owns(ch.Partition) {
				continue
			}
		}
		if !ch.Owned {
			delete(backoff, ch.Partition)
			p.lose(ctx, ch)
			continue
		}
		err := p.take(ctx, ch)
		if err == nil || ctx.Err() != nil {
			delete(backoff, ch.Partition)
			continue
		}
		d := min(max(2*backoff[ch.Partition], time.Second), 30*time.Second)
		backoff[ch.Partition] = d
		p.m.takeoverFailures.Inc()
		p.log.Error("take over partition failed; tried again", "partition", ch.Partition, "in", d, "err", err)
		time.AfterFunc(d, func() {
			select {
			case retry <- ch:
			case <-ctx.Done():
			}
		})
	}
}

// forgetStale forgets the local state of the partitions another member took
// since this instance last owned them (it held them before it stopped, and did
// not get them back): their orders are the other member's now. Run it between
// the changes, in manage.
func (p *Pipeline) forgetStale(ctx context.Context) {
	for part := range p.parts + 1 {
		if part == p.parts {
			part = store.ContextPart
		}
		lease := partOwner(part)
		if p.owns(lease) || p.sources.get(part) != nil {
			continue
		}
		epoch, ok, err := p.opts.Store.PartitionEpoch(part)
		if err != nil || !ok || p.opts.Ownership.LeaseEpoch(lease) <= epoch {
			continue
		}
		var dropped int
		err = p.do(ctx, func() error {
			if part == store.ContextPart {
				return p.opts.Store.DropPartition(part, nil, false)
			}
			n, err := p.proc.DropPartition(part)
			dropped = n
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("forget stale partition", "partition", partLabel(part), "err", err)
			}
			continue
		}
		p.log.Info("stale partition forgotten", "partition", partLabel(part), "epoch", epoch,
			"lease_epoch", p.opts.Ownership.LeaseEpoch(lease), "dropped_orders", dropped)
	}
}

// take starts acting on a partition this instance has just leased. When the
// local state is current for the lease's previous epoch (this instance held it
// last), it resumes its consumer; otherwise it forgets what it had of the
// partition, rebuilds it from ORDERS up to what the previous owner acked, and
// reads on from there with a consumer of its own epoch. Taking partition 0 takes
// the context subjects' account with it.
func (p *Pipeline) take(ctx context.Context, ch cluster.Change) error {
	parts := []int{ch.Partition}
	if ch.Partition == 0 {
		parts = append(parts, store.ContextPart)
	}
	for _, part := range parts {
		if p.sources.get(part) != nil {
			continue // taken by an earlier try
		}
		if err := p.takePart(ctx, part, ch); err != nil {
			return err
		}
	}
	return nil
}

func (p *Pipeline) takePart(ctx context.Context, part int, ch cluster.Change) error {
	start := time.Now()
	mode := process.ModeLive
	if part == store.ContextPart {
		mode = process.ModeAccount
	}
	names, err := p.consumersOf(ctx, part)
	if err != nil {
		return err
	}
	resume := ch.Reason == "solo"
	if !resume && ch.Resume && len(names) > 0 {
		epoch, ok, err := p.opts.Store.PartitionEpoch(part)
		if err != nil {
			return err
		}
		resume = ok && epoch == ch.PrevEpoch
	}
	if resume {
		name := p.consumerPrefix(part) + strconv.FormatUint(ch.Epoch, 10)
		if len(names) > 0 {
			name = names[len(names)-1] // the newest epoch's, this instance's
		}
		if err := p.opts.Store.SetPartitionEpoch(part, ch.Epoch); err != nil {
			return err
		}
		src := &source{part: part, epoch: ch.Epoch, mode: mode, name: name}
		if err := p.start(ctx, src, p.consumerConfig(name, part)); err != nil {
			return err
		}
		p.log.Info("partition resumed", "partition", partLabel(part), "epoch", ch.Epoch, "consumer", name)
		return nil
	}
	// The previous owner's consumer says how far it got: everything up to its
	// ack floor was committed by it, and is rebuilt here; the rest is read anew.
	var floor uint64
	if len(names) > 0 {
		c, err := p.opts.JetStream.Consumer(ctx, StreamOrders, names[len(names)-1])
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("pipeline: read consumer %s: %w", names[len(names)-1], err)
		}
		if err == nil {
			floor = c.CachedInfo().AckFloor.Stream
		}
	}
	var dropped int
	if err := p.do(ctx, func() error {
		var err error
		if part == store.ContextPart {
			err = p.opts.Store.DropPartition(part, nil, false)
		} else {
			dropped, err = p.proc.DropPartition(part)
		}
		return err
	}); err != nil {
		return err
	}
	rebuilt, err := p.rebuild(ctx, part, floor)
	if err != nil {
		return err
	}
	var restored int
	if p.opts.Replica != nil && part != store.ContextPart && (len(names) > 0 || ch.Previous != "") {
		// (A partition nobody ever read has no governance to restore.)
		// What events cannot rebuild: the orders' rule episodes, cooldowns and
		// decisions in flight, as the previous owner left them at its ack floor.
		govs, err := p.opts.Replica.Load(ctx, part)
		if err != nil {
			return err
		}
		if err := p.do(ctx, func() error {
			var err error
			restored, err = p.proc.RestoreGovernance(govs)
			return err
		}); err != nil {
			return err
		}
		if restored > 0 {
			p.opts.OnCommit() // deliveries in flight: the executor looks at the outbox
		}
	}
	name := p.consumerPrefix(part) + strconv.FormatUint(ch.Epoch, 10)
	cfg := p.consumerConfig(name, part)
	if floor > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
	}
	if err := p.opts.Store.SetPartitionEpoch(part, ch.Epoch); err != nil {
		return err
	}
	src := &source{part: part, epoch: ch.Epoch, mode: mode, name: name}
	if err := p.start(ctx, src, cfg); err != nil {
		return err
	}
	// The previous owner's consumers go: one still reading (cut off, its lease
	// run out) can no longer ack or be delivered anything.
	for _, old := range names {
		if old == name {
			continue
		}
		if err := p.opts.JetStream.DeleteConsumer(ctx, StreamOrders, old); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			p.log.Warn("delete previous owner's consumer", "consumer", old, "err", err)
		}
	}
	var rescored int
	if rebuilt > 0 && p.opts.Replica != nil && part != store.ContextPart {
		// The rebuild scored nothing: the orders are scored now, under the
		// governance just restored, so that the at-risk queue keeps them.
		var res process.Result
		err := p.do(ctx, func() error {
			var err error
			rescored, res, err = p.proc.RescoreRebuilt(part)
			return err
		})
		if err != nil && ctx.Err() == nil {
			// Their timers stay due: the next ticks score them.
			p.log.Warn("rescore the orders of a partition taken over", "partition", partLabel(part), "err", err)
		}
		if res.Queued {
			p.opts.OnCommit()
		}
	}
	took := time.Since(start)
	if part != store.ContextPart {
		p.m.takeoverSecs.Observe(took.Seconds())
	}
	p.log.Info("partition taken over", "partition", partLabel(part), "epoch", ch.Epoch, "previous", ch.Previous,
		"reason", ch.Reason, "ack_floor", floor, "rebuilt_messages", rebuilt, "dropped_orders", dropped, "restored_governance", restored, "rescored_orders", rescored, "took", took.Round(time.Millisecond))
	return nil
}

// consumersOf lists the consumers of a partition on ORDERS, oldest epoch first.
func (p *Pipeline) consumersOf(ctx context.Context, part int) ([]string, error) {
	s, err := p.opts.JetStream.Stream(ctx, StreamOrders)
	if err != nil {
		return nil, fmt.Errorf("pipeline: look up stream %s: %w", StreamOrders, err)
	}
	prefix := p.consumerPrefix(part)
	var names []string
	lister := s.ConsumerNames(ctx)
	for name := range lister.Name() {
		if strings.HasPrefix(name, prefix) {
			if _, err := strconv.ParseUint(name[len(prefix):], 10, 64); err == nil {
				names = append(names, name)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("pipeline: list consumers of %s: %w", StreamOrders, err)
	}
	slices.SortFunc(names, func(a, b string) int {
		x, _ := strconv.ParseUint(a[len(prefix):], 10, 64)
		y, _ := strconv.ParseUint(b[len(prefix):], 10, 64)
		return int(x) - int(y)
	})
	return names, nil
}

// rebuild replays the partition's messages up to floor into the processor, in
// ModeRebuild batches, and returns how many it read.
func (p *Pipeline) rebuild(ctx context.Context, part int, floor uint64) (int, error) {
	if floor == 0 {
		return 0, nil
	}
	oc, err := p.opts.JetStream.OrderedConsumer(ctx, StreamOrders, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filterOf(part)}, DeliverPolicy: jetstream.DeliverAllPolicy,
		// Gone soon if this process dies while rebuilding (the default is 5 min).
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return 0, fmt.Errorf("pipeline: read partition %s to rebuild it: %w", partLabel(part), err)
	}
	// Each Fetch replaces the ordered consumer by a new one, but nothing deletes
	// the last: it would stay on ORDERS, its pending growing with the partition.
	defer func() {
		if ci := oc.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := p.opts.JetStream.DeleteConsumer(dctx, StreamOrders, ci.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				p.log.Warn("delete rebuild consumer", "partition", partLabel(part), "consumer", ci.Name, "err", err)
			}
		}
	}()
	var (
		read    int
		wrapped = make([]Message, 0, p.opts.BatchSize)
		ptrs    = make([]*Message, 0, p.opts.BatchSize)
	)
	flush := func() error {
		if len(wrapped) == 0 {
			return nil
		}
		ptrs = ptrs[:0]
		for i := range wrapped {
			ptrs = append(ptrs, &wrapped[i])
		}
		for attempt := 0; ; attempt++ {
			if !p.owns(partOwner(part)) {
				return fmt.Errorf("pipeline: partition %s lost while rebuilding it", partLabel(part))
			}
			err := p.do(ctx, func() error {
				_, err := p.proc.Process(context.WithoutCancel(ctx), ptrs)
				return err
			})
			if err == nil {
				break
			}
			if ctx.Err() != nil || attempt >= 5 {
				return fmt.Errorf("pipeline: rebuild partition %s: %w", partLabel(part), err)
			}
			p.log.Warn("rebuild batch failed, retried", "partition", partLabel(part), "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second << attempt):
			}
		}
		wrapped = wrapped[:0]
		return nil
	}
	for {
		batch, err := oc.Fetch(p.opts.BatchSize, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return read, fmt.Errorf("pipeline: read partition %s to rebuild it: %w", partLabel(part), err)
		}
		var n int
		last := false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			seq := meta.Sequence.Stream
			if seq > floor {
				last = true
				break
			}
			data := append([]byte(nil), m.Data()...)
			wrapped = append(wrapped, Message{Seq: seq, Subject: m.Subject(), Data: data, Header: m.Headers(),
				Partition: part, Mode: process.ModeRebuild})
			read++
			if len(wrapped) == cap(wrapped) {
				if err := flush(); err != nil {
					return read, err
				}
			}
			// The last message wanted: the fetch would wait out its MaxWait
			// for more.
			if seq == floor || meta.NumPending == 0 {
				last = true
				break
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			return read, fmt.Errorf("pipeline: read partition %s to rebuild it: %w", partLabel(part), err)
		}
		if ctx.Err() != nil {
			return read, ctx.Err()
		}
		if last || n == 0 {
			return read, flush()
		}
	}
}

// lose stops acting on a partition whose lease is gone: its source stops, and
// its local state is forgotten (its next owner rebuilds it) unless the instance
// is shutting down (it keeps it, to resume). Then the lease may move.
func (p *Pipeline) lose(ctx context.Context, ch cluster.Change) {
	parts := []int{ch.Partition}
	if ch.Partition == 0 {
		parts = append(parts, store.ContextPart)
	}
	keep := ch.Reason == cluster.ReasonShutdown
	given := keep || ch.Reason == cluster.ReasonRebalance
	for _, part := range parts {
		src := p.sources.remove(part)
		p.stop(src)
		err := p.do(ctx, func() error {
			// On the loop, the batches in flight landed: what they committed
			// of a partition given up is acked before the handoff.
			if src != nil {
				settle := given
				if given && p.opts.Replica != nil && part != store.ContextPart {
					// Its governance goes to the bucket while the lease is
					// still ours; without it the next owner decides the held
					// messages again rather than miss what they changed.
					if err := p.opts.Replica.FlushPartition(ctx, part); err != nil {
						p.log.Warn("governance of a partition given up not written; its next owner reads the rest anew", "partition", partLabel(part), "err", err)
						settle = false
					}
				}
				p.settleHeld(ctx, src, settle)
			}
			if keep {
				return nil
			}
			if part == store.ContextPart {
				return p.opts.Store.DropPartition(part, nil, false)
			}
			_, err := p.proc.DropPartition(part)
			return err
		})
		if err != nil && ctx.Err() == nil {
			p.log.Error("forget lost partition", "partition", partLabel(part), "err", err)
		}
	}
	p.log.Info("partition given up", "partition", ch.Partition, "epoch", ch.Epoch, "reason", ch.Reason)
	p.opts.Ownership.Handoff(ch.Partition)
}

// settleHeld acks what was committed of a source's partition after it stopped
// being owned when the partition was given up: its lease is held until the
// handoff, and its next owner then reads after it instead of deciding on it
// again. The last is acked synchronously, so the acks are in before the
// handoff. When the lease was lost they are forgotten: the next owner may have
// read the ack floor already, and reads them anew.
func (p *Pipeline) settleHeld(ctx context.Context, src *source, given bool) {
	held := src.held
	src.held = nil
	if !given || len(held) == 0 {
		return
	}
	for _, m := range held[:len(held)-1] {
		if err := m.Ack(); err != nil {
			p.m.ackFailures.Inc()
		}
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := held[len(held)-1].DoubleAck(actx); err != nil {
		p.m.ackFailures.Inc()
		p.log.Warn("ack of a partition given up not confirmed; its next owner reads the rest anew", "consumer", src.name, "err", err)
	}
}
