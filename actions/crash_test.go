package actions_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/pipeline"
)

// The crash test runs a daemon in a child process (this test binary, re-executed)
// that kills itself with os.Exit at a chosen point around the executor's publish:
// no deferred close runs, Badger and the nats-server stop as in a crash.
const (
	crashModeEnv = "ORDERWATCH_TEST_CRASH_MODE"
	crashDirEnv  = "ORDERWATCH_TEST_CRASH_DIR"
	crashExit    = 3
	crashPolicy  = "version: crash-1\nrules:\n- {id: every-order, action: notify_customer_service, mode: auto, when: {risk: {gte: 0}}}\n"
)

// crashChild runs in the child process: it starts the daemon on dir, publishes an
// order and dies at the crash point; it returns only when something else went
// wrong.
func crashChild(mode, dir string) int {
	wrap := func(publish actions.PublishFunc) actions.PublishFunc {
		return func(ctx context.Context, subject, msgID string, data []byte) error {
			if mode == "before_publish" {
				os.Exit(crashExit) // the decision is committed, the command not published
			}
			if err := publish(ctx, subject, msgID, data); err != nil {
				return err
			}
			os.Exit(crashExit) // published, but the outbox entry not completed
			return nil
		}
	}
	d, err := startDaemon(dir, daemonOptions{policy: crashPolicy, wrap: wrap})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: start:", err)
		return 1
	}
	now := time.Now()
	if err := d.createOrder("e-1", "SO-1", now, now.Add(3*time.Hour)); err != nil {
		fmt.Fprintln(os.Stderr, "crash child: publish event:", err)
		return 1
	}
	time.Sleep(30 * time.Second)
	fmt.Fprintln(os.Stderr, "crash child: the executor never reached the crash point in 30s")
	return 1
}

// TestCrashAroundPublishExecutesOnce: the process killed between the decision's
// commit and the executor's publish publishes the command exactly once after a
// restart on the same data dir; killed after the publish but before the outbox
// entry was completed, the republish is deduplicated by Nats-Msg-Id. Either way
// ACTIONS holds one message, and further restarts add none.
func TestCrashAroundPublishExecutesOnce(t *testing.T) {
	for _, mode := range []string{"before_publish", "after_publish"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashModeEnv+"="+mode, crashDirEnv+"="+dir)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != crashExit {
				t.Fatalf("child process: %v, want exit status %d at the crash point; output:\n%s", err, crashExit, out)
			}

			key := actions.IdempotencyKey("SO-1", "every-order", "crash-1", 1)
			subject := actions.Subject(actions.ActionNotifyCS)
			// What the crash left in ACTIONS: nothing before the publish, the command
			// after it (so the restart's publish is a duplicate to drop).
			want := map[string]uint64{"before_publish": 0, "after_publish": 1}[mode]
			if n := actionsCount(t, dir); n != want {
				t.Fatalf("after the crash ACTIONS holds %d messages, want %d", n, want)
			}
			for restart := 1; restart <= 2; restart++ {
				d, err := startDaemon(dir, daemonOptions{policy: crashPolicy})
				if err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the outbox drained and the action counted", func() bool {
					out, err := d.st.OutboxPage("", 10)
					if err != nil {
						t.Fatal(err)
					}
					st, err := d.st.Stats()
					if err != nil {
						t.Fatal(err)
					}
					return len(out) == 0 && st.ActionsPublished == 1
				})
				msgs := d.actionsMsgs(t, subject)
				if len(msgs) != 1 {
					t.Errorf("restart %d: ACTIONS holds %d commands on %s, want exactly 1", restart, len(msgs), subject)
				}
				for _, m := range msgs {
					if got := m.Header.Get(jetstream.MsgIDHeader); got != key {
						t.Errorf("command Nats-Msg-Id = %q, want the idempotency key %q", got, key)
					}
				}
				st, _ := d.st.Stats()
				if st.Decisions != 1 {
					t.Errorf("restart %d: %d decisions recorded, want 1 (the redelivered event is not decided again)", restart, st.Decisions)
				}
				dvs, err := d.st.FindDecisions(storeQuery("SO-1"))
				if err != nil || len(dvs) != 1 {
					t.Fatalf("decisions of SO-1: %d, %v", len(dvs), err)
				}
				v, err := actions.NewView(dvs[0], time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if v.State != actions.StatePublished || len(v.Outcomes) != 1 || len(v.Attempts) != 1 {
					t.Errorf("restart %d: decision state %s with %d outcomes and %d attempts, want published, 1 and 1",
						restart, v.State, len(v.Outcomes), len(v.Attempts))
				}
				if err := d.stop(); err != nil {
					t.Errorf("stop: %v", err)
				}
			}
		})
	}
}

// actionsCount counts the messages in ACTIONS on dir's JetStream store, with only
// the nats-server running.
func actionsCount(t *testing.T, dir string) uint64 {
	t.Helper()
	ns, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), pipeline.StreamActions)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
