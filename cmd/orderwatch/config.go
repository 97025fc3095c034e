package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileConfig is the configuration file of `orderwatch run --config FILE`: one key per
// flag of run, named like the flag, and nothing else. A value is kept as the text of
// its YAML scalar and given to the flag's own Set, so the file accepts exactly what
// the command line accepts. A missing or null key leaves the flag alone.
type fileConfig struct {
	Data         *string `yaml:"data"`
	HTTP         *string `yaml:"http"`
	HTTPTLSCert  *string `yaml:"http-tls-cert"`
	HTTPTLSKey   *string `yaml:"http-tls-key"`
	NATSListen   *string `yaml:"nats-listen"`
	NATSURL      *string `yaml:"nats-url"`
	NATSCreds    *string `yaml:"nats-creds"`
	NATSNKey     *string `yaml:"nats-nkey"`
	NATSTLSCA    *string `yaml:"nats-tls-ca"`
	NATSTLSCert  *string `yaml:"nats-tls-cert"`
	NATSTLSKey   *string `yaml:"nats-tls-key"`
	NATSReplicas *string `yaml:"nats-replicas"`
	NATSSync     *string `yaml:"nats-sync"`
	Models       *string `yaml:"models"`
	Policy       *string `yaml:"policy"`
	Demo         *string `yaml:"demo"`
	DemoRate     *string `yaml:"demo-rate"`
	BatchSize    *string `yaml:"batch-size"`
	LogFormat    *string `yaml:"log-format"`
	LogLevel     *string `yaml:"log-level"`
	MemLimit     *string `yaml:"memory-limit"`
	APIReads     *string `yaml:"api-token-for-reads"`
	APIInFlight  *string `yaml:"api-max-inflight"`
	Retention    *string `yaml:"orders-retention"`
	Partitions   *string `yaml:"partitions"`
	Group        *string `yaml:"group"`
	Member       *string `yaml:"member"`
	Users        *string `yaml:"users"`
	ProxyHeader  *string `yaml:"auth-proxy-header"`
	ProxyTrusted *string `yaml:"auth-proxy-trusted"`
	Mapping      *string `yaml:"mapping"`
}

// loadConfigFile reads a configuration file and returns its keys and values in
// the order of fileConfig. Unknown keys are an error that names them.
func loadConfigFile(path string) ([][2]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, explainYAMLError(err))
	}
	var kv [][2]string
	v := reflect.ValueOf(fc)
	for i := range v.NumField() {
		if p := v.Field(i).Interface().(*string); p != nil {
			kv = append(kv, [2]string{configKey(v.Type().Field(i)), *p})
		}
	}
	return kv, nil
}

// applyConfigFile sets every flag of fs that is in the file at path and was not
// given on the command line. An empty path does nothing.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	kv, err := loadConfigFile(path)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, e := range kv {
		key, val := e[0], e[1]
		if given[key] {
			continue
		}
		if fs.Lookup(key) == nil {
			return fmt.Errorf("config %s: key %q has no flag in %s", path, key, fs.Name())
		}
		if err := fs.Set(key, val); err != nil {
			return fmt.Errorf("config %s: invalid value %q for %s: %w", path, val, key, err)
		}
	}
	return nil
}

func configKey(f reflect.StructField) string {
	return strings.Split(f.Tag.Get("yaml"), ",")[0]
}

func configKeys() []string {
	t := reflect.TypeFor[fileConfig]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = configKey(t.Field(i))
	}
	return keys
}

var yamlUnknownField = regexp.MustCompile(`^(line \d+): field (.+) not found in type .*$`)

// explainYAMLError rewrites the decoder's "field x not found in type main.fileConfig"
// as an unknown key and lists the known ones.
func explainYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	unknown := false
	for i, m := range te.Errors {
		if s := yamlUnknownField.FindStringSubmatch(m); s != nil {
			m, unknown = fmt.Sprintf("%s: unknown key %q", s[1], s[2]), true
		}
		msgs[i] = m
	}
	msg := strings.Join(msgs, "; ")
	if unknown {
		msg += " (known keys: " + strings.Join(configKeys(), ", ") + ")"
	}
	return errors.New(msg)
}
