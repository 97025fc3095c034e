package models

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// shipped holds the bundles built into the binary as shipped/<name>/<version>/.
// Regenerate them with the recipes in models/train.
//
//go:embed shipped
var shipped embed.FS

// SeedDir copies each shipped bundle into the models dir dst as <dst>/<name>/<version>
// when that directory does not exist yet. Existing directories and files are never
// touched, so a data scientist's bundles and edits survive restarts. Each version is
// written under a temporary name and renamed into place, so a crash leaves no
// half-written version behind. SeedDir is safe to call on every start.
func SeedDir(dst string) error {
	names, err := fs.ReadDir(shipped, "shipped")
	if err != nil {
		return fmt.Errorf("models: seed %s: %w", dst, err)
	}
	for _, name := range names {
		versions, err := fs.ReadDir(shipped, path.Join("shipped", name.Name()))
		if err != nil {
			return fmt.Errorf("models: seed %s: %w", dst, err)
		}
		for _, v := range versions {
			if err := seedVersion(dst, name.Name(), v.Name()); err != nil {
				return fmt.Errorf("models: seed %s: %s %s: %w", dst, name.Name(), v.Name(), err)
			}
		}
	}
	return nil
}

func seedVersion(dst, name, version string) error {
	target := filepath.Join(dst, name, version)
	if _, err := os.Lstat(target); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	// A name starting with a dot is no version, so Active never picks it up.
	tmp, err := os.MkdirTemp(parent, ".seed-"+version+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op after the rename

	src, err := fs.Sub(shipped, path.Join("shipped", name, version))
	if err != nil {
		return err
	}
	err = fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		out := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			return os.Mkdir(out, 0o755)
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return writeFileSync(out, data)
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		if _, statErr := os.Lstat(target); statErr == nil {
			return nil // created concurrently; theirs stays
		}
		return err
	}
	return nil
}

// writeFileSync creates a new file holding data and syncs it.
func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Versions returns the versions of the model name in the models dir, oldest first
// in semantic-version order: the names of the directories under <dir>/<name> that
// are semantic versions and hold a bundle.json. Whether the bundles are valid is
// for Open to say.
func Versions(dir, name string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("models: versions of %s: %w", name, err)
	}
	type entry struct {
		name string
		v    version
	}
	var found []entry
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		v, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, name, e.Name(), BundleFile)); err != nil {
			continue
		}
		found = append(found, entry{e.Name(), v})
	}
	slices.SortFunc(found, func(a, b entry) int { return a.v.compare(b.v) })
	out := make([]string, len(found))
	for i, e := range found {
		out[i] = e.name
	}
	return out, nil
}

// Active returns the directory of the greatest version of the model name in the
// models dir, in semantic-version order (0.10.0 comes after 0.9.0, 1.0.0 after
// 1.0.0-rc.1). It returns an error wrapping ErrNoVersion when there is none.
func Active(dir, name string) (string, error) {
	versions, err := Versions(dir, name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(versions) == 0) {
		return "", fmt.Errorf("%w: %s in %s", ErrNoVersion, name, dir)
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, name, versions[len(versions)-1]), nil
}
