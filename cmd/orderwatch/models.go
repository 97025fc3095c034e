package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

const modelsUsage = `usage:
  orderwatch models check DIR [--json]                   check a bundle offline, as a swap would, plus timings
  orderwatch models list [--api URL]                     live, shadow, pinned and rejected versions
  orderwatch models validate DIR [--api URL]             check a bundle directory on the running instance
  orderwatch models activate NAME VERSION [--api URL]    pin NAME to VERSION (rollback); VERSION "" unpins
  orderwatch models compare NAME VERSION [--api URL]     shadow VERSION against the live version on the same judged orders
Mutating calls need ORDERWATCH_API_TOKEN.`

// modelsCmd talks to a running instance: the daemon owns the models dir.
func modelsCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(modelsUsage)
	}
	if args[0] == "check" {
		return modelsCheckCmd(args[1:], stdout)
	}
	fs := flag.NewFlagSet("models "+args[0], flag.ContinueOnError)
	api := apiFlag(fs)
	if err := fs.Parse(flagsFirst(args[1:])); err != nil {
		return err
	}
	c := newAPIClient(*api, os.Getenv)
	switch args[0] {
	case "list":
		return c.do(http.MethodGet, "/api/v1/models", nil, stdout)
	case "validate":
		if fs.NArg() != 1 {
			return errors.New(modelsUsage)
		}
		dir, err := filepath.Abs(fs.Arg(0))
		if err != nil {
			return err
		}
		return c.do(http.MethodPost, "/api/v1/models/validate", map[string]string{"dir": dir}, stdout)
	case "activate":
		if fs.NArg() != 2 {
			return errors.New(modelsUsage)
		}
		return c.do(http.MethodPost, "/api/v1/models/"+fs.Arg(0)+"/activate", map[string]string{"version": fs.Arg(1)}, stdout)
	case "compare":
		if fs.NArg() != 2 {
			return errors.New(modelsUsage)
		}
		var buf bytes.Buffer
		q := url.Values{"version": {fs.Arg(1)}}
		if err := c.do(http.MethodGet, "/api/v1/models/"+url.PathEscape(fs.Arg(0))+"/compare?"+q.Encode(), nil, &buf); err != nil {
			return err
		}
		return printComparison(stdout, buf.Bytes())
	}
	return errors.New(modelsUsage)
}

// apiFlag binds --api, the running instance the command talks to.
func apiFlag(fs *flag.FlagSet) *string {
	return fs.String("api", defaultAPI, "`URL` of the running orderwatch")
}

// newAPIClient talks to the instance at base with the token of getenv's
// ORDERWATCH_API_TOKEN, which mutating calls need (and reads, with
// --api-token-for-reads).
func newAPIClient(base string, getenv func(string) string) apiClient {
	return apiClient{base: strings.TrimRight(base, "/"), token: getenv("ORDERWATCH_API_TOKEN")}
}

// maxAPIResponse bounds what the client reads of one response: a page of the
// API's largest lists is a few MB, so more is not an orderwatch answering.
const maxAPIResponse = 64 << 20

// apiClient calls the HTTP API of a running instance.
type apiClient struct {
	base, token string
}

// do sends body as JSON and copies the response to out; a non-2xx status is an
// error carrying the server's message.
func (c apiClient) do(method, path string, body any, out io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s (is orderwatch running? set --api): %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: read the response: %w", method, path, err)
	}
	if len(b) > maxAPIResponse {
		return fmt.Errorf("%s %s: the response is larger than %d MiB: is --api an orderwatch? (a page of the API is far smaller)", method, path, maxAPIResponse>>20)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	_, err = out.Write(b)
	return err
}

// flagsFirst moves --api and its value before the positional arguments, so the
// flag may come after them as the usage shows.
func flagsFirst(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--api" || a == "-api":
			flags = append(flags, a)
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		case len(a) > 1 && a[0] == '-' && a != "-":
			flags = append(flags, a)
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

// versionQuality is a version's figures in GET /api/v1/models/{name}/compare.
type versionQuality struct {
	Version   string   `json:"version"`
	Role      string   `json:"role"`
	Threshold *float64 `json:"threshold"`
	Judged    float64  `json:"judged"`
	Flagged   float64  `json:"flagged"`
	Missed    float64  `json:"missed"`
	Caught    float64  `json:"caught"`
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
}

// printComparison writes the answer of GET /api/v1/models/{name}/compare as a
// table: for each live version, it and the shadow on the same judged orders.
func printComparison(w io.Writer, raw []byte) error {
	var c struct {
		Model       string `json:"model"`
		Version     string `json:"version"`
		Comparisons []struct {
			Live   versionQuality `json:"live"`
			Shadow versionQuality `json:"shadow"`
		} `json:"comparisons"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("models compare: read the answer: %w", err)
	}
	if len(c.Comparisons) == 0 {
		fmt.Fprintf(w, "%s %s: no order it scored has a known outcome yet (is it a shadow? see orderwatch models list)\n", c.Model, c.Version)
		return nil
	}
	num := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *p)
	}
	for _, p := range c.Comparisons {
		fmt.Fprintf(w, "%s: shadow %s against live %s on the same %.0f judged orders (%.0f missed their cutoff)\n",
			c.Model, c.Version, p.Live.Version, p.Live.Judged, p.Live.Missed)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "version\trole\tthreshold\tflagged\tcaught\tmissed\tprecision\trecall")
		for _, q := range []versionQuality{p.Live, p.Shadow} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\n", q.Version, q.Role, num(q.Threshold),
				q.Flagged, q.Caught, q.Missed-q.Caught, num(q.Precision), num(q.Recall))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
