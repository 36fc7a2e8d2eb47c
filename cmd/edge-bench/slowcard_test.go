package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain: the test binary is also the slow card's server, as edge-bench
// is (the card tests start it).
func TestMain(m *testing.M) {
	serveCardIfAsked()
	os.Exit(m.Run())
}

func TestParseMountinfo(t *testing.T) {
	text := "36 25 0:32 / /tmp/edge-bench-1/r1-02-slow-probe/card rw,nosuid,nodev,relatime shared:1 - fuse.edge-bench-card pid4242 rw,user_id=0,group_id=0\n" +
		"37 25 7:3 / /tmp/with\\040space rw,noatime - ext4 /dev/loop3 rw\n" +
		"garbage\n"
	m := parseMountinfo(text)
	if len(m) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(m), m)
	}
	want := mountEntry{dev: "0:32", point: "/tmp/edge-bench-1/r1-02-slow-probe/card", fstype: "fuse.edge-bench-card", source: "pid4242"}
	if m[0] != want {
		t.Fatalf("got %+v, want %+v", m[0], want)
	}
	if m[1].point != "/tmp/with space" || m[1].source != "/dev/loop3" {
		t.Fatalf("escapes: got %+v", m[1])
	}
}

func TestStaleCards(t *testing.T) {
	mounts := []mountEntry{
		{point: "/a", fstype: "fuse.edge-bench-card", source: "pid10"}, // its bench runs
		{point: "/b", fstype: "fuse.edge-bench-card", source: "pid11"}, // its bench is gone
		{point: "/c", fstype: "fuse.other", source: "pid11"},           // not ours
		{point: "/d", fstype: "fuse.edge-bench-card", source: "junk"},  // ours, unreadable owner
	}
	got := staleCards(mounts, func(pid int) bool { return pid == 10 })
	if len(got) != 2 || got[0].point != "/b" || got[1].point != "/d" {
		t.Fatalf("stale: %+v, want /b and /d", got)
	}
}

// needRoot skips a test that mounts unless it runs as root; under CI it
// fails instead.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test mounts a FUSE card and a loop device: run it as root")
	}
	t.Skip("mounts a FUSE card and a loop device: root only (fails under CI)")
}

// TestSlowCardFlush: every fdatasync on ext4 on the card reaches the
// card's fsync as a flush, and so takes at least the flush's delay; close
// leaves no mount and no loop device behind.
func TestSlowCardFlush(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	const delay = 3 * time.Millisecond
	d, err := newSlowDisk(dir, filepath.Join(dir, "mnt"), delay, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev := d.fs.dev
	closed := false
	defer func() {
		if !closed {
			d.close()
		}
	}()
	before, err := d.card.syncs()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := timeSyncs(d.fs.mnt, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	after, err := d.card.syncs()
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < 20 {
		t.Fatalf("20 fdatasyncs reached the card as %d flushes", got)
	}
	for i, v := range ms {
		if v < float64(delay)/1e6 {
			t.Fatalf("fdatasync %d took %.2f ms, less than the card's flush (%v): it did not wait for the card", i, v, delay)
		}
	}
	d.close()
	closed = true
	assertGone(t, dir, dev)
}

// TestStaleCardCleared: a bench killed with its card mounted (SIGKILL: no
// cleanup runs) leaves the card, the loop device and the ext4 on it; the
// next run's clearStaleCards removes them.
func TestStaleCardCleared(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCardChild$")
	cmd.Env = append(os.Environ(), "EDGE_BENCH_CARD_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	var dev string
	var server int
	if _, err := fmt.Sscanf(line, "ready %s %d", &dev, &server); err != nil {
		t.Fatalf("child: %q: %v", line, err)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// The card's server dies with the child (Pdeathsig), a moment later.
	for i := 0; benchAlive(server); i++ {
		if i == 50 {
			t.Fatalf("the card's server (pid %d) outlived the bench that started it", server)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !mountedUnder(t, dir) {
		t.Fatal("the killed child left nothing mounted: the test does not test the clean-up")
	}
	done, err := clearStaleCards()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("removed: %s", strings.Join(done, ", "))
	assertGone(t, dir, dev)
}

// TestCardChild is TestStaleCardCleared's child: it mounts a slow disk,
// says so, and waits to be killed.
func TestCardChild(t *testing.T) {
	dir := os.Getenv("EDGE_BENCH_CARD_CHILD")
	if dir == "" {
		return // not a child: nothing to do
	}
	d, err := newSlowDisk(dir, filepath.Join(dir, "mnt"), time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A file held open on it, as an agent's store is.
	f, err := os.Create(filepath.Join(d.fs.mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Printf("ready %s %d\n", d.fs.dev, d.card.cmd.Process.Pid)
	time.Sleep(time.Minute)
}

func mountedUnder(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range parseMountinfo(string(b)) {
		if strings.HasPrefix(m.point, dir+"/") {
			return true
		}
	}
	return false
}

// assertGone: nothing is mounted under dir and dev is detached.
func assertGone(t *testing.T, dir, dev string) {
	t.Helper()
	if mountedUnder(t, dir) {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		var left []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, dir) {
				left = append(left, l)
			}
		}
		t.Fatalf("still mounted under %s:\n%s", dir, strings.Join(left, "\n"))
	}
	// Detaching a loop device is finished by the kernel when its last
	// user lets go; give it a moment.
	backing := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
	for i := 0; ; i++ {
		if _, err := os.Stat(backing); os.IsNotExist(err) {
			return
		}
		if i == 50 {
			t.Fatalf("%s is still attached", dev)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
