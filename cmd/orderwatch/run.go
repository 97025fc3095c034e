package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/models"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// runConfig holds the flags of `orderwatch run`.
type runConfig struct {
	Data       string
	HTTP       string
	NATSListen string
	NATSURL    string
	NATSSync   string
	Models     string
	Policy     string
	Demo       bool
	DemoRate   float64
	BatchSize  int
	LogFormat  string
	LogLevel   string
}

func parseRunFlags(args []string) (runConfig, error) {
	var c runConfig
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&c.Data, "data", "./data", "data `dir`: Badger in <dir>/badger, the embedded JetStream store in <dir>/jetstream")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "HTTP listen `addr` for /metrics, /healthz, /readyz and /api/v1")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "client `addr` of the embedded nats-server")
	fs.StringVar(&c.NATSURL, "nats-url", "", "`url` of an external NATS server with JetStream; the embedded server is not started")
	fs.StringVar(&c.NATSSync, "nats-sync", "always", "embedded JetStream file-store sync `policy`: always, or an interval such as 1s (faster, may lose that interval on an OS crash)")
	fs.StringVar(&c.Models, "models", "", "models `dir` (default <data>/models, seeded with the shipped bundles)")
	fs.StringVar(&c.Policy, "policy", "", "policy `file` (YAML); default: the shipped policy")
	fs.BoolVar(&c.Demo, "demo", false, "also publish a live stream of plausible events into ORDERS")
	fs.Float64Var(&c.DemoRate, "demo-rate", 40, "demo events per `second`")
	fs.IntVar(&c.BatchSize, "batch-size", 256, "most `messages` per commit")
	fs.StringVar(&c.LogFormat, "log-format", "", "log `format`: text or json (default text on a terminal, json otherwise)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if c.Models == "" {
		c.Models = filepath.Join(c.Data, "models")
	}
	return c, nil
}

func runCmd(args []string) error {
	cfg, err := parseRunFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, log)
}

// run wires the parts and runs them until ctx is done. Shutdown goes in reverse:
// stop fetching, finish the batch in flight, flush the outbox, close NATS, close
// Badger last.
func run(ctx context.Context, cfg runConfig, log *slog.Logger) error {
	policy, err := actions.LoadPolicy(cfg.Policy)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.Data, "badger"), Logger: log.With("component", "store")})
	if err != nil {
		return err
	}
	defer closeLogged(log, "store", st.Close)
	reg.MustRegister(st.Collectors()...)

	model, modelErr := loadModel(cfg.Models)
	if modelErr != nil {
		log.Error("no model loaded: scoring with the rules fallback, decisions are marked degraded", "err", modelErr)
	} else {
		defer closeLogged(log, "model", model.Close)
		log.Info("model loaded", "name", model.Name(), "version", model.Version(), "sha256", model.SHA256())
		info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderwatch_model_info",
			Help: "The model serving, by name, version, role and sha256 of model.onnx (value 1).",
		}, []string{"name", "version", "role", "sha256"})
		info.WithLabelValues(model.Name(), model.Version(), model.Role(), model.SHA256()).Set(1)
		reg.MustRegister(info)
	}

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: cfg.NATSListen, DataDir: cfg.Data, Sync: cfg.NATSSync})
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL = ns.ClientURL()
		log.Info("embedded nats-server started", "url", natsURL, "sync", cfg.NATSSync)
	}
	nc, err := connect(natsURL, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := pipeline.EnsureStreams(ctx, js); err != nil {
		return err
	}

	exec, err := actions.NewExecutor(actions.ExecutorOptions{
		Store: st, Publish: jsPublisher(js), Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	popts := pipeline.Options{
		JetStream: js, Store: st, Policy: policy, OnCommit: exec.Wake,
		BatchSize: cfg.BatchSize, Logger: log, Registerer: reg,
	}
	if modelErr == nil {
		popts.Scorer = model
	}
	pipe, err := pipeline.New(popts)
	if err != nil {
		return err
	}

	ready := map[string]api.Check{
		"consumer": pipe.Ready,
		"model": func() (bool, string) {
			if modelErr != nil {
				return false, modelErr.Error()
			}
			return true, ""
		},
		"nats": func() (bool, string) {
			if !nc.IsConnected() {
				return false, "not connected to " + natsURL
			}
			return true, ""
		},
	}
	srv := &http.Server{
		Handler:           api.Handler(api.Options{Store: st, Gatherer: reg, Ready: ready, Logger: log}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen on %s (set --http): %w", cfg.HTTP, err)
	}
	log.Info("http listening", "addr", ln.Addr().String())

	// Each part runs until ctx is done; the first to fail stops the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", name, err) })
				cancel()
			}
		}()
	}
	start("http", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	start("pipeline", pipe.Run)
	start("executor", exec.Run)
	start("badger-gc", func(ctx context.Context) error { return st.RunGC(ctx, 5*time.Minute) })
	if cfg.Demo {
		log.Info("demo feed on", "rate", cfg.DemoRate)
		// A fresh seed per start: its ids must not collide with an earlier run's in
		// the same data dir.
		demo := sim.NewDemo(sim.DemoOptions{Seed: time.Now().Unix(), Rate: cfg.DemoRate, BadEvery: 500, Logger: log})
		start("demo", func(ctx context.Context) error { return demo.Run(ctx, jsPublisher(js)) })
	}
	<-ctx.Done()
	log.Info("shutting down")
	wg.Wait()
	return firstErr
}

// loadModel seeds the models dir with the shipped bundles and opens the live version
// of cutoff_risk.
func loadModel(dir string) (*models.Model, error) {
	if err := models.InitRuntime(""); err != nil {
		return nil, err
	}
	if err := models.SeedDir(dir); err != nil {
		return nil, err
	}
	live, err := models.Active(dir, "cutoff_risk")
	if err != nil {
		return nil, err
	}
	return models.Open(live, features.SpecVersion, features.Names[:])
}

func connect(url string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name("orderwatch"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected, reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s (is it running? set --nats-url): %w", url, err)
	}
	return nc, nil
}

// jsPublisher publishes with Nats-Msg-Id and waits for the stream's ack.
func jsPublisher(js jetstream.JetStream) func(ctx context.Context, subject, msgID string, data []byte) error {
	return func(ctx context.Context, subject, msgID string, data []byte) error {
		_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		return err
	}
}

func closeLogged(log *slog.Logger, what string, fn func() error) {
	if err := fn(); err != nil {
		log.Error("close", "part", what, "err", err)
	}
}
