package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// certFiles serves the HTTP listener's certificate from a PEM certificate and key
// file, read again when either changes (a renewal by cert-manager or certbot
// needs no restart). A renewal that does not load keeps the certificate before.
type certFiles struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	stamp   [2]time.Time // modification times of cert and key when current was read
}

// newCertFiles reads the pair once, so that a wrong file stops the start.
func newCertFiles(cert, key string) (*certFiles, error) {
	if (cert == "") != (key == "") {
		return nil, errors.New("--http-tls-cert and --http-tls-key go together")
	}
	c := &certFiles{cert: cert, key: key}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

// get returns the certificate, read again when a file changed since. While the
// files cannot be read or do not load (mid-renewal, or a bad one) it keeps
// serving the certificate before; with none before, that is the error.
func (c *certFiles) get() (*tls.Certificate, error) {
	var stamp [2]time.Time
	var err error
	for i, f := range []string{c.cert, c.key} {
		var fi os.FileInfo
		if fi, err = os.Stat(f); err != nil {
			break
		}
		stamp[i] = fi.ModTime()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.current != nil && stamp == c.stamp {
		return c.current, nil
	}
	var pair tls.Certificate
	if err == nil {
		pair, err = tls.LoadX509KeyPair(c.cert, c.key)
	}
	if err != nil {
		if c.current != nil {
			return c.current, nil
		}
		return nil, fmt.Errorf("https certificate --http-tls-cert %s, --http-tls-key %s: %w", c.cert, c.key, err)
	}
	c.current, c.stamp = &pair, stamp
	return c.current, nil
}

// tlsConfig serves the files' certificate to every handshake.
func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.get() },
	}
}
