package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
)

// fakeDaemonConfig writes a config whose data_dir is a new directory and
// returns both.
func fakeDaemonConfig(t *testing.T) (cfg, dir string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("device_id = \"x\"\ndata_dir = \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// hungDaemon listens on the control socket in dir, accepts, reads the
// request and never answers: a daemon stuck somewhere.
func hungDaemon(t *testing.T, dir string) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go bufio.NewReader(c).ReadBytes('\n')
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// TestCLIHungDaemon: a daemon that accepts and never answers makes the
// one-shot verbs fail after 10 s with advice, exit 1, instead of hanging.
func TestCLIHungDaemon(t *testing.T) {
	t.Parallel()
	cfg, dir := fakeDaemonConfig(t)
	hungDaemon(t, dir)
	for _, args := range [][]string{
		{"status"},
		{"led", "identify", "-for", "2s"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			type result struct {
				code        int
				out, errOut string
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				code, out, errOut := cli(append(args, "-config", cfg)...)
				done <- result{code, out, errOut}
			}()
			select {
			case r := <-done:
				took := time.Since(start)
				if r.code != 1 {
					t.Errorf("exit %d, want 1", r.code)
				}
				sock := filepath.Join(dir, control.SocketName)
				for _, want := range []string{"the daemon at " + sock + " did not answer within 10s", "it may be stuck", "systemctl status edge-agent", "journal"} {
					if !strings.Contains(r.errOut, want) {
						t.Errorf("stderr lacks %q:\n%s", want, r.errOut)
					}
				}
				if took < 9*time.Second {
					t.Errorf("gave up after %v, before its 10s", took)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%v still waiting after 20s on a daemon that never answers", args)
			}
		})
	}
}
