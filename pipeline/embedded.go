// Package pipeline moves events from JetStream into orderwatch's state: the embedded
// nats-server or the connection to an external one, the streams, the durable pull
// consumer and its batches, the dead-letter queue, and ack-after-commit. cmd wires
// it; nothing else talks to JetStream's consumer.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
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
	// Logger gets the server's warnings and errors (its notices at debug). Nil
	// discards them.
	Logger *slog.Logger
	// ResumeFree is the free space JetStream's disk must have again before
	// JetStream is restarted after a write error. Zero means 64 MiB.
	ResumeFree uint64
}

const (
	// jetStreamWatch is how often the embedded server is checked.
	jetStreamWatch = time.Second
	// restartEvery spaces JetStream restarts: a disk that fails every write
	// must not have JetStream restarting in a loop.
	restartEvery = 10 * time.Second
)

// Embedded is the embedded nats-server, kept writable.
//
// nats-server keeps a write error for good: after a write that found the disk
// full, a stream refuses every publish (and a consumer every ack) until
// JetStream restarts, even once space has returned. Embedded watches for such
// errors in the server's log, and for JetStream turned off, and when JetStream's
// disk has ResumeFree bytes free again it restarts JetStream, which reloads the
// streams and consumers from the store as they were. Meanwhile publishers get
// errors and keep their events, the consumer fetches what was stored, and Ready
// says why.
type Embedded struct {
	*server.Server
	opts       *server.Options // as given: a restart reloads a copy
	resumeFree uint64
	log        *slog.Logger
	writeErr   atomic.Pointer[string] // last critical write error logged since JetStream started
}

// StartEmbedded starts a JetStream-enabled nats-server, waits until it accepts
// connections, and keeps JetStream writable (see Embedded). Stop it with Shutdown
// and WaitForShutdown.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
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
	if o.ResumeFree == 0 {
		o.ResumeFree = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Embedded{opts: opts.Clone(), resumeFree: o.ResumeFree, log: o.Logger}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("pipeline: configure embedded nats-server: %w", err)
	}
	e.Server = ns
	// The server's log is how its write errors are known; it goes to slog.
	ns.SetLoggerV2(natsLogger{e}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("pipeline: embedded nats-server did not start on %s within 10s (is the port in use? set --nats-listen)", o.Listen)
	}
	go e.keepWritable()
	return e, nil
}

// Ready reports whether JetStream takes writes, and if not why.
func (e *Embedded) Ready() (bool, string) {
	if !e.JetStreamEnabled() {
		return false, "embedded JetStream is off: " + e.waiting()
	}
	if msg := e.writeErr.Load(); msg != nil {
		return false, "embedded JetStream cannot write (" + *msg + "): " + e.waiting()
	}
	return true, ""
}

// Collector is the gauge orderwatch_embedded_jetstream_writable: 1 while Ready,
// 0 while JetStream is off or keeps a write error.
func (e *Embedded) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "orderwatch_embedded_jetstream_writable",
		Help: "1 while the embedded JetStream takes writes; 0 while it is off or keeps a write error (a full disk): publishers get errors until it restarts.",
	}, func() float64 {
		if ok, _ := e.Ready(); ok {
			return 1
		}
		return 0
	})
}

// waiting says what a restart of JetStream waits for.
func (e *Embedded) waiting() string {
	free, err := FreeBytes(e.opts.StoreDir)
	if err != nil {
		return err.Error()
	}
	if free < e.resumeFree {
		return fmt.Sprintf("%d MiB free in %s; it restarts by itself at %d MiB", free>>20, e.opts.StoreDir, e.resumeFree>>20)
	}
	return "restarting"
}

// keepWritable restarts JetStream after a write error or after the server turned
// it off, once its disk has resumeFree bytes free. It returns when the server
// shuts down.
func (e *Embedded) keepWritable() {
	var since, restarted time.Time
	for ; e.Running(); time.Sleep(jetStreamWatch) {
		msg := e.writeErr.Load()
		if e.JetStreamEnabled() && msg == nil {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
			_, why := e.Ready()
			e.log.Error("embedded JetStream takes no writes: publishers get errors and keep their events until it is back", "reason", why)
		}
		free, err := FreeBytes(e.opts.StoreDir)
		if err != nil || free < e.resumeFree || time.Since(restarted) < restartEvery || !e.Running() {
			continue
		}
		restarted = time.Now()
		if e.JetStreamEnabled() {
			if err := e.ShutdownJetStream(); err != nil {
				e.log.Error("embedded JetStream: stopping it for a restart failed; retrying", "err", err)
				continue
			}
		}
		e.writeErr.CompareAndSwap(msg, nil)
		// JetStream is on in the options and off in the server: a reload of the
		// same options turns it back on.
		if err := e.ReloadOptions(e.opts.Clone()); err != nil || !e.JetStreamEnabled() {
			e.log.Error("embedded JetStream: restarting it failed; retrying", "err", err)
			continue
		}
		e.log.Info("embedded JetStream back on: its disk has space again", "store", e.opts.StoreDir,
			"free_mib", free>>20, "down_for", time.Since(since).Round(time.Second).String())
		since = time.Time{}
	}
}

// FreeBytes is the space an unprivileged writer has left on dir's file system.
func FreeBytes(dir string) (uint64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return fs.Bavail * uint64(fs.Bsize), nil
}

// natsLogger passes nats-server's log to slog: warnings and errors as they are,
// notices at debug (the server is chatty when it starts), debug and trace not at
// all (they are not enabled). A critical write error is also kept for the
// restart.
type natsLogger struct{ e *Embedded }

func (l natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l natsLogger) Debugf(format string, v ...any)  {}
func (l natsLogger) Tracef(format string, v ...any)  {}

func (l natsLogger) emit(level slog.Level, format string, v []any) {
	if level < slog.LevelError && !l.e.log.Enabled(context.Background(), level) {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if level == slog.LevelError && strings.Contains(strings.ToLower(msg), "critical write error") {
		l.e.writeErr.Store(&msg)
	}
	l.e.log.Log(context.Background(), level, msg, "component", "nats-server")
}
