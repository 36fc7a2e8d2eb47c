package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/agentstatus"
)

// vmConfig is one boot of the guest.
type vmConfig struct {
	qemu   string
	arch   string // which agent binary the guest runs: arm64 or armv6
	kernel string
	initrd string
	disk   string
	dir    string // logs and the control socket
	name   string // for file names: "arm64-boot1"
	smp    int
	// config picks the agent's config in the guest: "" the default board,
	// "inputs" the input checks' (board.go).
	config string
	// idle are input lines' levels set through qtest right after QEMU
	// starts, before the kernel runs: the wire's resting level (a pull-up
	// is 1; QEMU's PL061 models no pulls on its inputs).
	idle map[int]int
}

// vm is a running qemu-system-aarch64: the virt board under TCG with the
// Debian kernel, our initramfs and a persistent data disk. Its serial
// console is stdout, the PL061 trace stderr, and the control channel a
// virtio serial port on a unix socket.
type vm struct {
	cfg     vmConfig
	cmd     *exec.Cmd
	started time.Time
	trace   *timeline // outputs and resets
	inputs  *timeline // pl061_input_change: the levels the rig drove

	qtMu sync.Mutex // one qtest exchange at a time
	qt   net.Conn
	qtR  *bufio.Reader

	consoleMu sync.Mutex
	console   []consoleLine

	ctl     net.Conn
	ctlMu   sync.Mutex // one write at a time
	pendMu  sync.Mutex
	pending map[int]chan string
	nextID  int

	done    chan struct{}
	waitErr error
}

type consoleLine struct {
	At   time.Time
	Text string
}

// qemuArgs is the command line of one boot. -trace pl061_set_output
// prints every level the PL061 puts out; -msg timestamp=on makes QEMU's
// log backend stamp each trace line with the host's clock at the MMIO
// write (see parseTrace). -qtest opens QEMU's test protocol on a unix
// socket beside TCG (the guest runs as usual): its set_irq_in drives the
// PL061's input lines from outside, and pl061_input_change stamps each
// level as QEMU applies it (setInput). cache=unsafe: QEMU skips the host's fsync, but
// every write the guest made reaches the image file, so the disk survives
// a SIGKILL of QEMU the way an SD card survives a power cut.
func qemuArgs(c vmConfig, ctlSock, qtSock string) []string {
	extra := ""
	if c.config != "" {
		extra = " hil.config=" + c.config
	}
	return []string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", strconv.Itoa(c.smp), "-m", "512",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", c.kernel, "-initrd", c.initrd,
		"-append", "console=ttyAMA0 panic=-1 quiet hil.arch=" + c.arch + extra,
		"-drive", "if=none,id=data,format=raw,cache=unsafe,file=" + c.disk,
		"-device", "virtio-blk-pci,drive=data",
		// romfile=: no iPXE option ROM (the guest boots no firmware).
		"-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=ctl,path=" + ctlSock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=ctl,name=hil",
		"-trace", "pl061_set_output", "-trace", "pl061_reset", "-trace", "pl061_input_change", "-msg", "timestamp=on",
		"-qtest", "unix:" + qtSock + ",server=on,wait=off", "-qtest-log", "/dev/null",
	}
}

// startVM boots the guest and connects the control channel.
func startVM(c vmConfig) (*vm, error) {
	sock := filepath.Join(c.dir, c.name+".ctl")
	qtSock := filepath.Join(c.dir, c.name+".qtest")
	_ = os.Remove(sock)
	_ = os.Remove(qtSock)
	v := &vm{cfg: c, trace: &timeline{}, inputs: &timeline{}, pending: map[int]chan string{}, done: make(chan struct{})}
	v.cmd = exec.Command(c.qemu, qemuArgs(c, sock, qtSock)...)
	// QEMU dies with the rig, whatever kills the rig.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := v.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := v.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	conLog, err := os.Create(filepath.Join(c.dir, c.name+".console.log"))
	if err != nil {
		return nil, err
	}
	trLog, err := os.Create(filepath.Join(c.dir, c.name+".trace.log"))
	if err != nil {
		conLog.Close()
		return nil, err
	}
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		conLog.Close()
		trLog.Close()
		return nil, fmt.Errorf("start %s: %w", c.qemu, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); defer conLog.Close(); v.readConsole(stdout, conLog) }()
	go func() { defer readers.Done(); defer trLog.Close(); v.readTrace(stderr, trLog) }()
	go func() {
		readers.Wait() // Wait after the pipes are drained (os/exec's rule)
		v.waitErr = v.cmd.Wait()
		close(v.done)
	}()
	if err := v.dialQtest(qtSock); err != nil {
		v.kill()
		return nil, err
	}
	for line, level := range c.idle {
		if _, err := v.setInput(line, level); err != nil {
			v.kill()
			return nil, err
		}
	}
	if err := v.dialControl(sock); err != nil {
		v.kill()
		return nil, err
	}
	return v, nil
}

// readTrace parses the trace as QEMU writes it: the stamp inside the line
// is when the guest wrote the register; the arrival time is a fallback.
func (v *vm) readTrace(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(log, line)
		if e, ok := parseTrace(line, time.Now()); ok {
			if e.Input {
				v.inputs.Add(e)
			} else {
				v.trace.Add(e)
			}
		}
	}
}

func (v *vm) readConsole(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		now := time.Now()
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintf(log, "%s %s\n", now.Format("15:04:05.000"), line)
		v.consoleMu.Lock()
		v.console = append(v.console, consoleLine{At: now, Text: line})
		v.consoleMu.Unlock()
	}
}

// consoleFind returns the first console line containing s and when it
// arrived.
func (v *vm) consoleFind(s string) (consoleLine, bool) {
	v.consoleMu.Lock()
	defer v.consoleMu.Unlock()
	for _, l := range v.console {
		if strings.Contains(l.Text, s) {
			return l, true
		}
	}
	return consoleLine{}, false
}

// consoleCount is how many console lines so far contain s.
func (v *vm) consoleCount(s string) int {
	v.consoleMu.Lock()
	defer v.consoleMu.Unlock()
	n := 0
	for _, l := range v.console {
		if strings.Contains(l.Text, s) {
			n++
		}
	}
	return n
}

// waitConsoleCount waits until n console lines contain s.
func (v *vm) waitConsoleCount(s string, n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for v.consoleCount(s) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("no console line %q within %v:\n%s", s, d, v.consoleTail(15))
		}
		select {
		case <-v.done:
			return fmt.Errorf("qemu exited (%v)", v.waitErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (v *vm) consoleTail(n int) string {
	v.consoleMu.Lock()
	defer v.consoleMu.Unlock()
	lines := v.console
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("      | " + l.Text + "\n")
	}
	return b.String()
}

// dialQtest connects to QEMU's qtest socket (made at start, like the
// control socket).
func (v *vm) dialQtest(sock string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			v.qt, v.qtR = c, bufio.NewReader(c)
			return nil
		}
		select {
		case <-v.done:
			return fmt.Errorf("qemu exited at start (%v):\n%s", v.waitErr, v.consoleTail(20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("qtest socket %s: %w (does this QEMU have -qtest?)", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pl061 is the QOM path of the board's PL061, as its reset in the trace
// names it (QEMU prints the reset at start, before the guest runs).
func (v *vm) pl061() (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range v.trace.All() {
			if e.Reset() {
				return e.Dev, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no pl061_reset in QEMU's trace within 10 s: cannot name the PL061 for qtest")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setInput drives PL061 input line to level from outside the guest, as a
// button or a contact on the pin would: qtest's set_irq_in on the
// controller's gpio-in line. The kernel's pl061 driver gets the edge
// interrupt and gpiolib turns it into a line event for whoever requested
// the line. QEMU ignores it while the guest drives the line as an output.
// It returns the host's time just before the request; pl061_input_change
// in the trace (inputChange) is when QEMU applied it.
func (v *vm) setInput(line, level int) (time.Time, error) {
	dev, err := v.pl061()
	if err != nil {
		return time.Time{}, err
	}
	v.qtMu.Lock()
	defer v.qtMu.Unlock()
	_ = v.qt.SetDeadline(time.Now().Add(5 * time.Second))
	t := time.Now()
	if _, err := fmt.Fprintf(v.qt, "set_irq_in %s unnamed-gpio-in %d %d\n", dev, line, level); err != nil {
		return t, fmt.Errorf("qtest: %w", err)
	}
	a, err := v.qtR.ReadString('\n')
	if err != nil {
		return t, fmt.Errorf("qtest set_irq_in: %w", err)
	}
	if strings.TrimSpace(a) != "OK" {
		return t, fmt.Errorf("qtest set_irq_in %s %d %d: %q", dev, line, level, strings.TrimSpace(a))
	}
	return t, nil
}

// inputChange is the trace's stamp of the first input change of line to
// level at or after t (QEMU prints it as it applies set_irq_in; wait
// bounds how long the trace reader may lag).
func (v *vm) inputChange(line, level int, t time.Time, wait time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(wait)
	for {
		// The trace's stamps are microseconds: allow the one t fell in.
		for _, e := range v.inputs.All() {
			if e.Line == line && e.Level == level && !e.At.Before(t.Truncate(time.Microsecond)) {
				return e.At, true
			}
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialControl connects to the virtio serial port's socket (QEMU creates
// it at start, before the guest boots).
func (v *vm) dialControl(sock string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			v.ctl = c
			go v.readControl(c)
			return nil
		}
		select {
		case <-v.done:
			return fmt.Errorf("qemu exited at start (%v):\n%s", v.waitErr, v.consoleTail(20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("control socket %s: %w", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (v *vm) readControl(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		rest, ok := strings.CutPrefix(line, "@@")
		if !ok {
			continue
		}
		idStr, text, _ := strings.Cut(rest, " ")
		id, err := strconv.Atoi(idStr)
		if err != nil {
			continue
		}
		v.pendMu.Lock()
		ch := v.pending[id]
		delete(v.pending, id)
		v.pendMu.Unlock()
		if ch != nil {
			ch <- text
		}
	}
}

// ask sends one request over the control channel and returns the guest's
// answer ("OK …" or "ERR …", tabs for newlines).
func (v *vm) ask(cmd string, timeout time.Duration) (ok bool, text string, err error) {
	ch := make(chan string, 1)
	v.pendMu.Lock()
	v.nextID++
	id := v.nextID
	v.pending[id] = ch
	v.pendMu.Unlock()
	v.ctlMu.Lock()
	_, err = fmt.Fprintf(v.ctl, "%d %s\n", id, cmd)
	v.ctlMu.Unlock()
	if err != nil {
		return false, "", fmt.Errorf("control channel: %w", err)
	}
	select {
	case a := <-ch:
		r, t, _ := strings.Cut(a, " ")
		return r == "OK", strings.TrimRight(t, "\t "), nil
	case <-v.done:
		return false, "", fmt.Errorf("qemu exited (%v)", v.waitErr)
	case <-time.After(timeout):
		v.pendMu.Lock()
		delete(v.pending, id)
		v.pendMu.Unlock()
		return false, "", fmt.Errorf("guest did not answer %q within %v", cmd, timeout)
	}
}

// guestStatus is the part of the agent's status document
// (docs/design.md#status-document, `status -json`) the checks read.
type guestStatus = agentstatus.Status

// status runs `edge-agent status -json` inside the guest.
func (v *vm) status() (guestStatus, error) {
	var st guestStatus
	ok, text, err := v.ask("status", 10*time.Second)
	if err != nil {
		return st, err
	}
	if !ok {
		return st, fmt.Errorf("edge-agent status -json in the guest failed: %s", text)
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return st, fmt.Errorf("edge-agent status -json: %w: %q", err, text)
	}
	return st, nil
}

// waitStatus polls the status from inside until ok accepts it.
func (v *vm) waitStatus(d time.Duration, what string, ok func(guestStatus) bool) (guestStatus, error) {
	st, err := agentstatus.Wait(v.status, 50*time.Millisecond, v.done, d, what, ok)
	if errors.Is(err, agentstatus.ErrGone) {
		return st, fmt.Errorf("qemu exited (%v) waiting for %s:\n%s", v.waitErr, what, v.consoleTail(25))
	}
	if err != nil {
		return st, fmt.Errorf("%v\n%s", err, v.consoleTail(25))
	}
	return st, nil
}

// kill is a hard power cut: SIGKILL to QEMU, nothing in the guest runs on.
func (v *vm) kill() {
	if v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
	}
	<-v.done
	if v.ctl != nil {
		v.ctl.Close()
	}
	if v.qt != nil {
		v.qt.Close()
	}
}
