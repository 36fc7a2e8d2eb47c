package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
)

// TestControlSocketSurvivesEMFILE runs the agent at its file limit (as
// under ulimit -n 30): the control socket's Accept fails with EMFILE while
// clients hold every descriptor, and answers again once they let go.
// Before, the first EMFILE ended the accept loop for good while MQTT went
// on.
func TestControlSocketSurvivesEMFILE(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	p := r.startAgent()
	r.waitConnected()
	pid := p.cmd.Process.Pid

	// Lower the running agent's limit to what it uses now plus two.
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(len(fds) + 2)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Skipf("cannot lower the agent's file limit: %v", err)
	}
	t.Logf("agent uses %d descriptors; limit now %d", len(fds), limit)

	// Hold more connections than the agent has descriptors left.
	sock := filepath.Join(r.dataDir(), control.SocketName)
	var held []net.Conn
	for i := 0; i < 10; i++ {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, c)
	}
	// The agent accepts until it is at its limit; its next Accept fails.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if fds, err := os.ReadDir(fdDir); err == nil && uint64(len(fds)) >= limit {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fds, err := os.ReadDir(fdDir); err != nil || uint64(len(fds)) < limit {
		t.Fatalf("the agent did not reach its file limit: %d descriptors (%v)", len(fds), err)
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range held {
		c.Close()
	}

	// The agent is still at its limit, but has descriptors again.
	if _, err := r.status(); err != nil {
		t.Fatalf("status after the EMFILE burst: %v", err)
	}
	if code, out, errOut := cli("status", "-config", r.cfgPath); code != 0 || !strings.Contains(out, "connected") {
		t.Fatalf("edge-agent status: exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(p.Log(), "too many open files") {
		t.Errorf("the log does not say Accept hit the file limit:\n%s", tailLines(p.Log(), 20))
	}
	if n := strings.Count(p.Log(), "accept failed"); n != 1 {
		t.Errorf("%d log lines about failed accepts for one burst, want 1:\n%s", n, tailLines(p.Log(), 20))
	}
}
