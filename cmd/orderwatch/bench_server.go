package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/pipeline"
)

// benchMetaKey marks, in a stream's metadata, the streams the bench created, so
// that one a killed bench left behind is told apart from a user's.
const benchMetaKey = "orderwatch_bench"

// Names of the benchmark's consumers: of its own, never orderwatch's.
const (
	benchGroup         = "orderwatch-bench" // the pipeline's group: consumer orderwatch-bench-ordered
	benchFloorConsumer = "orderwatch-bench-floor"
)

// benchStreams are the streams the bench uses, on the embedded server or on the
// server of --nats-url: orderwatch's, with a short dedupe window.
func benchStreams() []jetstream.StreamConfig {
	cfgs := pipeline.StreamConfigs(0)
	for i := range cfgs {
		cfgs[i].Duplicates = benchDupeWindow
		cfgs[i].Metadata = map[string]string{benchMetaKey: "1"}
	}
	return cfgs
}

// benchServer gives a phase of the bench a JetStream with fresh orderwatch
// streams: an embedded server of its own in dir with the bench's sync setting,
// or, with --nats-url, the streams created on that server. stop closes it all;
// on the server of --nats-url it deletes the streams it created (their
// consumers with them), also after an error or an interrupt.
func benchServer(ctx context.Context, c benchConfig, dir string) (jetstream.JetStream, func(), error) {
	if c.NATS.URL != "" {
		return remoteBenchServer(ctx, c.NATS)
	}
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir, Sync: c.NATSSync})
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		ns.Shutdown()
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	for _, cfg := range benchStreams() {
		if err != nil {
			break
		}
		_, err = js.CreateStream(ctx, cfg)
	}
	stop := func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown() }
	if err != nil {
		stop()
		return nil, nil, err
	}
	return js, stop, nil
}

// errServerInUse is returned (wrapped) when the server of --nats-url already
// has a stream the bench would create: the bench works only on a server of its
// own.
var errServerInUse = errors.New("bench: the server of --nats-url already has orderwatch's streams")

// remoteBenchServer creates the bench's streams on the server of conn, after
// checking that none of them exists: orderwatch's stream names are fixed, and
// the bench must not publish into, consume from or delete a user's streams.
func remoteBenchServer(ctx context.Context, conn natsFlags) (jetstream.JetStream, func(), error) {
	js, err := connectBench(conn)
	if err != nil {
		return nil, nil, err
	}
	nc := js.Conn()
	cfgs := benchStreams()
	if err := benchStreamsAbsent(ctx, js, conn.URL); err != nil {
		nc.Close()
		return nil, nil, err
	}
	var created []string
	stop := func() {
		// Also after an interrupt: the bench's ctx is done by then.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, name := range created {
			_ = js.DeleteStream(dctx, name) // a stream left behind is named by the next bench's error
		}
		nc.Close()
	}
	for _, cfg := range cfgs {
		cfg.Replicas = max(conn.Replicas, 1)
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			stop()
			return nil, nil, fmt.Errorf("create stream %s on %s (%v; a stream of the server that takes these subjects is in the way: point --nats-url at a nats-server of the bench's own): %w",
				cfg.Name, redactURLs(conn.URL), cfg.Subjects, err)
		}
		created = append(created, cfg.Name)
	}
	return js, stop, nil
}

// connectBench connects to the server of --nats-url.
func connectBench(conn natsFlags) (jetstream.JetStream, error) {
	nc, err := conn.connect("orderwatch-bench", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return js, nil
}

// checkBenchServer connects to the server of --nats-url and checks, before the
// bench starts, that it holds none of the streams the bench creates.
func checkBenchServer(ctx context.Context, conn natsFlags) error {
	js, err := connectBench(conn)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer js.Conn().Close()
	return benchStreamsAbsent(ctx, js, conn.URL)
}

// benchStreamsAbsent checks that the server has none of the bench's streams.
func benchStreamsAbsent(ctx context.Context, js jetstream.JetStream, url string) error {
	for _, cfg := range benchStreams() {
		if err := absent(ctx, js, cfg.Name, redactURLs(url)); err != nil {
			return err
		}
	}
	return nil
}

// absent returns nil when the server has no stream of that name, and
// errServerInUse, saying what to do, when it has one.
func absent(ctx context.Context, js jetstream.JetStream, name, url string) error {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bench: look up stream %s on %s (does the server run JetStream for this account?): %w", name, url, err)
	}
	if s.CachedInfo().Config.Metadata[benchMetaKey] != "" {
		return fmt.Errorf("%w: %s was left by a bench that was killed, or one running now; if none runs, delete it (nats stream rm %s) and start again",
			errServerInUse, name, name)
	}
	return fmt.Errorf("%w: it has a stream %s the bench did not create, and the bench creates, fills and deletes %s, %s and %s; point --nats-url at a nats-server of the bench's own (nats-server -js -sd DIR -p PORT)",
		errServerInUse, name, pipeline.StreamOrders, pipeline.StreamDLQ, pipeline.StreamActions)
}
