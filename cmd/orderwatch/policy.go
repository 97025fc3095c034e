package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/orderwatch/orderwatch/actions"
)

const policyUsage = `usage:
  orderwatch policy check [FILE ...]   check policy files as run does at start (no FILE: the shipped policy)
  orderwatch policy default            print the shipped policy, to start your own from
  orderwatch policy show [--api URL]   the policy in force in a running instance
  orderwatch policy reload [--api URL] reload its --policy file, as SIGHUP does (needs ORDERWATCH_API_TOKEN)`

// policyCmd checks policy files offline, before a deploy: the same loading and
// validation as `run --policy`, and the webhook secrets the executor will read;
// it also shows and reloads the policy of a running instance through its API.
func policyCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		return errors.New(policyUsage)
	}
	switch args[0] {
	case "show", "reload":
		fs := flag.NewFlagSet("policy "+args[0], flag.ContinueOnError)
		api := apiFlag(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return errors.New(policyUsage)
		}
		c := newAPIClient(*api, getenv)
		if args[0] == "show" {
			return c.do(http.MethodGet, "/api/v1/policy", nil, stdout)
		}
		return c.do(http.MethodPost, "/api/v1/policy/reload", nil, stdout)
	case "default":
		if len(args) != 1 {
			return errors.New(policyUsage)
		}
		_, err := stdout.Write(actions.DefaultPolicy())
		return err
	case "check":
		files := args[1:]
		if len(files) == 0 {
			files = []string{""}
		}
		failed := 0
		for _, f := range files {
			if err := checkPolicy(f, stdout, stderr, getenv); err != nil {
				fmt.Fprintf(stderr, "%v\n", err)
				failed++
			}
		}
		if failed > 0 {
			return fmt.Errorf("policy check: %d of %d files invalid", failed, len(files))
		}
		return nil
	}
	return errors.New(policyUsage)
}

// checkPolicy loads one policy file and says what it holds: its version, its
// rules by mode and action, and each webhook's secret when it is not set in this
// environment (run refuses to start without it).
func checkPolicy(path string, stdout, stderr io.Writer, getenv func(string) string) error {
	p, err := actions.LoadPolicy(path)
	if err != nil {
		return err
	}
	name := path
	if name == "" {
		name = "shipped policy"
	}
	modes := map[string]int{}
	for _, r := range p.Rules {
		modes[r.Mode]++
	}
	var counts []string
	for _, m := range actions.Modes {
		counts = append(counts, fmt.Sprintf("%d %s", modes[m], m))
	}
	state := ""
	if p.Settings.DryRun {
		state += ", dry run: nothing executes"
	}
	if p.Settings.KillSwitch {
		state += ", kill switch on: nothing executes"
	}
	fmt.Fprintf(stdout, "%s: ok: version %q, %d rules (%s), %d escalation ladders, %d webhooks%s\n",
		name, p.Version, len(p.Rules), strings.Join(counts, ", "), len(p.Escalation), len(p.Webhooks), state)
	for _, m := range p.MissingSecrets(getenv) {
		fmt.Fprintf(stderr, "%s: warning: %s is not set here; run refuses to start without it\n", name, m)
	}
	return nil
}

func policyMain(args []string) error { return policyCmd(args, os.Stdout, os.Stderr, os.Getenv) }
