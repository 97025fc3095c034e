package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "orderwatch.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every flag of run but --config is a key of the file, and every key a flag.
func TestConfigFileHasAKeyForEveryFlag(t *testing.T) {
	var c runConfig
	fs, _ := runFlags(&c)
	var flags []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			flags = append(flags, f.Name)
		}
	})
	keys := configKeys()
	slices.Sort(flags)
	slices.Sort(keys)
	if !slices.Equal(flags, keys) {
		t.Errorf("flags of run %v, keys of the file %v: add the new flag to fileConfig, deploy/orderwatch.example.yaml and the README", flags, keys)
	}
}

func TestExampleConfigIsValidAndComplete(t *testing.T) {
	const example = "../../deploy/orderwatch.example.yaml"
	kv, err := loadConfigFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range kv {
		keys = append(keys, e[0])
	}
	if !slices.Equal(keys, configKeys()) {
		t.Errorf("example has keys %v, want every key %v", keys, configKeys())
	}
	got, err := parseRunFlags([]string{"--config", example})
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := parseRunFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != defaults {
		t.Errorf("example config gives %+v, want the defaults %+v (it documents them)", got, defaults)
	}
}

func TestConfigFileSetsEveryFlag(t *testing.T) {
	// The connection's files are read when the flags are checked.
	files := map[string]string{}
	for _, name := range []string{"CREDS", "CA", "CERT", "KEY"} {
		files[name] = filepath.Join(t.TempDir(), strings.ToLower(name))
		if err := os.WriteFile(files[name], []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := writeConfig(t, os.Expand(`
data: /srv/orderwatch
http: 0.0.0.0:9090
http-tls-cert: /etc/orderwatch/tls.crt
http-tls-key: /etc/orderwatch/tls.key
nats-listen: 127.0.0.1:14222
nats-url: nats://nats.internal:4222
nats-creds: ${CREDS}
nats-nkey: ""
nats-tls-ca: ${CA}
nats-tls-cert: ${CERT}
nats-tls-key: ${KEY}
nats-replicas: 3
nats-sync: 1s
models: /srv/models
policy: /etc/orderwatch/policy.yaml
demo: true
demo-rate: 12.5
batch-size: 64
log-format: json
log-level: debug
memory-limit: 768MiB
api-token-for-reads: true
api-max-inflight: 4
orders-retention: 7d
partitions: 8
group: ops-eu
member: ow-1
`, func(k string) string { return files[k] }))
	got, err := parseRunFlags([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	want := runConfig{
		Data: "/srv/orderwatch", HTTP: "0.0.0.0:9090", HTTPTLSCert: "/etc/orderwatch/tls.crt", HTTPTLSKey: "/etc/orderwatch/tls.key",
		NATSListen: "127.0.0.1:14222",
		NATS: natsFlags{URL: "nats://nats.internal:4222", Creds: files["CREDS"], TLSCA: files["CA"],
			TLSCert: files["CERT"], TLSKey: files["KEY"], Replicas: 3},
		NATSSync: "1s", Models: "/srv/models",
		Policy: "/etc/orderwatch/policy.yaml", Demo: true, DemoRate: 12.5, BatchSize: 64,
		LogFormat: "json", LogLevel: "debug", MemLimit: memoryLimit{bytes: 768 << 20}, ReadsNeedToken: true,
		APIMaxInFlight: 4, OrdersRetention: retention(7 * 24 * time.Hour),
		Partitions: 8, Group: "ops-eu", Member: "ow-1",
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestFlagsWinOverConfigFile(t *testing.T) {
	p := writeConfig(t, "data: /from/file\ndemo: true\nbatch-size: 64\nlog-level: warn\n")
	got, err := parseRunFlags([]string{"--data", "/from/flag", "--demo=false", "--config", p})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != "/from/flag" || got.Demo || got.BatchSize != 64 || got.LogLevel != "warn" {
		t.Errorf("got %+v, want data and demo from the flags, batch-size and log-level from the file", got)
	}
	if got.Models != filepath.Join("/from/flag", "models") {
		t.Errorf("models = %q, want the default under the data dir given", got.Models)
	}
}

func TestEmptyConfigFileChangesNothing(t *testing.T) {
	got, err := parseRunFlags([]string{"--config", writeConfig(t, "# nothing yet\n")})
	if err != nil {
		t.Fatal(err)
	}
	if defaults, _ := parseRunFlags(nil); got != defaults {
		t.Errorf("got %+v, want the defaults", got)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // substrings of the error, besides the file name
	}{
		{"unknown key", "data: ./d\nbatchsize: 10\n", []string{`line 2: unknown key "batchsize"`, "known keys: data, http"}},
		{"key of another command", "config: other.yaml\n", []string{`unknown key "config"`}},
		{"bad number", "batch-size: many\n", []string{"batch-size", `"many"`}},
		{"bad bool", "demo: maybe\n", []string{"demo", `"maybe"`}},
		{"retention not a duration", "orders-retention: forever\n", []string{"orders-retention", `"forever"`, "30d"}},
		{"retention zero", "orders-retention: 0s\n", []string{"orders-retention", "from 1d to 3650d"}},
		{"retention negative", "orders-retention: -720h\n", []string{"orders-retention", "from 1d to 3650d"}},
		{"retention days that wrap", "orders-retention: 213534d\n", []string{"orders-retention", "from 1d to 3650d"}},
		{"retention too short", "orders-retention: 1h\n", []string{"orders-retention", "from 1d to 3650d"}},
		{"retention absurd", "orders-retention: 36500d\n", []string{"orders-retention", "from 1d to 3650d"}},
		{"not a scalar", "data:\n  dir: x\n", []string{"line 2", "!!map"}},
		{"not a mapping", "- data\n", []string{"!!seq"}},
		{"not YAML", "data: [\n", []string{"yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := parseRunFlags([]string{"--config", p})
			if err == nil {
				t.Fatalf("no error for %q", tc.text)
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	for _, args := range [][]string{{"--api-max-inflight", "0"}, {"--api-max-inflight", "-3"}, {"--api-max-inflight", "100000"}} {
		if _, err := parseRunFlags(args); err == nil || !strings.Contains(err.Error(), "--api-max-inflight") {
			t.Errorf("run %v: %v, want an error naming --api-max-inflight", args, err)
		}
	}
	for arg, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "3650d": 3650 * 24 * time.Hour} {
		c, err := parseRunFlags([]string{"--orders-retention", arg})
		if err != nil || time.Duration(c.OrdersRetention) != want {
			t.Errorf("--orders-retention %s: %v, %v; want %v", arg, time.Duration(c.OrdersRetention), err, want)
		}
	}
	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "nope.yaml")
		if _, err := parseRunFlags([]string{"--config", p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v, want one naming %s", err, p)
		}
	})
}
