package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/orderwatch/orderwatch/models"
)

// replayRegistry opens the models replay --models DIR scores with, without
// writing into DIR: each model with a version in DIR is read from there (a
// symlink in scratch), the others from the shipped bundles, copied into
// scratch. Every version DIR holds that the registry tried and refused fails
// the replay with its reason: scoring with another version than the one asked
// for would make the exported rows lie. It writes to w which versions score.
func replayRegistry(dir, scratch string, w io.Writer) (*models.Registry, error) {
	return scratchRegistry("replay", dir, scratch, w)
}

// scratchRegistry is replayRegistry for the command cmd, which prefixes its
// errors and lines.
func scratchRegistry(cmd, dir, scratch string, w io.Writer) (*models.Registry, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: --models %s: %w", cmd, dir, err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: --models %s is not a models directory (<dir>/<model>/<version>/bundle.json): %v", cmd, dir, err)
	}
	names := []string{modelRisk, modelClass}
	from := map[string]string{}
	for _, name := range names {
		vs, err := models.Versions(abs, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: --models %s: %w", cmd, dir, err)
		}
		if len(vs) == 0 {
			from[name] = "shipped"
			continue
		}
		if err := os.Symlink(filepath.Join(abs, name), filepath.Join(scratch, name)); err != nil {
			return nil, fmt.Errorf("%s: %w", cmd, err)
		}
		from[name] = dir
	}
	// SeedDir skips the models linked from DIR: it never writes through a link.
	if err := seedMissing(scratch, from); err != nil {
		return nil, err
	}
	if err := models.InitRuntime(""); err != nil {
		return nil, err
	}
	r, err := models.NewRegistry(models.RegistryOptions{
		Dir: scratch, Names: names, Logger: slog.New(slog.DiscardHandler),
		Open: openOptions(),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	st, _ := r.Status().([]models.ModelStatus)
	var refused []string
	for _, m := range st {
		for _, v := range m.Versions {
			if v.State == "rejected" {
				refused = append(refused, fmt.Sprintf("%s %s (%s): %s", m.Name, v.Version, v.Reason, v.Error))
			}
		}
	}
	if len(refused) > 0 {
		r.Close()
		return nil, fmt.Errorf("%s: --models %s: %d version(s) refused, nothing replayed: %s; fix or remove them, or pin the version to use (`orderwatch models check DIR/<model>/<version>` says why)",
			cmd, dir, len(refused), strings.Join(refused, "; "))
	}
	for _, m := range st {
		switch {
		case m.Live != nil:
			fmt.Fprintf(w, "%s: %s %s scores (from %s)", cmd, m.Name, m.Live.Version, from[m.Name])
		case m.Name == modelRisk:
			r.Close()
			return nil, fmt.Errorf("%s: --models %s: no version of %s serves: the risk model is required", cmd, dir, modelRisk)
		default:
			fmt.Fprintf(w, "%s: %s: none serves, rows carry no class", cmd, m.Name)
		}
		for _, sh := range m.Shadows {
			fmt.Fprintf(w, "; shadow %s", sh.Version)
		}
		fmt.Fprintln(w)
	}
	return r, nil
}

// seedMissing copies the shipped bundles of the models marked "shipped" into
// scratch.
func seedMissing(scratch string, from map[string]string) error {
	tmp, err := os.MkdirTemp(scratch, ".shipped-")
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := models.SeedDir(tmp); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	for name, src := range from {
		if src != "shipped" {
			continue
		}
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(scratch, name)); err != nil {
			return fmt.Errorf("replay: shipped %s: %w", name, err)
		}
	}
	return nil
}
