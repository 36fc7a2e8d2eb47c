package sinks

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/store"
)

// A real command gets each payload byte-exact on stdin and the record in
// its environment, one process per record, in order.
func TestExecSinkRunsCommandPerRecord(t *testing.T) {
	db := openStore(t, nil)
	dir := t.TempDir()
	payloads := [][]byte{[]byte("hello"), {0x00, 0xff, 0xfe, '\n', 'x'}, {}, []byte("{\"id\":\"c-1\"}")}
	appendMsgs(t, db, "/sys/gw/thing/push/notify", payloads...)
	script := `cat > "$D/$EDGE_SEQ.payload"; printf '%s|%s|%s' "$EDGE_SEQ" "$EDGE_TOPIC" "$EDGE_RECEIVED_AT" > "$D/$EDGE_SEQ.env"; echo "$EDGE_SEQ" >> "$D/order"`
	t.Setenv("D", dir)
	m, _ := newManager(t, []Config{{Name: "x", Type: TypeExec, Command: []string{"/bin/sh", "-c", script}}}, db)
	stop := start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "x").Cursor == 4 })
	stop()
	for i, p := range payloads {
		seq := i + 1
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.payload", seq)))
		if err != nil || !bytes.Equal(got, p) {
			t.Errorf("seq %d: stdin %q (%v), want %q", seq, got, err, p)
		}
		env, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d.env", seq)))
		want := fmt.Sprintf("%d|/sys/gw/thing/push/notify|%s", seq, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano))
		if string(env) != want {
			t.Errorf("seq %d: env %q, want %q", seq, env, want)
		}
	}
	if order, _ := os.ReadFile(filepath.Join(dir, "order")); string(order) != "1\n2\n3\n4\n" {
		t.Errorf("order %q", order)
	}
	if st := status(m, "x"); st.Delivered != 4 || st.Failed != 0 {
		t.Errorf("status %+v", st)
	}
}

// A failing command is retried with the same record; its exit status and
// stderr are the last error, kept (with its time) after it recovers.
func TestExecSinkRetriesFailure(t *testing.T) {
	db := openStore(t, nil)
	dir := t.TempDir()
	t.Setenv("D", dir)
	appendMsgs(t, db, "t", []byte("a"), []byte("b"))
	// Fails twice on seq 2, then takes it.
	script := `if [ "$EDGE_SEQ" = 2 ] && [ "$(cat "$D/tries" 2>/dev/null)" != xx ]; then printf x >> "$D/tries"; echo "disk on fire" >&2; echo "line two" >&2; exit 3; fi; cat >> "$D/out"`
	m, _ := newManager(t, []Config{{Name: "x", Type: TypeExec, Command: []string{"/bin/sh", "-c", script}}}, db)
	start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "x").Cursor == 2 })
	st := status(m, "x")
	if st.Failed != 2 || st.Delivered != 2 {
		t.Errorf("status %+v, want 2 failed, 2 delivered", st)
	}
	for _, want := range []string{"exit status 3", "disk on fire | line two", "seq 2", "/bin/sh"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last_error %q lacks %q", st.LastError, want)
		}
	}
	if when, _, ok := strings.Cut(st.LastError, ": "); !ok {
		t.Errorf("last_error %q has no time", st.LastError)
	} else if ts, err := time.Parse(time.RFC3339, when); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("last_error's time %q: %v", when, err)
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "out")); string(out) != "ab" {
		t.Errorf("out = %q, want ab", out)
	}
}

// A command past its timeout is killed with its whole process group, and
// the record is tried again.
func TestExecSinkKilledAtTimeout(t *testing.T) {
	db := openStore(t, nil)
	dir := t.TempDir()
	t.Setenv("D", dir)
	appendMsgs(t, db, "t", []byte("a"))
	// The first run hangs in a child (a grandchild of the agent); the
	// second one takes the record.
	script := `if [ ! -e "$D/hung" ]; then touch "$D/hung"; sleep 60 & echo $! > "$D/pid"; wait; fi; cat > "$D/out"`
	m, _ := newManager(t, []Config{{Name: "x", Type: TypeExec, Command: []string{"/bin/sh", "-c", script}, Timeout: 300 * time.Millisecond}}, db)
	start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "x").Cursor == 1 })
	st := status(m, "x")
	if st.Failed != 1 || !strings.Contains(st.LastError, "killed after the 300ms timeout") {
		t.Errorf("status %+v, want one failure naming the timeout", st)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "the sleep to die with its group", func() bool { return !running(pid) })
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// An oversize marker says so in the environment.
func TestExecSinkOversizeMarker(t *testing.T) {
	db := openStore(t, nil)
	dir := t.TempDir()
	t.Setenv("D", dir)
	if _, err := db.Append([]store.Message{{Topic: "t", Payload: []byte("first bytes"), Oversize: 5 << 20}}); err != nil {
		t.Fatal(err)
	}
	m, _ := newManager(t, []Config{{Name: "x", Type: TypeExec, Command: []string{"/bin/sh", "-c", `printf '%s|%s|' "$EDGE_OVERSIZE" "$EDGE_RECEIVED_AT" > "$D/out"; cat >> "$D/out"`}}}, db)
	start(t, m)
	waitFor(t, "delivery", func() bool { return status(m, "x").Cursor == 1 })
	if out, _ := os.ReadFile(filepath.Join(dir, "out")); string(out) != "5242880||first bytes" {
		t.Errorf("out = %q", out)
	}
}
