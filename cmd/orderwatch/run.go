package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/auth"
	"github.com/orderwatch/orderwatch/cluster"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/mapping"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/process"
	"github.com/orderwatch/orderwatch/sim"
	"github.com/orderwatch/orderwatch/store"
)

// runConfig holds the flags of `orderwatch run`.
type runConfig struct {
	Data        string
	HTTP        string
	HTTPTLSCert string
	HTTPTLSKey  string
	NATSListen  string
	NATS        natsFlags
	NATSSync    string
	Models      string
	Policy      string
	Demo        bool
	DemoRate    float64
	BatchSize   int
	LogFormat   string
	LogLevel    string
	MemLimit    memoryLimit
	// ReadsNeedToken asks ORDERWATCH_API_TOKEN of the API's reads too.
	ReadsNeedToken bool
	// APIMaxInFlight bounds the /api/ requests served at once.
	APIMaxInFlight int
	// OrdersRetention is the age limit of ORDERS and ACTIONS when orderwatch
	// creates them.
	OrdersRetention retention
	// Partitions of ORDERS: 0 is 16 when orderwatch creates the stream and the
	// existing stream's otherwise; another value must be the existing stream's.
	Partitions int
	// Group is the group of instances sharing the partitions; Member this
	// instance's id in it ("" = kept in the data dir).
	Group, Member string
	// Users is the users file ("" = none; the demo makes one in the data dir).
	Users string
	// AuthProxyHeader names a trusted reverse proxy's user header, honoured
	// from the AuthProxyTrusted addresses only (comma-separated CIDRs).
	AuthProxyHeader, AuthProxyTrusted string
	// Mapping is the mapping file of the bridge from FOREIGN ("" = no bridge).
	Mapping string
}

// runFlags binds the flags of run to c; config is the --config flag's value.
func runFlags(c *runConfig) (fs *flag.FlagSet, config *string) {
	fs = flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&c.Data, "data", "./data", "data `dir`: Badger in <dir>/badger, the embedded JetStream store in <dir>/jetstream")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "HTTP listen `addr` for the console (/), /metrics, /healthz, /readyz and /api/v1")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", "", "serve HTTPS with this PEM certificate `file` (with --http-tls-key); read again when it changes")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", "", "PEM `file` of the HTTPS certificate's key")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "client `addr` of the embedded nats-server")
	c.NATS.register(fs, "`url` of an existing NATS server or cluster with JetStream (comma-separated for several); the embedded server is not started")
	fs.StringVar(&c.NATSSync, "nats-sync", "always", "embedded JetStream file-store sync `policy`: always, or an interval such as 1s (faster, may lose that interval on an OS crash)")
	fs.StringVar(&c.Models, "models", "", "models `dir` (default <data>/models, seeded with the shipped bundles)")
	fs.StringVar(&c.Policy, "policy", "", "policy `file` (YAML); default: the shipped policy")
	fs.BoolVar(&c.Demo, "demo", false, "also publish a live stream of plausible events into ORDERS")
	fs.Float64Var(&c.DemoRate, "demo-rate", 40, "demo events per `second`")
	fs.IntVar(&c.BatchSize, "batch-size", 1024, "most `messages` per commit (one fsync each)")
	fs.StringVar(&c.LogFormat, "log-format", "", "log `format`: text or json (default text on a terminal, json otherwise)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	c.MemLimit = memoryLimit{auto: true}
	fs.Var(&c.MemLimit, "memory-limit", "Go heap soft `limit`: auto (GOMEMLIMIT, else 90% of the container's limit, else none), off, or a size such as 768MiB")
	fs.BoolVar(&c.ReadsNeedToken, "api-token-for-reads", false, "ask ORDERWATCH_API_TOKEN of every /api/ request, reads too (orders, decisions, policy); /metrics, /healthz and /readyz stay open")
	c.OrdersRetention = retention(pipeline.DefaultOrdersMaxAge)
	fs.Var(&c.OrdersRetention, "orders-retention", "how long ORDERS and ACTIONS keep a message when orderwatch creates them: a `duration` such as 720h or 30d, from 1d to 3650d (existing streams are left as they are)")
	fs.IntVar(&c.APIMaxInFlight, "api-max-inflight", api.DefaultMaxInFlight, "most `requests` to /api/ served at once; more are refused with 503 and Retry-After (/metrics, /healthz, /readyz are not counted)")
	fs.IntVar(&c.Partitions, "partitions", 0, "order `partitions` of ORDERS, fixed when orderwatch creates the stream: 0 is 16 then, and the existing stream's number otherwise (README: changing it)")
	fs.StringVar(&c.Group, "group", "orderwatch", "`name` of the group of instances that share the partitions of ORDERS")
	fs.StringVar(&c.Member, "member", "", "this instance's `id` in its group, [A-Za-z0-9_-] (default: the host name and a random suffix, kept in the data dir)")
	fs.StringVar(&c.Users, "users", "", "users `file` (YAML) of the people who sign in, with their roles (orderwatch users add); default none, the demo's <data>/users.yaml with --demo")
	fs.StringVar(&c.AuthProxyHeader, "auth-proxy-header", "", "`header` in which a trusted reverse proxy names the signed-in user (X-Forwarded-User), honoured only from --auth-proxy-trusted")
	fs.StringVar(&c.AuthProxyTrusted, "auth-proxy-trusted", "", "`CIDRs` (comma-separated) the reverse proxy of --auth-proxy-header connects from")
	fs.StringVar(&c.Mapping, "mapping", "", "mapping `file` (YAML, README \"Bring your own events\"): map the middleware's messages on its subjects (stream FOREIGN) live onto ORDERS")
	config = fs.String("config", "", "YAML `file` whose keys are these flags (data: ./data); flags on the command line win")
	return fs, config
}

func parseRunFlags(args []string) (runConfig, error) {
	var c runConfig
	fs, config := runFlags(&c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	if err := applyConfigFile(fs, *config); err != nil {
		return c, err
	}
	if err := c.NATS.check(); err != nil {
		return c, fmt.Errorf("run: %w", err)
	}
	if c.Partitions < 0 || c.Partitions > pipeline.MaxPartitions {
		return c, fmt.Errorf("run: --partitions %d: want 1 to %d, or 0 for the existing stream's (16 for a new one)", c.Partitions, pipeline.MaxPartitions)
	}
	if c.APIMaxInFlight < 1 || c.APIMaxInFlight > 10000 {
		return c, fmt.Errorf("run: --api-max-inflight %d: want 1 to 10000 requests", c.APIMaxInFlight)
	}
	if (c.AuthProxyHeader == "") != (c.AuthProxyTrusted == "") {
		return c, errors.New("run: --auth-proxy-header and --auth-proxy-trusted go together: the header is believed only from the proxy's addresses")
	}
	if _, err := auth.ParseCIDRs(c.AuthProxyTrusted); err != nil {
		return c, fmt.Errorf("run: --auth-proxy-trusted: %w", err)
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
	cfg.MemLimit.apply(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg, log)
}

// run wires the parts and runs them until ctx is done, then stops them in order
// (stopInOrder) and closes NATS, the models and Badger last.
func run(ctx context.Context, cfg runConfig, log *slog.Logger) error {
	token := os.Getenv("ORDERWATCH_API_TOKEN")
	if cfg.ReadsNeedToken && token == "" && cfg.Users == "" && cfg.AuthProxyHeader == "" && !cfg.Demo {
		return errors.New("--api-token-for-reads needs ORDERWATCH_API_TOKEN in the environment, or --users: without them no request to /api/ could be answered")
	}
	var certs *certFiles
	if cfg.HTTPTLSCert != "" || cfg.HTTPTLSKey != "" {
		var err error
		if certs, err = newCertFiles(cfg.HTTPTLSCert, cfg.HTTPTLSKey); err != nil {
			return err
		}
	}
	policy, err := actions.LoadPolicy(cfg.Policy)
	if err != nil {
		return err
	}
	foreign, err := loadMapping(cfg.Mapping)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Every writer of the store (pipeline, executor, governor, API) stops while
	// its disk is nearly full.
	diskSpace := freeSpace(filepath.Join(cfg.Data, "badger"), badgerReserve)
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.Data, "badger"), CheckSpace: diskSpace, Logger: log.With("component", "store")})
	if err != nil {
		return err
	}
	defer closeLogged(log, "store", st.Close)
	reg.MustRegister(st.Collectors()...)
	killSwitch, err := actions.OpenKillSwitch(st)
	if err != nil {
		return err
	}
	policy.UseKillSwitch(killSwitch)
	live := actions.NewLive(policy)
	reg.MustRegister(live.Collectors()...)
	reloader := &policyReloader{live: live, path: cfg.Policy, log: log}

	registry, modelErr := newRegistry(cfg.Models, log, reg)
	if modelErr != nil {
		log.Error("models unusable: scoring with the rules fallback, decisions are marked degraded", "err", modelErr)
	}

	conn := cfg.NATS
	var embedded *pipeline.Embedded
	if conn.URL == "" {
		ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: cfg.NATSListen, DataDir: cfg.Data, Sync: cfg.NATSSync, Logger: log})
		if err != nil {
			return err
		}
		embedded = ns
		reg.MustRegister(ns.Collector())
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		conn = natsFlags{URL: ns.ClientURL(), Replicas: 1}
		log.Info("embedded nats-server started", "url", conn.URL, "sync", cfg.NATSSync)
	}
	nc, err := conn.connect("orderwatch", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	if modelErr == nil {
		// Closed before NATS and Badger (deferred calls run last first).
		defer closeLogged(log, "models", registry.Close)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sopts := pipeline.StreamOptions{Replicas: conn.Replicas, OrdersMaxAge: time.Duration(cfg.OrdersRetention),
		Partitions: cfg.Partitions, Logger: log}
	parts, err := pipeline.EnsureStreams(ctx, js, sopts)
	if err != nil {
		return err
	}
	var bridge *pipeline.Bridge
	if foreign != nil {
		if bridge, err = startableBridge(ctx, js, foreign, conn.Replicas, log, reg); err != nil {
			return err
		}
	}
	// What events cannot rebuild, kept where every member of the group finds it.
	stateKV, err := cluster.StateBucket(ctx, js, cfg.Group, conn.Replicas)
	if err != nil {
		return err
	}
	// The kill switch is the group's from here on: set on any member, followed by all.
	if err := killSwitch.Share(ctx, stateKV, log); err != nil {
		return err
	}
	// Who may do what: sessions signed with the group's key, so that any member
	// accepts them.
	sessionKey, err := auth.GroupKey(ctx, stateKV)
	if err != nil {
		return err
	}
	users, usersFile, demoCreds, err := loadUsers(cfg, log)
	if err != nil {
		return err
	}
	trusted, _ := auth.ParseCIDRs(cfg.AuthProxyTrusted) // checked by parseRunFlags
	authn, err := auth.New(auth.Options{Users: users, SharedToken: token, Key: sessionKey,
		ProxyHeader: cfg.AuthProxyHeader, ProxyTrusted: trusted, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	partOf := func(order string) int { return features.Partition(features.OrderToken(order), parts) }
	// group is made below; the executor and the replica ask it only once running.
	var group *cluster.Membership
	ownsOrder := func(order string) bool { return group.Owns(partOf(order)) }
	replica, err := actions.NewReplica(actions.ReplicaOptions{
		KV: stateKV, JetStream: js, Store: st, Policy: live, Partition: partOf,
		Owns: func(part int) bool { return group.Owns(part) },
		Memory: func(order string) (actions.Memory, bool, bool, error) {
			return process.ReadMemory(st, order)
		},
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	member := cfg.Member
	if member == "" {
		if member, err = st.MemberID(hostToken(), randomToken); err != nil {
			return err
		}
	}

	exec, err := actions.NewExecutor(actions.ExecutorOptions{
		Store: st, Publish: actionPublisher(js), Policy: live, Logger: log, Registerer: reg,
		Owns: ownsOrder, Changed: replica.Changed,
	})
	if err != nil {
		return err
	}
	gov, err := actions.NewGovernor(actions.GovernorOptions{
		Store: st, Policy: live, Wake: exec.Wake, Logger: log, Registerer: reg, Changed: replica.Changed,
	})
	if err != nil {
		return err
	}
	group, err = cluster.New(cluster.Options{
		JetStream: js, Group: cfg.Group, Member: member, Partitions: parts, Replicas: conn.Replicas,
		API: advertisedAPI(cfg),
		Stats: func() json.RawMessage {
			raw, err := api.ReadMemberStats(st)
			if err != nil {
				log.Warn("read stats for the member record", "err", err)
				return nil
			}
			return raw
		},
		Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	// The rate limits count the whole group's decisions. Given to the policy
	// before anything reads it (the parts start below); reloads carry it over.
	rates, err := actions.OpenRateShare(ctx, actions.RateShareOptions{
		Bucket: stateKV, Member: member, Store: st, Logger: log, Registerer: reg,
	})
	if err != nil {
		return err
	}
	policy.UseRateShare(rates)
	// The open orders this member holds, for the at-risk queue of the API.
	openOrders := process.NewOpenIndex()
	// The demo's backlog is the network's history before its start: scored on
	// its own time, as replay would, its orders have the scores their live
	// quality is judged on (README "The live demo").
	demoStart := time.Now()
	popts := pipeline.Options{
		JetStream: js, Store: st, Policy: live, OnCommit: exec.Wake, OpenOrders: openOrders,
		BatchSize: cfg.BatchSize, Partitions: parts, Group: cfg.Group, Member: member, Ownership: group, Replica: replica,
		Logger: log, Registerer: reg,
	}
	if cfg.Demo {
		popts.CatchUpBefore = demoStart
	}
	if registry != nil {
		popts.Scorer = &registryScorer{r: registry}
	}
	pipe, err := pipeline.New(popts)
	if err != nil {
		return err
	}
	peers := cluster.NewPeers(nc, group, partOf, log)
	lag, err := pipeline.NewLagMonitor(pipeline.LagOptions{JetStream: js, Consumers: pipe.Consumers, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}

	var shuttingDown atomic.Bool
	ready := map[string]api.Check{
		"shutdown": func() (bool, string) {
			if shuttingDown.Load() {
				return false, "shutting down"
			}
			return true, ""
		},
		"consumer": pipe.Ready,
		"model": func() (bool, string) {
			if modelErr != nil {
				return false, modelErr.Error()
			}
			set := registry.Acquire()
			defer set.Release()
			if set.Model(modelRisk) == nil {
				return false, "no valid cutoff_risk version in " + cfg.Models + ": see GET /api/v1/models"
			}
			return true, ""
		},
		"nats": func() (bool, string) {
			if !nc.IsConnected() {
				return false, "not connected to " + redactURLs(conn.URL)
			}
			return true, ""
		},
		"disk": func() (bool, string) {
			if err := diskSpace(); err != nil {
				return false, err.Error()
			}
			return true, ""
		},
	}
	if embedded != nil {
		ready["jetstream"] = embedded.Ready
	}
	// The API reads the events of the orders' timelines back from ORDERS.
	orders, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		return fmt.Errorf("open stream %s for the orders' timelines: %w", pipeline.StreamOrders, err)
	}
	apiOpts := api.Options{Store: st, Gatherer: reg, Ready: ready, Logger: log, Auth: authn, TokenForReads: cfg.ReadsNeedToken, Governor: gov, Policy: reloader,
		Targets: exec, MaxInFlight: cfg.APIMaxInFlight, Registerer: reg, Group: group, Peers: peers, OpenOrders: openOrders, Events: orders}
	if registry != nil {
		apiOpts.Models = registry
	}
	// handlers counts the requests being served, so that shutdown can wait for
	// the last one even when it had to close their connections.
	handlers := new(sync.WaitGroup)
	apiHandler := api.Handler(apiOpts)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		if shuttingDown.Load() && r.Method != http.MethodGet && r.Method != http.MethodHead {
			// From the SIGTERM on, a change (an approval, a kill switch) is
			// refused at once rather than taken while the parts stop: a client
			// or load balancer tries another member.
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"shutting down: try another member or again in a moment"}`, http.StatusServiceUnavailable)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
	srv := api.NewServer(counted, api.ServerOptions{Logger: log})
	// The other members of the group forward here what this member answers for.
	if err := peers.Serve(counted); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen on %s (set --http): %w", cfg.HTTP, err)
	}
	serve, scheme := srv.Serve, "http"
	if certs != nil {
		srv.TLSConfig = certs.tlsConfig()
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		scheme = "https"
	}
	log.Info("http listening", "addr", ln.Addr().String(), "scheme", scheme)
	console := consoleURL(scheme, ln.Addr())
	log.Info("console", "url", console)
	if demoCreds != nil {
		// The demo's passwords are new at every start and shown here once.
		log.Info("demo users: sign in", append([]any{"url", scheme + "://" + ln.Addr().String() + "/signin"}, demoCreds...)...)
		fmt.Fprintf(os.Stdout, "console: %s  sign in as demo / %s  (or viewer / %s)\n", console,
			credential(demoCreds, "admin_password"), credential(demoCreds, "viewer_password"))
	}

	// The parts run in stages, each with its own context, so that they stop in
	// order (stopInOrder); the first to fail stops them all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(name string, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			errOnce.Do(func() { firstErr = fmt.Errorf("%s: %w", name, err) })
			cancel()
		}
	}
	membership, mctx := newStage(fail)
	ingest, ictx := newStage(fail)
	execution, ectx := newStage(fail)
	membership.start(mctx, "cluster", group.Run)
	// In the stage that stops after the pipeline: its last batch is published.
	membership.start(mctx, "rate-share", rates.Run)
	ingest.start(ictx, "pipeline", pipe.Run)
	ingest.start(ictx, "governor", gov.Run)
	ingest.start(ictx, "replica", func(ctx context.Context) error { replica.Run(ctx); return nil })
	if registry != nil {
		ingest.start(ictx, "models", registry.Run)
	}
	ingest.start(ictx, "lag", lag.Run)
	if bridge != nil {
		ingest.start(ictx, "bridge", bridge.Run)
	}
	ingest.start(ictx, "badger-gc", func(ctx context.Context) error { return st.RunGC(ctx, time.Minute) })
	ingest.start(ictx, "policy-reload", reloader.onSIGHUP)
	if usersFile != "" {
		ingest.start(ictx, "users-reload", func(ctx context.Context) error { return reloadUsersOnSIGHUP(ctx, usersFile, authn, log) })
	}
	if cfg.Demo {
		log.Info("demo feed on", "rate", cfg.DemoRate)
		// The simulator in real time, warm-started on the last hours. A fresh seed per
		// start: it is part of every event and order id, which must not collide with
		// an earlier run's in the same data dir.
		demo := sim.NewDemo(sim.DemoOptions{Seed: time.Now().UnixNano(), Start: demoStart, Rate: cfg.DemoRate, BadEvery: 500, Drill: demoDrill, Logger: log})
		ingest.start(ictx, "demo", func(ctx context.Context) error { return demo.Run(ctx, jsPublisher(js)) })
	}
	execution.start(ectx, "executor", exec.Run)
	served := make(chan error, 1)
	go func() { served <- serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		fail("http", fmt.Errorf("serve stopped: %w", err))
		served <- nil
	}
	log.Info("shutting down")
	shuttingDown.Store(true)
	stopInOrder(log, ingest, replica, membership, srv, peers, handlers, served, execution)
	log.Info("stopped")
	return firstErr
}

// loadMapping compiles the --mapping file and checks its subjects; nil for none.
func loadMapping(path string) (*mapping.Mapping, error) {
	if path == "" {
		return nil, nil
	}
	m, err := mapping.Load(path)
	if err != nil {
		return nil, fmt.Errorf("run: --mapping: %w", err)
	}
	if err := pipeline.CheckForeignSubjects(m.Subjects()); err != nil {
		return nil, fmt.Errorf("run: --mapping %s: %w", path, err)
	}
	return m, nil
}

// startableBridge makes the bridge of m, its stream FOREIGN and its consumer.
func startableBridge(ctx context.Context, js jetstream.JetStream, m *mapping.Mapping, replicas int, log *slog.Logger, reg prometheus.Registerer) (*pipeline.Bridge, error) {
	b, err := pipeline.NewBridge(pipeline.BridgeOptions{JetStream: js, Mapping: m, Replicas: replicas, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if err := b.Ensure(ctx); err != nil {
		return nil, err
	}
	log.Info("bridge on", "stream", pipeline.StreamForeign, "subjects", pipeline.ForeignSubjects(m.Subjects()), "consumer", pipeline.ConsumerBridge)
	return b, nil
}

// stopInOrder stops the parts of run so that nothing writes Badger once it is
// closed and nothing accepted is left behind: first what reads and decides (the
// pipeline finishes its batch in flight and returns; the governor, the demo feed
// and the watchers stop), then HTTP and the requests other members forward (no
// new approval; Shutdown is waited for, and every handler with it), then the
// executor, whose final pass over the outbox sends what the last batch and the
// last approvals queued while this member still owns their orders (it delivers
// only for orders it owns), then the last write of the orders' governance to the
// group's state bucket, then the group membership, which gives the partitions'
// leases back for the others to take at once. NATS, the models and Badger are
// closed by run's deferred calls after it returns.
func stopInOrder(log *slog.Logger, ingest *stage, replica *actions.Replica, membership *stage, srv *http.Server, peers *cluster.Peers, handlers *sync.WaitGroup, served <-chan error, execution *stage) {
	ingest.stop()
	if err := peers.Stop(); err != nil {
		log.Warn("stop answering the group's forwarded requests", "err", err)
	}
	sctx, c := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer c()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http requests still running at shutdown; closing their connections", "err", err, "waited", httpShutdownTimeout)
		_ = srv.Close()
	}
	<-served
	handlers.Wait() // after a Close, the handlers that were running
	execution.stop()
	// The leases are still held: the last changes of the orders' governance
	// (approvals, deliveries) go to the group's state bucket before they are
	// given back.
	fctx, fc := context.WithTimeout(context.Background(), 5*time.Second)
	if err := replica.Flush(fctx); err != nil {
		log.Warn("last write of order governance to the group's state bucket", "err", err)
	}
	fc()
	membership.stop()
}

// httpShutdownTimeout is how long shutdown waits for HTTP requests in flight
// before it closes their connections.
const httpShutdownTimeout = 10 * time.Second

// stage is a group of parts of run that stop together: each runs until the
// context newStage returned is done, and stop waits until they have all returned.
type stage struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	fail   func(name string, err error)
}

// newStage returns a stage and the context its parts run under (stop cancels it).
func newStage(fail func(name string, err error)) (*stage, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	return &stage{cancel: cancel, fail: fail}, ctx
}

func (s *stage) start(ctx context.Context, name string, fn func(context.Context) error) {
	s.wg.Go(func() { s.fail(name, fn(ctx)) })
}

func (s *stage) stop() {
	s.cancel()
	s.wg.Wait()
}

// policyReloader reloads the policy file on SIGHUP and on POST
// /api/v1/policy/reload, and logs each outcome.
type policyReloader struct {
	live *actions.Live
	path string // empty: the shipped policy
	log  *slog.Logger
}

func (r *policyReloader) Policy() *actions.Policy { return r.live.Policy() }

// Reload puts the policy file in force, or keeps the one in force and says why.
// The environment (webhook secrets) is the one the process started with.
func (r *policyReloader) Reload() (*actions.Policy, error) {
	before := r.live.Policy().Version
	p, err := r.live.Reload(r.path, os.Getenv)
	if err != nil {
		r.log.Error("policy reload refused", "file", r.path, "err", err)
		return nil, err
	}
	r.log.Info("policy reloaded", "file", r.path, "version", p.Version, "before", before, "rules", len(p.Rules))
	return p, nil
}

// onSIGHUP reloads the policy at each SIGHUP until ctx is done.
func (r *policyReloader) onSIGHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			_, _ = r.Reload()
		}
	}
}

// demoDrill is the WMS outage the demo opens with, so that its automatic actions
// show within a minute (README "Demo").
const demoDrill = 45 * time.Minute

// badgerReserve is the free space the disk under Badger keeps: below it the
// pipeline commits nothing (a failed commit on /readyz and in
// orderwatch_batch_failures_total{stage="commit"}) until space returns. Badger
// writes through memory-mapped files and dies of SIGBUS on a full disk instead of
// returning an error; the reserve holds a memtable flush and a compaction.
const badgerReserve = 256 << 20

// freeSpace returns a check that fails while dir's file system has less than
// reserve bytes free.
func freeSpace(dir string, reserve uint64) func() error {
	return func() error {
		free, err := pipeline.FreeBytes(dir)
		if err != nil {
			return err
		}
		if free < reserve {
			return fmt.Errorf("disk full: %d MiB free for Badger in %s, below the %d MiB it keeps; nothing is written until space returns", free>>20, dir, reserve>>20)
		}
		return nil
	}
}

// jsPublisher publishes with Nats-Msg-Id and waits for the stream's ack.
func jsPublisher(js jetstream.JetStream) func(ctx context.Context, subject, msgID string, data []byte) error {
	return func(ctx context.Context, subject, msgID string, data []byte) error {
		_, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		return err
	}
}

// actionPublisher is the executor's jsPublisher: a publish the stream acked as
// a duplicate of an earlier one is actions.ErrDuplicate, counted apart.
func actionPublisher(js jetstream.JetStream) actions.PublishFunc {
	return func(ctx context.Context, subject, msgID string, data []byte) error {
		ack, err := js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		if err != nil {
			return err
		}
		if ack.Duplicate {
			return actions.ErrDuplicate
		}
		return nil
	}
}

func closeLogged(log *slog.Logger, what string, fn func() error) {
	if err := fn(); err != nil {
		log.Error("close", "part", what, "err", err)
	}
}

// hostToken is the host name as a member id's start: [A-Za-z0-9_-] only.
func hostToken() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "orderwatch"
	}
	h = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, h)
	return h[:min(len(h), 48)]
}

// randomToken is 8 random letters and digits.
func randomToken() string { return strings.ToLower(rand.Text()[:8]) }

// advertisedAPI is the API address a member shows the group in its record: the
// --http address, with the host name when it listens on every interface.
func advertisedAPI(cfg runConfig) string {
	scheme := "http"
	if cfg.HTTPTLSCert != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(cfg.HTTP)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return ""
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// consoleURL is the address a browser opens the console at: the listening
// address, with 127.0.0.1 for a wildcard host.
func consoleURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// credential is the value of key in the demo's key-value pairs (loadUsers).
func credential(kv []any, key string) any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == key {
			return kv[i+1]
		}
	}
	return ""
}
