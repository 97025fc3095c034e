package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const modelsUsage = `usage:
  orderwatch models check DIR [--json]                   check a bundle offline, as a swap would, plus timings
  orderwatch models list [--api URL]                     live, shadow, pinned and rejected versions
  orderwatch models validate DIR [--api URL]             check a bundle directory on the running instance
  orderwatch models activate NAME VERSION [--api URL]    pin NAME to VERSION (rollback); VERSION "" unpins
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
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
