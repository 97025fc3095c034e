package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/orderwatch/orderwatch/features"
	"github.com/orderwatch/orderwatch/internal/natstest"
	"github.com/orderwatch/orderwatch/pipeline"
)

func TestNATSFlagsCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.creds")
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{nil, ""},
		{[]string{"--nats-url", "nats://127.0.0.1:4222", "--nats-creds", file, "--nats-tls-ca", file, "--nats-replicas", "3"}, ""},
		{[]string{"--nats-creds", file}, "--nats-creds is for the server of --nats-url"},
		{[]string{"--nats-tls-ca", file}, "--nats-tls-ca is for the server of --nats-url"},
		{[]string{"--nats-replicas", "3"}, "--nats-replicas 3 needs a JetStream cluster"},
		{[]string{"--nats-url", "nats://h:4222", "--nats-replicas", "0"}, "JetStream takes 1 to 5"},
		{[]string{"--nats-url", "nats://h:4222", "--nats-creds", file, "--nats-nkey", file}, "give one"},
		{[]string{"--nats-url", "nats://h:4222", "--nats-tls-cert", file}, "go together"},
		{[]string{"--nats-url", "nats://h:4222", "--nats-creds", missing}, "--nats-creds: open " + missing},
	} {
		_, err := parseRunFlags(tc.args)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one with %q", tc.args, err, tc.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                           "nats://127.0.0.1:4222",
		"nats://ow:s3cret@nats-1:4222":                    "nats://ow:xxxxx@nats-1:4222",
		"tls://s3cr3tt0ken@nats-1:4222,tls://nats-2:4222": "tls://xxxxx@nats-1:4222,tls://nats-2:4222",
		"ow:s3cret@nats-1:4222":                           "(a URL with user info)",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTokenStaysOutOfTheLog: a token or password in --nats-url is not in the log
// of the connection, nor in the error when the server refuses it.
func TestTokenStaysOutOfTheLog(t *testing.T) {
	const token = "s3cr3t-t0ken"
	url := startNATS(t, func(o *server.Options) { o.Authorization = token })
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	withToken := strings.Replace(url, "nats://", "nats://"+token+"@", 1)
	nc, err := (natsFlags{URL: withToken}).connect("orderwatch-test", log)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if !strings.Contains(logged.String(), "connected to nats") || !strings.Contains(logged.String(), "xxxxx@127.0.0.1") || strings.Contains(logged.String(), token) {
		t.Errorf("log %q: want the connection with the token hidden", logged.String())
	}
	wrong := strings.Replace(url, "nats://", "nats://ow:"+token+"-not@", 1)
	_, err = (natsFlags{URL: wrong}).connect("orderwatch-test", log)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "ow:xxxxx@") {
		t.Errorf("error %v: want a refusal with the password hidden", err)
	}
}

// pki is a test CA's files, and a server's TLS config with its certificate.
type pki struct {
	serverTLS                                        *tls.Config
	ca, serverCert, serverKey, clientCert, clientKey string
}

// testPKI writes a CA, a certificate of 127.0.0.1 for the server and a client
// certificate, all signed by the CA, and the server's TLS config that verifies
// clients.
func testPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orderwatch test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var p pki
	p.ca = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	srvCert, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	p.serverCert, p.serverKey = write("server.pem", srvCert), write("server-key.pem", srvKey)
	p.clientCert, p.clientKey = write("client.pem", cliCert), write("client-key.pem", cliKey)
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	return p
}

// startNATS starts a nats-server with JetStream on 127.0.0.1, set up further by
// with, and returns its client URL.
func startNATS(t *testing.T, with func(*server.Options)) string {
	t.Helper()
	return natstest.Start(t, with).ClientURL()
}

// TestRunOnAServerWithTLSAndNKeys: orderwatch run against an existing server that
// takes TLS clients with a certificate signed by its CA and NKey users only.
// Events published there are applied; the flags left out are refused by the
// server with its reason.
func TestRunOnAServerWithTLSAndNKeys(t *testing.T) {
	dir := t.TempDir()
	p := testPKI(t, dir)
	ca, cert, key := p.ca, p.clientCert, p.clientKey
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	url := startNATS(t, func(o *server.Options) {
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = p.serverTLS, true, true, 2
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	})
	url = strings.Replace(url, "nats://", "tls://", 1)
	full := natsFlags{URL: url, NKey: seedFile, TLSCA: ca, TLSCert: cert, TLSKey: key, Replicas: 1}

	log := slog.New(slog.DiscardHandler)
	for name, c := range map[string]struct {
		flags natsFlags
		want  string
	}{
		"no CA":          {natsFlags{URL: url, NKey: seedFile, TLSCert: cert, TLSKey: key}, "certificate"},
		"no client cert": {natsFlags{URL: url, NKey: seedFile, TLSCA: ca}, "tls"},
		"no nkey":        {natsFlags{URL: url, TLSCA: ca, TLSCert: cert, TLSKey: key}, "authorization violation"},
	} {
		nc, err := c.flags.connect("orderwatch-test", log)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected, want a refusal", name)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), c.want) || !strings.Contains(err.Error(), "--nats-url") {
			t.Errorf("%s: error %q, want one with %q that names the flags", name, err, c.want)
		}
	}

	base := startRunWith(t, "--data", t.TempDir(), "--nats-url", url, "--nats-nkey", seedFile,
		"--nats-tls-ca", ca, "--nats-tls-cert", cert, "--nats-tls-key", key)
	nc, err := full.connect("orderwatch-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publishHandwritten(t, nc)
	waitFor(t, "SO-100231 applied through the TLS server", func() bool {
		code, body := get(base + "/api/v1/orders/SO-100231")
		return code == 200 && strings.Count(body, `"source"`) >= 3
	})
}

// publishHandwritten publishes testdata/events/handwritten.ndjson with core NATS.
func publishHandwritten(t *testing.T, nc *nats.Conn) int {
	t.Helper()
	b, err := os.ReadFile("../../testdata/events/handwritten.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		var env struct{ ID, Type string }
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatal(err)
		}
		msg := &nats.Msg{Subject: features.Subject(env.Type, orderIDOf([]byte(line))), Data: []byte(strings.TrimSpace(line)), Header: nats.Header{"Nats-Msg-Id": {env.ID}}}
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCredsFileOnAnOperatorModeServer: a server in operator (JWT) mode, as nsc or
// Synadia Cloud set one up, takes orderwatch with the user's creds file; JetStream
// of the account works through it (streams created, a publish stored).
func TestCredsFileOnAnOperatorModeServer(t *testing.T) {
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	// JetStream in operator mode needs a system account.
	system, _ := nkeys.CreateAccount()
	spub, _ := system.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	oclaims := jwt.NewOperatorClaims(opub)
	oclaims.SystemAccount = spub
	ojwt, err := oclaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	oclaims, err = jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	aclaims := jwt.NewAccountClaims(apub)
	aclaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := aclaims.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "orderwatch.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]string{apub: ajwt, spub: sjwt} {
		if err := resolver.Store(pub, claims); err != nil {
			t.Fatal(err)
		}
	}
	url := startNATS(t, func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oclaims}
		o.AccountResolver = resolver
		o.SystemAccount = spub
	})

	log := slog.New(slog.DiscardHandler)
	if nc, err := (natsFlags{URL: url}).connect("orderwatch-test", log); err == nil {
		nc.Close()
		t.Fatal("connected without credentials, want a refusal")
	}
	args := []string{"--nats-url", url, "--nats-creds", credsFile}
	sc, err := parseSimulateFlags(append(args, "--orders", "5", "--warmup", "0s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := simulate(context.Background(), sc, io.Discard, io.Discard); err != nil {
		t.Fatalf("simulate over the creds file: %v", err)
	}
	nc, err := sc.NATS.connect("orderwatch-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, pipeline.StreamOrders)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		t.Errorf("ORDERS holds no message after simulate published into it")
	}
}
