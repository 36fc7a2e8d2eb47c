package sinks

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A sink's command runs at a lower CPU priority than the agent, so a
// process per record cannot take the writer's CPU while a backlog drains;
// the agent's own threads keep theirs.
func TestExecSinkCommandRunsNiced(t *testing.T) {
	db := openStore(t, nil)
	dir := t.TempDir()
	t.Setenv("D", dir)
	appendMsgs(t, db, "t", []byte("a"), []byte("b"))
	// Field 19 of /proc/self/stat is the nice value (after the command
	// name, which holds no spaces here).
	script := `read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ nice _ < /proc/$$/stat; echo "$nice" >> "$D/nice"`
	m, _ := newManager(t, []Config{{Name: "x", Type: TypeExec, Command: []string{"/bin/sh", "-c", script}}}, db)
	stop := start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "x").Cursor == 2 })
	stop()

	own := agentNice(t)
	want := strconv.Itoa(min(own+execNice, 19))
	b, err := os.ReadFile(filepath.Join(dir, "nice"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); len(got) != 2 || got[0] != want || got[1] != want {
		t.Errorf("the commands ran at nice %q, want %s twice (the agent is at %d)", got, want, own)
	}
	if after := agentNice(t); after != own {
		t.Errorf("the agent's nice moved from %d to %d", own, after)
	}
}

func agentNice(t *testing.T) int {
	t.Helper()
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		t.Fatal(err)
	}
	return 20 - p
}
