package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
