package cachedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// files is a manifest like make hil's: which files must exist depends on
// what it lists.
type files struct {
	Dir   string   `json:"-"`
	Names []string `json:"names"`
}

func (f *files) Files() []string {
	var out []string
	for _, n := range f.Names {
		out = append(out, filepath.Join(f.Dir, n))
	}
	return out
}

func build(t *testing.T, cache string, names ...string) {
	t.Helper()
	stage, err := Stage(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stage)
	if filepath.Dir(stage) != filepath.Dir(cache) {
		t.Fatalf("stage %s is not beside the cache %s (the rename would not be atomic)", stage, cache)
	}
	f := &files{Dir: filepath.Join(stage, "out"), Names: names}
	if err := os.Mkdir(f.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(f.Dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Commit(f.Dir, cache, "m.json", f); err != nil {
		t.Fatal(err)
	}
}

func TestCommitThenLoad(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "parent", "cache") // the parent is made too
	if err := Load(cache, "m.json", &files{Dir: cache}); err == nil {
		t.Fatal("Load of a cache never built succeeded")
	}
	build(t, cache, "a", "b")
	got := &files{Dir: cache}
	if err := Load(cache, "m.json", got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Names, ",") != "a,b" {
		t.Errorf("manifest names %v, want a,b", got.Names)
	}
	// A rebuild replaces the old cache whole: nothing of it is left.
	build(t, cache, "c")
	if _, err := os.Stat(filepath.Join(cache, "a")); !os.IsNotExist(err) {
		t.Errorf("the old cache's file a is still there after a rebuild (%v)", err)
	}
	ents, err := os.ReadDir(filepath.Dir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("beside the cache after two builds: %d entries, want only the cache", len(ents))
	}
}

func TestLoadIncomplete(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache")
	build(t, cache, "a", "b")
	if err := os.Remove(filepath.Join(cache, "b")); err != nil {
		t.Fatal(err)
	}
	if err := Load(cache, "m.json", &files{Dir: cache}); err == nil {
		t.Error("Load took a cache whose manifest names a missing file")
	}
	if err := os.WriteFile(filepath.Join(cache, "m.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Load(cache, "m.json", &files{Dir: cache}); err == nil || !strings.Contains(err.Error(), "m.json") {
		t.Errorf("Load of a broken manifest: %v, want an error naming m.json", err)
	}
}
