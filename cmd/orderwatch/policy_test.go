package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/orderwatch/orderwatch/actions"
)

// TestPolicyCheck: the shipped policy and a written one pass with a summary; a
// webhook whose secret is not in the environment is a warning; a broken file
// fails with the reason run would give, and the others are still checked.
func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	text := string(actions.DefaultPolicy()) + `webhooks:
  flag_finance: {url: "https://finance.example.com/hooks", secret_env: OW_TEST_FINANCE_SECRET}
`
	if strings.Contains(string(actions.DefaultPolicy()), "\nwebhooks:") {
		t.Fatal("the shipped policy has webhooks: this test adds its own")
	}
	if err := os.WriteFile(good, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	broken := strings.Replace(string(actions.DefaultPolicy()), "mode: approval", "mode: sometimes", 1)
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	shipped, err := actions.LoadPolicy("")
	if err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	env := map[string]string{}
	err = policyCmd([]string{"check", good, bad}, &out, &errOut, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "1 of 2 files invalid") {
		t.Errorf("error %v, want 1 of 2 files invalid", err)
	}
	wantOK := good + `: ok: version "` + shipped.Version + `", ` + strconv.Itoa(len(shipped.Rules)) + " rules ("
	if !strings.HasPrefix(out.String(), wantOK) || !strings.Contains(out.String(), "1 webhooks") {
		t.Errorf("stdout %q, want a line starting %q with 1 webhooks", out.String(), wantOK)
	}
	for _, w := range []string{"webhooks.flag_finance.secret_env: OW_TEST_FINANCE_SECRET is not set here", bad, `"sometimes"`} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr %q lacks %q", errOut.String(), w)
		}
	}

	out.Reset()
	errOut.Reset()
	env["OW_TEST_FINANCE_SECRET"] = "s3cret"
	if err := policyCmd([]string{"check", good}, &out, &errOut, func(k string) string { return env[k] }); err != nil || errOut.Len() > 0 {
		t.Errorf("with the secret set: error %v, stderr %q; want neither", err, errOut.String())
	}
	out.Reset()
	if err := policyCmd([]string{"check"}, &out, &errOut, func(string) string { return "" }); err != nil || !strings.HasPrefix(out.String(), "shipped policy: ok") {
		t.Errorf("no file: error %v, stdout %q; want the shipped policy ok", err, out.String())
	}
	out.Reset()
	if err := policyCmd([]string{"default"}, &out, &errOut, nil); err != nil || !bytes.Equal(out.Bytes(), actions.DefaultPolicy()) {
		t.Errorf("default: error %v, %d bytes, want the shipped policy's %d", err, out.Len(), len(actions.DefaultPolicy()))
	}
}

// TestPolicyReloadOnSIGHUPAndAPI: orderwatch run reloads its --policy file on
// SIGHUP and on POST /api/v1/policy/reload; GET /api/v1/policy shows the one in
// force; a file that does not load is refused with the reason (422 on the API)
// and the policy in force stays, with orderwatch_policy_last_reload_successful 0.
func TestPolicyReloadOnSIGHUPAndAPI(t *testing.T) {
	const token = "reload-test-token"
	t.Setenv("ORDERWATCH_API_TOKEN", token)
	file := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withVersion := func(v string) string {
		return strings.Replace(string(actions.DefaultPolicy()), `version: "2026-11-actions-1"`, `version: "`+v+`"`, 1)
	}
	write(withVersion("site-1"))
	child := startChild(t, freeAddr(t), "--data", t.TempDir(), "--nats-listen", freeAddr(t), "--policy", file)
	version := func() string {
		_, body := get(child.base + "/api/v1/policy")
		var p struct{ Version string }
		_ = json.Unmarshal([]byte(body), &p)
		return p.Version
	}
	if v := version(); v != "site-1" {
		t.Fatalf("GET /api/v1/policy: version %q, want site-1", v)
	}

	write(withVersion("site-2"))
	if err := child.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "version site-2 in force after SIGHUP", func() bool { return version() == "site-2" })

	write(withVersion("site-3"))
	reload := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, child.base+"/api/v1/policy/reload", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := reload("wrong"); code != http.StatusUnauthorized || version() != "site-2" {
		t.Errorf("reload with a wrong token: %d %s, version %s; want 401 and site-2 kept", code, body, version())
	}
	if code, body := reload(token); code != http.StatusOK || !strings.Contains(body, `"version": "site-3"`) || version() != "site-3" {
		t.Errorf("POST /api/v1/policy/reload: %d %s, version %s; want 200 and site-3", code, body, version())
	}
	// The CLI goes through the same API.
	write(withVersion("site-3b"))
	var out bytes.Buffer
	env := func(k string) string {
		if k == "ORDERWATCH_API_TOKEN" {
			return token
		}
		return ""
	}
	if err := policyCmd([]string{"reload", "--api", child.base}, &out, io.Discard, env); err != nil || !strings.Contains(out.String(), `"version": "site-3b"`) {
		t.Errorf("orderwatch policy reload: %v, %s; want version site-3b", err, out.String())
	}
	out.Reset()
	if err := policyCmd([]string{"show", "--api", child.base}, &out, io.Discard, env); err != nil || !strings.Contains(out.String(), `"version": "site-3b"`) {
		t.Errorf("orderwatch policy show: %v, %.200s; want version site-3b", err, out.String())
	}

	write(strings.Replace(withVersion("site-4"), "mode: approval", "mode: sometimes", 1))
	code, body := reload(token)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "sometimes") || !strings.Contains(body, `stays`) || version() != "site-3b" {
		t.Errorf("reload of a broken file: %d %s, version %s; want 422 with the reason and site-3b kept", code, body, version())
	}
	if v := child.metric("orderwatch_policy_last_reload_successful", ""); v != 0 {
		t.Errorf("orderwatch_policy_last_reload_successful %v after a refused reload, want 0", v)
	}
	if v := child.metric("orderwatch_policy_info", `version="site-3b"`); v != 1 {
		t.Errorf(`orderwatch_policy_info{version="site-3b"} %v, want 1`, v)
	}
	child.stop()
}
