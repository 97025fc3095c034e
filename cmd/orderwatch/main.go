// Command orderwatch watches distribution orders on NATS JetStream, scores them with
// ONNX models and starts governed actions. Run `orderwatch help` for the commands.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"
)

const usage = `orderwatch watches order lifecycle events and acts before ship cutoffs are missed.

Usage:
  orderwatch run [flags]     start the stream processor (embedded NATS by default)
  orderwatch simulate [flags]  write a simulated event stream with ground-truth labels
  orderwatch replay [flags]  run a recorded stream through the same code, on event time; export training rows
  orderwatch whatif [--candidate-policy FILE] [--candidate-models DIR] (--in FILE | --nats-url URL)  replay the past through a changed policy or models; report what would change
  orderwatch import --format csv --mapping FILE --in PATH [--out FILE]  map a foreign event log to schema-1 events (NDJSON, time order)
  orderwatch models check|list|validate|activate   check a bundle offline; inspect and swap the models of a running instance
  orderwatch policy check|default|show|reload  check policy files before a deploy; show or reload a running instance's
  orderwatch bench [--events N] [--scenario S]  JetStream floor vs the full pipeline, on this machine
  orderwatch decisions list|pending|show|ack  decisions of a running instance, with approvals and escalations
  orderwatch approve ID --reason TEXT [--by NAME]  approve a decision pending approval (needs ORDERWATCH_API_TOKEN: yours, or the shared one, recorded as service)
  orderwatch reject ID --reason TEXT [--by NAME]   reject it
  orderwatch users add|token   people who sign in, their roles and API tokens (a users file)
  orderwatch help            show this help

Run 'orderwatch <command> -h' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(args)
	case "simulate":
		err = simulateCmd(args)
	case "replay":
		err = replayCmd(args)
	case "import":
		err = importCmd(args)
	case "whatif":
		os.Exit(whatifMain(args, os.Stdout, os.Stderr))
	case "models":
		err = modelsCmd(args, os.Stdout)
	case "policy":
		err = policyMain(args)
	case "bench":
		err = benchCmd(args)
	case "decisions":
		err = decisionsCmd(args, os.Stdout)
	case "approve", "reject":
		err = answerCmd(cmd, args, os.Stdout)
	case "users":
		err = usersCmd(args, os.Stdin, os.Stdout, os.Stderr)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "orderwatch: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "orderwatch: %v\n", err)
		os.Exit(1)
	}
}

// newLogger builds the process logger: text on a terminal, JSON otherwise unless
// the format is given.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
