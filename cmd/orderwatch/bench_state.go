package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// stateFloorResult is what the state floor measured: the rate at which the
// floor's consumer drains the stream when each batch also commits the two
// durable writes per event that orderwatch's design keeps, and the process's
// CPU time per event meanwhile.
type stateFloorResult struct{ rate, cpuUS float64 }

// benchStateFloor measures what keeping state durably per batch costs alone:
// the floor's fetch-and-ack consumer, and for each batch of messages a store
// batch with, per event, a look-up of its marker, the marker and a record of
// recordBytes for its order, committed with the store's sync before the batch
// is acked. Nothing is decoded, folded, scored or decided: the pipeline can be
// no faster than this, whatever it does per event.
func benchStateFloor(ctx context.Context, c benchConfig, scenario sim.Scenario, dir string, recordBytes int, say func(string, ...any)) (stateFloorResult, error) {
	var res stateFloorResult
	js, st, stored, stop, err := benchStream(ctx, c, scenario, dir)
	if err != nil {
		return res, err
	}
	defer stop()
	it, err := floorConsumer(ctx, js, benchFloorConsumer, c.BatchSize)
	if err != nil {
		return res, err
	}
	defer it.Stop()
	record := bytes.Repeat([]byte{'r'}, max(recordBytes, 1))
	msgs := make([]jetstream.Msg, 0, c.BatchSize)
	cpu0 := cpuTime()
	start := time.Now()
	for left := stored; left > 0; {
		msgs = msgs[:0]
		for range min(left, c.BatchSize) {
			m, err := nextMsg(ctx, it)
			if err != nil {
				return res, err
			}
			msgs = append(msgs, m)
		}
		left -= len(msgs)
		b := st.NewBatch()
		for _, m := range msgs {
			meta, err := m.Metadata()
			if err != nil {
				b.Discard()
				return res, err
			}
			data := m.Data()
			id := eventID(data)
			_, seen, err := b.EventSeq(0, id)
			if err != nil {
				b.Discard()
				return res, fmt.Errorf("state floor: event %q: %w", id, err)
			}
			if seen {
				continue // a copy published again: the pipeline skips it too
			}
			if err := b.MarkEvent(0, id, meta.Sequence.Stream); err != nil {
				b.Discard()
				return res, err
			}
			// An event of no order (a warehouse's or a carrier's) updates
			// what the pipeline keeps of its subject.
			order := orderID(data)
			if order == "" {
				order = m.Subject()
			}
			if err := b.PutOrder(order, record, 0); err != nil {
				b.Discard()
				return res, err
			}
		}
		if err := b.Commit(); err != nil {
			return res, err
		}
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				return res, err
			}
		}
	}
	res.rate = float64(stored) / time.Since(start).Seconds()
	res.cpuUS = float64(cpuTime()-cpu0) / float64(max(stored, 1)) / 1e3
	say("state floor: %d messages fetched, marked, their orders' records written and committed, acked at %.0f/s", stored, res.rate)
	return res, nil
}

// benchStream starts a phase's server (or creates the bench's streams on
// --nats-url), publishes the simulated events to ORDERS and opens a store in
// dir: where the pipeline and the state floor start. stop closes the store,
// then the server.
func benchStream(ctx context.Context, c benchConfig, scenario sim.Scenario, dir string) (js jetstream.JetStream, st *store.Store, stored int, stop func(), err error) {
	js, stopServer, err := benchServer(ctx, c, dir)
	if err != nil {
		return nil, nil, 0, nil, err
	}
	stored, _, err = publishAll(ctx, js, scenario, 1, c.Events)
	if err != nil {
		stopServer()
		return nil, nil, 0, nil, err
	}
	st, err = store.Open(store.Options{Dir: filepath.Join(dir, "badger")})
	if err != nil {
		stopServer()
		return nil, nil, 0, nil, err
	}
	return js, st, stored, func() { st.Close(); stopServer() }, nil
}

// orderID is the order_id of a simulated event, found without decoding it.
func orderID(data []byte) string {
	const field = `"order_id":"`
	i := bytes.Index(data, []byte(field))
	if i < 0 {
		return ""
	}
	rest := data[i+len(field):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return string(rest[:j])
	}
	return ""
}

// cpuTime is the CPU time, user and system, the process has used, in
// nanoseconds: with the embedded server that includes the server's.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
