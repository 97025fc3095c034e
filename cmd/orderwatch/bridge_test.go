package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderwatch/orderwatch/mapping"
	"github.com/orderwatch/orderwatch/pipeline"
)

// TestRunRefusesABadMapping: run --mapping with a file that does not compile, or
// whose subjects overlap orderwatch's own, refuses to start with the reason.
func TestRunRefusesABadMapping(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, file string
		want       error
		says       string
	}{
		{"own subjects", write("own.yaml", "version: 1\nrecords:\n- name: all\n  subjects: [\"erp.>\", \"orders.>\"]\n  when: 'true'\n  skip: true\n"),
			pipeline.ErrForeignSubject, `"orders.>" overlaps`},
		{"no subjects", write("none.yaml", "version: 1\nrecords:\n- name: all\n  when: 'true'\n  skip: true\n"),
			pipeline.ErrForeignSubject, "names no subjects"},
		{"does not compile", write("bad.yaml", "version: 1\nrecords:\n- name: all\n  subjects: [\"erp.>\"]\n  when: 'r.kind =='\n  skip: true\n"),
			mapping.ErrBadMapping, "does not compile"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseRunFlags([]string{"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--mapping", c.file})
			if err != nil {
				t.Fatal(err)
			}
			err = run(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "--mapping") {
				t.Errorf("run: %v, want %v saying %q", err, c.want, c.says)
			}
		})
	}
}
