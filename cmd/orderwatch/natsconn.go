package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// natsFlags say how to reach an existing NATS server or cluster: its URLs, the
// credentials and TLS files it asks for, and the replicas of the streams
// orderwatch creates there. `run` and `simulate --nats-url` take the same flags.
type natsFlags struct {
	URL      string // comma-separated; user:password@ or token@ in a URL is kept out of logs
	Creds    string // JWT + NKey seed file, as `nsc` and Synadia Cloud issue them
	NKey     string // NKey seed file (a line starting with SU)
	TLSCA    string // PEM CA that signed the server's certificate, when not a system root
	TLSCert  string // PEM client certificate, when the server verifies clients
	TLSKey   string // its key
	Replicas int    // of the streams created when missing
}

func (n *natsFlags) register(fs *flag.FlagSet, urlUsage string) {
	fs.StringVar(&n.URL, "nats-url", "", urlUsage)
	fs.StringVar(&n.Creds, "nats-creds", "", "credentials `file` (JWT and NKey seed) for --nats-url")
	fs.StringVar(&n.NKey, "nats-nkey", "", "NKey seed `file` for --nats-url")
	fs.StringVar(&n.TLSCA, "nats-tls-ca", "", "PEM `file` of the CA that signed the server's certificate, for --nats-url")
	fs.StringVar(&n.TLSCert, "nats-tls-cert", "", "PEM client certificate `file`, for a server that verifies clients (with --nats-tls-key)")
	fs.StringVar(&n.TLSKey, "nats-tls-key", "", "PEM `file` of the client certificate's key")
	fs.IntVar(&n.Replicas, "nats-replicas", 1, "`replicas` of the streams orderwatch creates when missing: 3 on a JetStream cluster; existing streams are left as they are")
}

// check says what is wrong with the flags, before anything starts: a
// combination that cannot work, or a file that cannot be read.
func (n natsFlags) check() error {
	if n.Replicas < 1 || n.Replicas > 5 {
		return fmt.Errorf("--nats-replicas %d: JetStream takes 1 to 5", n.Replicas)
	}
	if n.URL == "" {
		for _, f := range n.files() {
			if f.path != "" {
				return fmt.Errorf("%s is for the server of --nats-url: give its URL too", f.flag)
			}
		}
		if n.Replicas != 1 {
			return fmt.Errorf("--nats-replicas %d needs a JetStream cluster: give its URL with --nats-url (the embedded server is a single node)", n.Replicas)
		}
		return nil
	}
	if n.Creds != "" && n.NKey != "" {
		return errors.New("--nats-creds and --nats-nkey: give one (a creds file holds its own NKey seed)")
	}
	if (n.TLSCert == "") != (n.TLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	for _, f := range n.files() {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.flag, err)
		}
	}
	return nil
}

// files are the file flags, by flag name.
func (n natsFlags) files() []struct{ flag, path string } {
	return []struct{ flag, path string }{{"--nats-creds", n.Creds}, {"--nats-nkey", n.NKey},
		{"--nats-tls-ca", n.TLSCA}, {"--nats-tls-cert", n.TLSCert}, {"--nats-tls-key", n.TLSKey}}
}

// options are the connection options the files ask for.
func (n natsFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	if n.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(n.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", n.NKey, err)
		}
		opts = append(opts, o)
	}
	if n.TLSCA != "" {
		opts = append(opts, nats.RootCAs(n.TLSCA))
	}
	if n.TLSCert != "" {
		opts = append(opts, nats.ClientCert(n.TLSCert, n.TLSKey))
	}
	return opts, nil
}

// connect connects to n.URL with the files of the flags, and reconnects for ever,
// logging each loss and return.
func (n natsFlags) connect(name string, log *slog.Logger) (*nats.Conn, error) {
	opts, err := n.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected, reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", redactURLs(c.ConnectedUrl())) }),
	)
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s (is it running? check --nats-url and the credentials and TLS flags): %w", redactURLs(n.URL), err)
	}
	log.Info("connected to nats", "url", redactURLs(nc.ConnectedUrl()), "server", nc.ConnectedServerName(),
		"version", nc.ConnectedServerVersion(), "cluster", nc.ConnectedClusterName())
	return nc, nil
}

// redactURLs hides the user info of each URL of a comma-separated list: a
// password or a token must not reach a log or /readyz. (url.URL.Redacted, and
// so nats.Conn.ConnectedUrlRedacted, keeps a token: it is the user name.)
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			if strings.Contains(p, "@") {
				parts[i] = "(a URL with user info)"
			}
			continue
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
