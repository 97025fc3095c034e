package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const unitFile = "../../deploy/systemd/orderwatch.service"

// unitValues returns the values of key in a systemd unit, in order.
func unitValues(unit, key string) []string {
	var vals []string
	for line := range strings.Lines(unit) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

// TestSystemdUnit: the unit's command line is one run takes (with the example
// config in place of /etc/orderwatch/orderwatch.yaml), its working directory is
// the state directory systemd creates for it, and systemd-analyze finds nothing
// wrong with it.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	exec1 := unitValues(unit, "ExecStart")
	if len(exec1) != 1 {
		t.Fatalf("ExecStart lines: %q, want one", exec1)
	}
	args := strings.Fields(exec1[0])
	if len(args) < 2 || args[0] != "/usr/local/bin/orderwatch" || args[1] != "run" {
		t.Fatalf("ExecStart=%s, want /usr/local/bin/orderwatch run … (make install-service rewrites the prefix)", exec1[0])
	}
	for i, a := range args {
		if a == "/etc/orderwatch/orderwatch.yaml" {
			args[i] = "../../deploy/orderwatch.example.yaml" // what make install-service puts there
		}
	}
	if _, err := parseRunFlags(args[2:]); err != nil {
		t.Errorf("ExecStart=%s: run refuses its flags: %v", exec1[0], err)
	}
	if wd, sd := unitValues(unit, "WorkingDirectory"), unitValues(unit, "StateDirectory"); len(wd) != 1 || len(sd) != 1 || wd[0] != "/var/lib/"+sd[0] {
		t.Errorf("WorkingDirectory %q and StateDirectory %q: the data dir must be in the state directory, the one writable place under ProtectSystem=strict", wd, sd)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed, so the unit's syntax cannot be verified: install Debian's systemd package (make test does, as root)")
	}
	// verify wants the command to exist: this test binary stands in for it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "orderwatch.service")
	if err := os.WriteFile(copyPath, []byte(strings.Replace(unit, "/usr/local/bin/orderwatch", self, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestMakeInstall: `make install install-service` into a staging dir gives a
// binary that finds ONNX Runtime where it was installed, from a working
// directory outside the source tree and without ONNXRUNTIME_LIB, serves its
// models (/readyz 200) and stops cleanly on SIGTERM; the service's config and env
// files are in place, the env file private.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed: the test runs make install (apt-get install make)")
	}
	stage := t.TempDir()
	mk := exec.Command("make", "-s", "-C", "../..", "install", "install-service", "DESTDIR="+stage)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make install install-service: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/orderwatch":                      0o755,
		"usr/local/lib/onnxruntime/libonnxruntime.so.1": 0o644,
		"etc/systemd/system/orderwatch.service":         0o644,
		"etc/orderwatch/orderwatch.yaml":                0o644,
		"etc/orderwatch/orderwatch.env":                 0o600,
	} {
		fi, err := os.Stat(filepath.Join(stage, path))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}

	work := t.TempDir()
	httpAddr := freeAddr(t)
	cmd := exec.Command(filepath.Join(stage, "usr/local/bin/orderwatch"), "run",
		"--config", filepath.Join(stage, "etc/orderwatch/orderwatch.yaml"),
		"--http", httpAddr, "--nats-listen", freeAddr(t), "--log-format", "json")
	cmd.Dir = work
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ONNXRUNTIME_LIB=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	logPath := filepath.Join(t.TempDir(), "orderwatch.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	logged := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("installed orderwatch's log:\n%s", logged())
		}
	}()
	var body string
	waitFor(t, "/readyz 200 from the installed binary", func() bool {
		var code int
		code, body = get("http://" + httpAddr + "/readyz")
		return code == 200
	})
	if !strings.Contains(logged(), `"msg":"model serving"`) {
		t.Errorf("the installed binary serves no model: %s", body)
	}
	if _, err := os.Stat(filepath.Join(work, "data", "badger")); err != nil {
		t.Errorf("data dir: %v, want ./data of the working directory (the unit's state directory)", err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the installed binary did not stop within 20s of SIGTERM")
	}
}
