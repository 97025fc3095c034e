package actions_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/pipeline"
	"github.com/orderwatch/orderwatch/store"
)

// daemon is orderwatch run in miniature, on real parts: the embedded nats-server
// and Badger on a data dir, the pipeline, the executor and the governor.
type daemon struct {
	ns     *pipeline.Embedded
	nc     *nats.Conn
	js     jetstream.JetStream
	st     *store.Store
	live   *actions.Live // the policy in force, one for all the parts
	exec   *actions.Executor
	gov    *actions.Governor
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

type daemonOptions struct {
	policy string
	// wrap wraps the executor's publish, to crash around it.
	wrap   func(actions.PublishFunc) actions.PublishFunc
	clock  func() time.Time
	getenv func(string) string
	space  func() error // the store's CheckSpace
	owns   func(order string) bool
}

// startDaemon starts the parts on dir. It returns an error rather than failing a
// test so that the crash child process can use it.
func startDaemon(dir string, o daemonOptions) (*daemon, error) {
	policy, err := actions.ParsePolicy([]byte(o.policy))
	if err != nil {
		return nil, err
	}
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir, Sync: "always"})
	if err != nil {
		return nil, err
	}
	d := &daemon{ns: ns, errs: make(chan error, 4)}
	ok := false
	defer func() {
		if !ok {
			d.stop()
		}
	}()
	if d.nc, err = nats.Connect(ns.ClientURL()); err != nil {
		return nil, err
	}
	if d.js, err = jetstream.New(d.nc); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if _, err := pipeline.EnsureStreams(ctx, d.js, pipeline.StreamOptions{}); err != nil {
		return nil, err
	}
	if d.st, err = store.Open(store.Options{Dir: filepath.Join(dir, "badger"), CheckSpace: o.space}); err != nil {
		return nil, err
	}
	ks, err := actions.OpenKillSwitch(d.st)
	if err != nil {
		return nil, err
	}
	policy.UseKillSwitch(ks)
	d.live = actions.NewLive(policy)
	var publish actions.PublishFunc = func(ctx context.Context, subject, msgID string, data []byte) error {
		_, err := d.js.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
		return err
	}
	if o.wrap != nil {
		publish = o.wrap(publish)
	}
	d.exec, err = actions.NewExecutor(actions.ExecutorOptions{Store: d.st, Publish: publish, Policy: d.live,
		Interval: 20 * time.Millisecond, Clock: o.clock, Getenv: o.getenv, Owns: o.owns})
	if err != nil {
		return nil, err
	}
	d.gov, err = actions.NewGovernor(actions.GovernorOptions{Store: d.st, Policy: d.live, Wake: d.exec.Wake,
		Clock: o.clock, Interval: 20 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	pipe, err := pipeline.New(pipeline.Options{JetStream: d.js, Store: d.st, Policy: d.live, OnCommit: d.exec.Wake, BatchSize: 16})
	if err != nil {
		return nil, err
	}
	for _, run := range []func(context.Context) error{pipe.Run, d.exec.Run, d.gov.Run} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := run(ctx); err != nil {
				d.errs <- err
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ready, _ := pipe.Ready(); ready {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the pipeline did not get ready within 10s")
		}
	}
	ok = true
	return d, nil
}

// startWithOrder starts the parts on a fresh dir, stopped when the test ends, and
// publishes order SO-1 (event e-1), created now with its cutoff in 3 hours.
func startWithOrder(t *testing.T, o daemonOptions) *daemon {
	t.Helper()
	d, err := startDaemon(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop() })
	now := time.Now()
	if err := d.createOrder("e-1", "SO-1", now, now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return d
}

// stop shuts everything down in order and closes Badger last.
func (d *daemon) stop() error {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	var errs []error
	for len(d.errs) > 0 {
		errs = append(errs, <-d.errs)
	}
	if d.nc != nil {
		d.nc.Close()
	}
	d.ns.Shutdown()
	d.ns.WaitForShutdown()
	if d.st != nil {
		errs = append(errs, d.st.Close())
	}
	return errors.Join(errs...)
}

// publishEvent puts one event into ORDERS.
func (d *daemon) publishEvent(id, typ, order string, at time.Time, data string) error {
	msg := fmt.Appendf(nil, `{"id":%q,"type":%q,"order_id":%q,"occurred_at":%q,"source":"test","actor":"tester","schema":1,"data":%s}`,
		id, typ, order, at.UTC().Format(time.RFC3339Nano), data)
	_, err := d.js.Publish(context.Background(), features.Subject(typ, order), msg, jetstream.WithMsgID(id))
	return err
}

func (d *daemon) createOrder(id, order string, at, cutoff time.Time) error {
	return d.publishEvent(id, "order.created", order, at, fmt.Sprintf(
		`{"warehouse":"DAL","ship_cutoff":%q,"customer_id":"C-1","customer_tier":"gold","carrier":"ODFL","lines":3,"units":12,"value":840.5}`,
		cutoff.UTC().Format(time.RFC3339)))
}

// actionsMsgs returns the messages in ACTIONS on subject.
func (d *daemon) actionsMsgs(t *testing.T, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := d.js.Stream(context.Background(), pipeline.StreamActions)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 15s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// manualClock is a clock tests move by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(crashModeEnv); mode != "" {
		os.Exit(crashChild(mode, os.Getenv(crashDirEnv)))
	}
	os.Exit(m.Run())
}

func storeQuery(order string) store.DecisionsQuery { return store.DecisionsQuery{Order: order} }
