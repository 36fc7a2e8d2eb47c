// Package cachedir keeps what a rig builds once per machine and reuses on
// every later run (make hil's guest kernel, make system's card) in a
// directory that is either complete or absent. It is built in a staging
// directory beside the cache and renamed into place with its JSON manifest
// written last, so an interrupted build never leaves a cache that looks
// complete, and a cache whose manifest names a missing file is not taken.
package cachedir

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Manifest is what a cache's JSON manifest decodes into: Files are the
// paths that must all exist for the cache to be complete (they may depend
// on what the manifest says, as the modules make hil's guest loads do).
type Manifest interface {
	Files() []string
}

// Load decodes the manifest file name in dir into m and checks that every
// one of m.Files() exists. Any error means: build the cache anew.
func Load(dir, name string, m Manifest) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, f := range m.Files() {
		if _, err := os.Stat(f); err != nil {
			return err
		}
	}
	return nil
}

// Stage makes an empty directory beside cache (on its file system, so
// Commit's rename is atomic) to build a new cache in. The caller removes it
// when done: after Commit only what was not committed is left in it.
func Stage(cache string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(cache), filepath.Base(cache)+".new-")
}

// Commit writes m as the manifest file name into dir, a complete cache
// built under a Stage directory, and puts dir in cache's place, replacing
// whatever was there.
func Commit(dir, cache, name string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(cache); err != nil {
		return err
	}
	return os.Rename(dir, cache)
}
