package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/sim"
)

// latencyProbe publishes simulated events at a fixed rate and measures, for each,
// the time from its publish to the moment it is seen: committed by the pipeline,
// or fetched by the floor's consumer. An event is timed from the publish of its
// first copy; when JetStream drops that copy as a duplicate (of one published
// before the probe), it is never seen and not waited for. A later copy dropped
// while the first is on its way does not end the first's wait: that would leave
// out exactly the slow events.
type latencyProbe struct {
	mu   sync.Mutex
	sent map[string]time.Time // published, not yet seen
	lat  []float64            // milliseconds
	// stored are the times from publish to JetStream's ack (the event stored),
	// in milliseconds: JetStream's share of lat, measured in the same phase.
	stored []float64
	// batches are the sizes of the batches committed since the probe's first
	// publish (the pipeline's; the floor has none).
	batches []int
}

func newLatencyProbe() *latencyProbe { return &latencyProbe{sent: map[string]time.Time{}} }

// seen records that the event with this id was seen at now; ids the probe did not
// publish are ignored.
func (p *latencyProbe) seen(id string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.sent[id]; ok {
		p.lat = append(p.lat, float64(now.Sub(t))/1e6)
		delete(p.sent, id)
	}
}

// committed records the size of a batch the pipeline committed, once the probe
// publishes.
func (p *latencyProbe) committed(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sent) > 0 || len(p.lat) > 0 {
		p.batches = append(p.batches, n)
	}
}

// batchSizes returns the number of batches committed while the probe ran, and
// their mean and largest size in messages.
func (p *latencyProbe) batchSizes() (n int, mean float64, largest int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum int
	for _, b := range p.batches {
		sum += b
		largest = max(largest, b)
	}
	if len(p.batches) > 0 {
		mean = float64(sum) / float64(len(p.batches))
	}
	return len(p.batches), mean, largest
}

// pending counts the events published and not yet seen.
func (p *latencyProbe) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// publish publishes n events of the simulated stream (seed 1), after its first
// skip, at rate events per second, and waits for JetStream's acks.
func (p *latencyProbe) publish(ctx context.Context, js jetstream.JetStream, scenario sim.Scenario, skip, n int, rate float64) error {
	type inFlight struct {
		id    string
		fut   jetstream.PubAckFuture
		timed bool      // this copy's publish is the one timed for its id
		at    time.Time // of the publish
	}
	acks := make(chan inFlight, 4096)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for f := range acks {
			if !f.timed {
				continue // a later copy: the one timed may still be on its way
			}
			select {
			case ack := <-f.fut.Ok():
				if !ack.Duplicate {
					// Acks come in publish order, as this loop takes them.
					p.mu.Lock()
					p.stored = append(p.stored, float64(time.Since(f.at))/1e6)
					p.mu.Unlock()
					continue
				}
			case <-f.fut.Err():
			}
			p.mu.Lock()
			delete(p.sent, f.id)
			p.mu.Unlock()
		}
	}()
	interval := time.Duration(float64(time.Second) / rate)
	var next time.Time
	err := simulateN(ctx, scenario, 1, skip+n, sim.DefaultFaults, func(subject, id string, data []byte) error {
		if skip > 0 {
			skip--
			return nil
		}
		if next.IsZero() {
			next = time.Now()
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		now := time.Now()
		p.mu.Lock()
		_, waiting := p.sent[id]
		if !waiting {
			p.sent[id] = now
		}
		p.mu.Unlock()
		f, err := publishAsync(ctx, js, subject, id, data)
		if err == nil {
			acks <- inFlight{id, f, !waiting, now}
		}
		return err
	})
	close(acks)
	if err != nil {
		return err
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	<-acked
	return nil
}

// drain waits until every published event was seen, for at most d.
func (p *latencyProbe) drain(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for p.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// percentiles returns the median and the 99th percentile of the latencies seen.
func (p *latencyProbe) percentiles() (p50, p99 float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return percentiles(p.lat)
}

// storedPercentiles returns the median and the 99th percentile of the times
// from publish to JetStream's ack.
func (p *latencyProbe) storedPercentiles() (p50, p99 float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return percentiles(p.stored)
}

// percentiles sorts ms and returns its median and 99th percentile.
func percentiles(ms []float64) (p50, p99 float64) {
	if len(ms) == 0 {
		return 0, 0
	}
	slices.Sort(ms)
	return ms[len(ms)/2], ms[min(len(ms)-1, len(ms)*99/100)]
}

// benchFloorLatency measures JetStream alone at the latency phase's rate: on a
// fresh embedded server with the same sync setting, n events published at rate,
// each timed from its publish to its fetch by a durable pull consumer that only
// fetches and acks. It is what any consumer of that server could get on this
// disk, the reference for the pipeline's event-to-decision latency.
func benchFloorLatency(ctx context.Context, c benchConfig, scenario sim.Scenario, dir string, rate float64, n int) (p50, p99 float64, err error) {
	js, stop, err := benchServer(ctx, c, dir)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	it, err := floorConsumer(ctx, js, benchFloorConsumer, c.BatchSize)
	if err != nil {
		return 0, 0, err
	}
	probe := newLatencyProbe()
	fetched := make(chan error, 1)
	go func() {
		for {
			m, err := nextMsg(ctx, it)
			if err != nil {
				fetched <- err
				return
			}
			probe.seen(m.Headers().Get(jetstream.MsgIDHeader), time.Now())
			if err := m.Ack(); err != nil {
				fetched <- err
				return
			}
		}
	}()
	err = probe.publish(ctx, js, scenario, 0, n, rate)
	if err == nil {
		probe.drain(ctx, time.Minute)
	}
	it.Stop()
	if ferr := <-fetched; err == nil && !errors.Is(ferr, jetstream.ErrMsgIteratorClosed) {
		err = ferr
	}
	if err != nil {
		return 0, 0, err
	}
	p50, p99 = probe.percentiles()
	return p50, p99, nil
}
