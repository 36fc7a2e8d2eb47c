package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edge-agent/edge-agent/agent/control"
)

// The CLI finds the socket where run puts it: a relative data_dir is
// relative to the config file, not to the caller's working directory, and
// a key of the wrong type elsewhere in the file does not stop it.
func TestCLIDataDirAsRunReadsIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "state")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("device_id = 42\ndata_dir = \"state\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := control.Listen(data, nil, func() any { return map[string]any{"state": "ok"} }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	code, out, errOut := cli("status", "-json", "-config", cfg)
	if code != 0 || !strings.Contains(out, `"state":"ok"`) {
		t.Fatalf("status: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
