package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActivateRefusesBadRequests (issue 9, finding 7) on a running instance: a
// version that is a path, a body with an unknown field or without a version are
// refused and leave the PIN file as it was; `orderwatch models` still pins and
// lists.
func TestActivateRefusesBadRequests(t *testing.T) {
	t.Setenv("ORDERWATCH_API_TOKEN", "models-token")
	data := t.TempDir()
	base := startRunWith(t, "--data", data, "--nats-listen", freeAddr(t))
	pin := filepath.Join(data, "models", "cutoff_risk", "PINNED")
	post := func(body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/models/cutoff_risk/activate", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer models-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pinned := func() string {
		b, err := os.ReadFile(pin)
		if os.IsNotExist(err) {
			return "<none>"
		}
		return string(b)
	}
	refused := []struct {
		body, mention string
		code          int
	}{
		{`{"verison": "1.0.0"}`, `unknown field \"verison\"`, 400},
		{`{}`, "version is missing", 400},
		{`{"version": "1.0.0"} {"version": ""}`, "data after", 400},
		{`{"version": "` + strings.Repeat("1", 5000) + `"}`, "over 4096 bytes", 400},
		{`{"version": "../../../../tmp/evil/cutoff_risk/1.0.0"}`, "invalid version", 422},
		{`{"version": "9.9.9"}`, "9.9.9", 422},
	}
	check := func(want string) {
		t.Helper()
		for _, c := range refused {
			code, body := post(c.body)
			if code != c.code || !strings.Contains(body, c.mention) {
				t.Errorf("activate %.60s: %d %s, want %d naming %q", c.body, code, body, c.code, c.mention)
			}
			if got := pinned(); got != want {
				t.Errorf("after activate %.60s PINNED holds %q, want %q", c.body, got, want)
			}
		}
	}
	check("<none>")

	var out bytes.Buffer
	if err := modelsCmd([]string{"activate", "cutoff_risk", "1.0.0", "--api", base}, &out); err != nil {
		t.Fatal(err)
	}
	if got := pinned(); got != "1.0.0\n" {
		t.Fatalf("after `models activate cutoff_risk 1.0.0` PINNED holds %q", got)
	}
	check("1.0.0\n")
	out.Reset()
	if err := modelsCmd([]string{"list", "--api", base}, &out); err != nil || !strings.Contains(out.String(), `"pinned": "1.0.0"`) {
		t.Errorf("models list: %v %s", err, out.String())
	}
	if code, body := get(base + "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
}
