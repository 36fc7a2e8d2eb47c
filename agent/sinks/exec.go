package sinks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// execSink runs a command per record (exec_unix.go). It starts processes
// with syscall.ForkExec and Wait4 rather than os/exec or os.StartProcess,
// which would cost the ARM binary more than the rest of this package.
type execSink struct {
	argv    []string
	timeout time.Duration
}

// stderrKeep is how much of a command's stderr is kept for its error.
const stderrKeep = 1 << 10

func (e *execSink) deliver(ctx context.Context, recs []store.Record) (int, error) {
	r := &recs[0]
	err := e.run(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("%s (seq %d): %w", e.argv[0], r.Seq, err)
	}
	return 1, nil
}

func (e *execSink) close() {}

// lookPath finds a command without a slash on $PATH.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $PATH", name)
}

// tailBuffer keeps the last stderrKeep bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > stderrKeep {
		p = p[len(p)-stderrKeep:]
	}
	t.b = append(t.b, p...)
	if len(t.b) > stderrKeep {
		t.b = append(t.b[:0], t.b[len(t.b)-stderrKeep:]...)
	}
	return n, nil
}

// text is the kept stderr on one line.
func (t *tailBuffer) text() string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(t.b)), "\uFFFD")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
