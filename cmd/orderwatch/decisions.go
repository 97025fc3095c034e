package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderwatch/orderwatch/actions"
	"github.com/orderwatch/orderwatch/api"
	"github.com/orderwatch/orderwatch/auth"
)

const decisionsUsage = `usage:
  orderwatch decisions list [--order ID] [--since T] [--limit N] [--json] [--api URL]
        decisions, newest first; T is an RFC 3339 time or a duration back from now (2h)
  orderwatch decisions pending [--waiting approval|ack|all] [--limit N] [--json] [--api URL]
        decisions waiting for a person, oldest first, with their age and team
  orderwatch decisions show ID [--api URL]
        one decision with its trail (approvals, escalations), attempts and outcomes
  orderwatch decisions ack ID [--reason TEXT] [--by NAME] [--api URL]
        acknowledge an executed action that waits for it
  orderwatch approve ID --reason TEXT [--by NAME] [--api URL]
  orderwatch reject ID --reason TEXT [--by NAME] [--api URL]
They talk to a running instance; approve, reject and ack need ORDERWATCH_API_TOKEN:
your own token (orderwatch users token NAME; the trail records you), or the shared
one, for machine clients: the trail records "service", and --by NAME as whom it
acts for (kept apart, as the shared token proves nobody's name).`

const defaultAPI = "http://127.0.0.1:8080"

// decisionsCmd lists and shows decisions of a running instance, and acknowledges
// executed ones.
func decisionsCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(decisionsUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("decisions "+sub, flag.ContinueOnError)
	api := apiFlag(fs)
	order := fs.String("order", "", "only the decisions of order `ID`")
	since := fs.String("since", "", "only decisions at or after `T` (RFC 3339, or a duration back from now such as 2h)")
	limit := fs.Int("limit", 50, "at most `N` decisions")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	waiting := fs.String("waiting", "approval", "what they wait for: `approval`, ack or all")
	by := fs.String("by", "", "with the shared token: whom the service acts for (`name`), kept beside it in the trail")
	reason := fs.String("reason", "", "why, kept in the decision's trail")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c := newAPIClient(*api, os.Getenv)
	switch {
	case sub == "list" && len(pos) == 0:
		q := url.Values{}
		for k, v := range map[string]string{"order": *order, "since": *since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		return c.views("/api/v1/decisions", q, *limit, "decisions", *asJSON, stdout)
	case sub == "pending" && len(pos) == 0:
		return c.views("/api/v1/approvals", url.Values{"waiting": {*waiting}}, *limit, "approvals", *asJSON, stdout)
	case sub == "show" && len(pos) == 1:
		return c.do(http.MethodGet, "/api/v1/decisions/"+url.PathEscape(pos[0]), nil, stdout)
	case sub == "ack" && len(pos) == 1:
		return c.answer("/api/v1/decisions/"+url.PathEscape(pos[0])+"/ack", "acknowledged", *by, *reason, false, stdout)
	}
	return errors.New(decisionsUsage)
}

// answerCmd is `orderwatch approve|reject ID --reason TEXT [--by NAME]`.
func answerCmd(verb string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	api := apiFlag(fs)
	by := fs.String("by", "", "with the shared token: whom the service acts for (`name`), kept beside it in the trail")
	reason := fs.String("reason", "", "why, kept in the decision's trail")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: orderwatch %s ID --reason TEXT [--by NAME] [--api URL] (ID from `orderwatch decisions pending`)", verb)
	}
	c := newAPIClient(*api, os.Getenv)
	past := map[string]string{"approve": "approved", "reject": "rejected"}[verb]
	return c.answer("/api/v1/approvals/"+url.PathEscape(pos[0])+"/"+verb, past, *by, *reason, true, stdout)
}

// parseInterspersed parses flags that may come before or after the positional
// arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for range len(args) + 1 {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	return pos, nil
}

func (c apiClient) answer(path, past, by, reason string, reasonRequired bool, stdout io.Writer) error {
	if c.token == "" {
		return errors.New("ORDERWATCH_API_TOKEN is not set: export the token the instance was started with")
	}
	if reasonRequired && strings.TrimSpace(reason) == "" {
		return errors.New("give --reason TEXT: the decision's trail keeps who answered and why")
	}
	// With a per-user token the server records its user and ignores a by;
	// with the shared token it records the service, and by as whom it acts for.
	body := map[string]string{"reason": reason}
	if by = strings.TrimSpace(by); by != "" {
		if auth.IsUserToken(c.token) {
			slog.Warn("--by is ignored with your own token: the trail records the token's user")
		} else {
			body["by"] = by
		}
	}
	var buf bytes.Buffer
	if err := c.do(http.MethodPost, path, body, &buf); err != nil {
		return err
	}
	var v actions.View
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	d := &v.Decision
	_, err := fmt.Fprintf(stdout, "%s %s: %s for order %s (rule %s), now %s\n", past, d.ID, d.Action, d.OrderID, d.RuleID, state(&v, time.Now()))
	return err
}

// views fetches up to limit items of a list, page after page (the API answers
// at most 500 a page), and prints them as a table, or as JSON.
func (c apiClient) views(path string, q url.Values, limit int, field string, asJSON bool, stdout io.Writer) error {
	if limit < 1 {
		return fmt.Errorf("--limit %d: want at least 1", limit)
	}
	var (
		items []json.RawMessage
		next  string
		total json.RawMessage
	)
	for len(items) < limit {
		q.Set("limit", fmt.Sprint(min(limit-len(items), api.MaxListLimit)))
		if next != "" {
			q.Set("cursor", next)
		}
		var buf bytes.Buffer
		if err := c.do(http.MethodGet, path+"?"+q.Encode(), nil, &buf); err != nil {
			return err
		}
		var page map[string]json.RawMessage
		var got []json.RawMessage
		if err := json.Unmarshal(buf.Bytes(), &page); err != nil {
			return fmt.Errorf("decode %s: %w", path, err)
		}
		if err := json.Unmarshal(page[field], &got); err != nil {
			return fmt.Errorf("decode %s of %s: %w", field, path, err)
		}
		items, total, next = append(items, got...), page["total"], ""
		if n := page["next"]; n != nil {
			if err := json.Unmarshal(n, &next); err != nil {
				return fmt.Errorf("decode next of %s: %w", path, err)
			}
		}
		if next == "" || len(got) == 0 {
			break
		}
	}
	if asJSON {
		out := map[string]any{field: items, "next": next}
		if total != nil {
			out["total"] = total
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	views := make([]actions.View, len(items))
	for i, raw := range items {
		if err := json.Unmarshal(raw, &views[i]); err != nil {
			return fmt.Errorf("decode %s of %s: %w", field, path, err)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tORDER\tRULE\tACTION\tMODE\tSTATE")
	now := time.Now()
	for _, v := range views {
		d := &v.Decision
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.At.Local().Format("2006-01-02 15:04:05"), d.OrderID, d.RuleID, d.Action, d.Mode, state(&v, now))
	}
	if len(views) == 0 {
		fmt.Fprintln(tw, "(none)")
	}
	var n int
	if json.Unmarshal(total, &n) == nil && n > len(views) {
		fmt.Fprintf(tw, "(%d of %d shown; --limit for more, --json for all fields)\n", len(views), n)
	} else if next != "" {
		fmt.Fprintf(tw, "(%d shown, more exist; --limit for more)\n", len(views))
	}
	return tw.Flush()
}

// state says where a decision stands, in a few words.
func state(v *actions.View, now time.Time) string {
	s := v.State
	switch {
	case v.Decision.SuppressedBy != "":
		s += ": " + v.Decision.SuppressedBy
	case v.Waiting != nil:
		s += fmt.Sprintf(" (%s, tier %d, waiting %s)", v.Waiting.Team, v.Waiting.Tier, now.Sub(v.Waiting.Since).Round(time.Second))
	}
	if n := len(v.Trail); n > 0 && v.Trail[n-1].By != "" {
		last := &v.Trail[n-1]
		s += fmt.Sprintf(", %s by %s", last.Kind, last.By)
		if last.OnBehalfOf != "" {
			s += fmt.Sprintf(" (for %s)", last.OnBehalfOf)
		}
	}
	return s
}
