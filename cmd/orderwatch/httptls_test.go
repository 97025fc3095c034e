package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPS: run --http-tls-cert/--http-tls-key serves HTTPS with the files'
// certificate, refuses plain HTTP, and serves a renewed certificate written over
// the files without a restart; files that do not load keep the certificate
// before. A key that does not match stops the start.
func TestHTTPS(t *testing.T) {
	a, b := testPKI(t, t.TempDir()), testPKI(t, t.TempDir())
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	install := func(p pki, at time.Time) {
		t.Helper()
		for src, dst := range map[string]string{p.serverCert: cert, p.serverKey: key} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(dst, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(a, time.Now())

	mismatched, err := parseRunFlags([]string{"--data", t.TempDir(), "--http-tls-cert", cert, "--http-tls-key", b.serverKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), mismatched, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "https certificate") {
		t.Errorf("run with a key of another certificate: %v, want a refusal naming the https certificate", err)
	}

	httpAddr := freeAddr(t)
	cfg, err := parseRunFlags([]string{"--http", httpAddr, "--data", t.TempDir(), "--nats-listen", freeAddr(t),
		"--http-tls-cert", cert, "--http-tls-key", key})
	if err != nil {
		t.Fatal(err)
	}
	startParsed(t, cfg)

	pool := x509.NewCertPool()
	for _, ca := range []string{a.ca, b.ca} {
		data, _ := os.ReadFile(ca)
		pool.AppendCertsFromPEM(data)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	served := func() []byte {
		t.Helper()
		resp, err := client.Get("https://" + httpAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET https://…/readyz: %d, want 200", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].Raw
	}
	leaf := func(p pki) []byte {
		data, _ := os.ReadFile(p.serverCert)
		block, _ := pem.Decode(data)
		return block.Bytes
	}
	waitFor(t, "https /readyz", func() bool {
		resp, err := client.Get("https://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	if !bytes.Equal(served(), leaf(a)) {
		t.Error("the server does not serve the certificate of --http-tls-cert")
	}
	if code, _ := get("http://" + httpAddr + "/readyz"); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, want 400", code)
	}

	install(b, time.Now().Add(time.Minute)) // a renewal: new files, later times
	if !bytes.Equal(served(), leaf(b)) {
		t.Error("after the files were renewed the server still serves the certificate before")
	}

	// A renewal caught half-written, then a key file gone: the one before stays.
	later := time.Now().Add(2 * time.Minute)
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\ntrunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cert, later, later); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Error("with a certificate file that does not load the server does not serve the one before")
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), leaf(b)) {
		t.Error("with the key file gone the server does not serve the one before")
	}
}
