// Package pipeline moves events from JetStream into orderwatch's state: the embedded
// nats-server or the connection to an external one, the streams, the durable pull
// consumer and its batches, the dead-letter queue, and ack-after-commit. cmd wires
// it; nothing else talks to JetStream's consumer.
package pipeline

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures the embedded nats-server.
type EmbeddedOptions struct {
	// Listen is the client address, "host:port". Empty means 127.0.0.1:4222.
	Listen string
	// DataDir holds the JetStream file store (in <DataDir>/jetstream). Required.
	DataDir string
	// Sync is the file-store sync policy: "always" fsyncs every write (no
	// acknowledged publish is lost on power loss); a duration such as "1s" or "2m"
	// syncs on that interval, faster but it may lose the last interval's
	// acknowledged messages on an OS crash. Empty means "always".
	Sync string
	// MaxStore bounds the JetStream file store in bytes; zero means no bound beyond
	// the disk.
	MaxStore int64
}

// StartEmbedded starts a JetStream-enabled nats-server and waits until it accepts
// connections. Stop it with Shutdown and WaitForShutdown.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("pipeline: EmbeddedOptions.DataDir is empty")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("pipeline: nats listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("pipeline: nats listen port %q: %w", portStr, err)
	}
	opts := &server.Options{
		ServerName: "orderwatch-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
	}
	if port == 0 {
		opts.Port = server.RANDOM_PORT // tests: any free port, see ClientURL
	}
	if o.MaxStore > 0 {
		opts.JetStreamMaxStore = o.MaxStore
	}
	switch o.Sync {
	case "", "always":
		opts.SyncAlways = true
	default:
		d, err := time.ParseDuration(o.Sync)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("pipeline: nats sync policy %q: want \"always\" or a positive duration such as 1s", o.Sync)
		}
		opts.SyncInterval = d
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("pipeline: configure embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("pipeline: embedded nats-server did not start on %s within 10s (is the port in use? set --nats-listen)", o.Listen)
	}
	return ns, nil
}
