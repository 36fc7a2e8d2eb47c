package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A slow card is a block device with an SD card's latency, built from the
// kernel's own parts except the last: a FUSE file system holds one file,
// the card's image, whose fsync waits syncDelay (and each write
// writeDelay) before it returns. A loop device on that file and ext4 on
// the loop device are the real kernel's, so every cache flush ext4 asks of
// the device (fdatasync, a journal commit) goes loop → vfs_fsync of the
// file → FUSE_FSYNC → the delay, one request at a time as loop's worker
// issues them, as a card takes them. This kernel has neither dm-delay nor
// null_blk nor ublk, and blkio throttling is a rate (a lone request passes
// at once, a busy device stalls for a 100 ms slice), not a latency.
//
// The file system is served by a child process (this binary again, see
// serveCardIfAsked), not by the bench itself: a bench thread blocked in an
// fdatasync on the card cannot exit until the flush is answered, so a
// bench that served its own card and was killed mid-sync would wait on
// itself for ever. The child dies with the bench (Pdeathsig) once the
// bench's threads are gone, and its death ends the connection: whatever is
// left gets EIO, never a hang.
//
// The image itself lives on the machine's disk and is not synced there:
// it is thrown away after the run, and the host disk's own syncs would add
// the host's noise to a latency that is meant to be the card's.

// cardFSName is the FUSE subtype: mounts show as "fuse.edge-bench-card"
// with the serving process's pid as their source, so a later run can tell
// a mount whose server died from one another bench is using.
const cardFSName = "edge-bench-card"

// cardFile is the file's name inside the mount.
const cardFile = "card.img"

// The child's orders, in its environment.
const (
	cardEnvImage = "EDGE_BENCH_CARD_IMAGE"
	cardEnvMount = "EDGE_BENCH_CARD_MOUNT"
	cardEnvSync  = "EDGE_BENCH_CARD_SYNC"
	cardEnvWrite = "EDGE_BENCH_CARD_WRITE"
)

// serveCardIfAsked is the child's whole life, when its environment says it
// is one: mount the card (mount(2): we are root; no fusermount), say
// "ready", answer each "flushes" line on stdin with the count so far, and
// at stdin's end unmount and exit. It returns only in a process that is
// not a card's server.
func serveCardIfAsked() {
	img := os.Getenv(cardEnvImage)
	if img == "" {
		return
	}
	err := serveCard(img, os.Getenv(cardEnvMount), os.Getenv(cardEnvSync), os.Getenv(cardEnvWrite))
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// slowCard is one mounted card, as the bench sees it: its server process
// and the two pipes to it.
type slowCard struct {
	mnt  string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex // one question at a time
	undo func()     // drops the emergency cleanup
	once sync.Once
}

// mountSlowCard serves backing (an image already made, of fixed size) as
// mnt/card.img from a child process, and registers the mount for removal
// if the bench is interrupted. The child's stderr (go-fuse's complaints)
// goes to logPath.
func mountSlowCard(backing, mnt, logPath string, syncDelay, writeDelay time.Duration) (*slowCard, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), cardEnvImage+"="+backing, cardEnvMount+"="+mnt,
		cardEnvSync+"="+syncDelay.String(), cardEnvWrite+"="+writeDelay.String())
	cmd.Stderr = logf
	// It dies with the bench: then the connection ends and nothing can
	// wait on the card any more.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	made := making()
	defer made()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &slowCard{mnt: mnt, cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	// Registered before the mount exists: detaching a mount point that
	// holds nothing yet fails harmlessly.
	c.undo = atExit(c.detach)
	line, err := c.out.ReadString('\n')
	if line = strings.TrimSpace(line); line != "ready" {
		c.undo()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if line == "" {
			return nil, fmt.Errorf("the card's server on %s said nothing (%v); see %s", mnt, err, logPath)
		}
		return nil, fmt.Errorf("the card's server on %s: %s", mnt, strings.TrimPrefix(line, "error: "))
	}
	return c, nil
}

// path is the card's image, as the loop device opens it.
func (c *slowCard) path() string { return filepath.Join(c.mnt, cardFile) }

// syncs is how many cache flushes the card has served.
func (c *slowCard) syncs() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, "flushes\n"); err != nil {
		return 0, fmt.Errorf("the card's server on %s: %w", c.mnt, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("the card's server on %s: %w", c.mnt, err)
	}
	return strconv.ParseInt(strings.TrimSpace(line), 10, 64)
}

// close has the server unmount and exit (the loop device on the card must
// be detached first).
func (c *slowCard) close() error {
	var err error
	c.once.Do(func() {
		c.undo()
		c.in.Close()
		done := make(chan error, 1)
		go func() { done <- c.cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			err = fmt.Errorf("the card's server on %s did not exit within 10 s of its stdin closing", c.mnt)
			<-done
		}
		if err != nil {
			// Whatever it left: out of the tree, its connection is gone.
			_ = unix.Unmount(c.mnt, unix.MNT_DETACH)
		}
	})
	return err
}

// detach is close for an interrupted bench: it must not wait. The server
// dies with the bench, and the connection with it.
func (c *slowCard) detach() {
	c.once.Do(func() { _ = unix.Unmount(c.mnt, unix.MNT_DETACH) })
}

// mountEntry is one line of /proc/self/mountinfo, the fields used here.
type mountEntry struct {
	dev    string // major:minor
	point  string
	fstype string
	source string
}

// parseMountinfo reads /proc/PID/mountinfo's format: the mount point is
// the 5th field (octal escapes for space, tab, newline, backslash), the
// file system type and source follow the " - " separator.
func parseMountinfo(text string) []mountEntry {
	var out []mountEntry
	for _, line := range strings.Split(text, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 2 {
			continue
		}
		out = append(out, mountEntry{dev: a[2], point: unescapeMount(a[4]), fstype: b[0], source: unescapeMount(b[1])})
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// staleCards are the card mounts whose serving process is gone (or is no
// longer an edge-bench): what a killed bench leaves behind.
func staleCards(mounts []mountEntry, alive func(pid int) bool) []mountEntry {
	var out []mountEntry
	for _, m := range mounts {
		if m.fstype != "fuse."+cardFSName {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(m.source, "pid"))
		if err != nil || !strings.HasPrefix(m.source, "pid") || !alive(pid) {
			out = append(out, m)
		}
	}
	return out
}

// benchAlive: pid is a running edge-bench (or its test binary,
// edge-bench.test).
func benchAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix(string(b), "edge-bench")
}

// clearStaleCards removes what a killed bench left of its slow cards: for
// each card mount whose server is gone, the ext4 mounts of the loop
// devices on its image, the loop devices, and the card mount itself. It
// returns what it removed.
func clearStaleCards() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	mounts := parseMountinfo(string(b))
	var done []string
	for _, card := range staleCards(mounts, benchAlive) {
		// A server that is alive but no longer an edge-bench (pid
		// reused) or hung: abort its connection so nothing waits on it.
		if _, minor, ok := strings.Cut(card.dev, ":"); ok {
			_ = os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0o200)
		}
		for _, dev := range loopsOn(card.point + "/") {
			for _, m := range mounts {
				if m.source == dev {
					_ = unix.Unmount(m.point, unix.MNT_DETACH)
					done = append(done, m.point)
				}
			}
			_ = runTool("losetup", "-d", dev)
			done = append(done, dev)
		}
		if err := unix.Unmount(card.point, unix.MNT_DETACH); err != nil {
			return done, fmt.Errorf("unmount the stale card %s: %w", card.point, err)
		}
		done = append(done, card.point)
	}
	return done, nil
}

// loopsOn lists the loop devices whose backing file is under dir.
func loopsOn(dir string) []string {
	var out []string
	ents, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range ents {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		if sc.Scan() && strings.HasPrefix(sc.Text(), dir) {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p))))
		}
		f.Close()
	}
	return out
}
