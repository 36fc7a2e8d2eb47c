package main

// The gateway: qemu-system-aarch64's virt board under TCG booting the card
// (the kernel and initramfs from its boot partition, root on its ext4
// partition) to systemd, reached the way an operator reaches a gateway:
// over ssh (QEMU's user network forwards a port on the host's loopback to
// the guest's sshd) and MQTT. Its PL061 GPIO lines are watched from outside
// through QEMU's pl061_set_output trace.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type gateway struct {
	card    *card
	qemu    string
	img     string // this run's copy of the card
	dir     string
	sshPort int
	known   string // known_hosts with the guest's host key
	boots   int

	// one boot
	cmd     *exec.Cmd
	started time.Time
	trace   *timeline
	done    chan struct{}
	waitErr error
}

// qemuArgs: the virt board as make hil runs it (cortex-a72, PL061 at its
// reset levels, traced with the host's clock), with the card as a virtio
// disk and a NIC on QEMU's user network (the host is 10.0.2.2 inside).
// cache=unsafe: every write the guest made is in the image file when QEMU
// is killed, as on an SD card when the power goes (only the host's own
// fsync is skipped).
func (g *gateway) qemuArgs() []string {
	return []string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
		"-display", "none", "-monitor", "none", "-serial", "file:" + filepath.Join(g.dir, fmt.Sprintf("boot%d.console.log", g.boots)),
		"-no-reboot",
		"-kernel", g.card.vmlinuz(), "-initrd", g.card.initrd(),
		"-append", "console=ttyAMA0 root=/dev/vda2 rootwait rw panic=-1",
		"-drive", "if=none,id=card,format=raw,cache=unsafe,file=" + g.img,
		"-device", "virtio-blk-pci,drive=card",
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", g.sshPort),
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-trace", "pl061_set_output", "-trace", "pl061_reset", "-msg", "timestamp=on",
	}
}

// boot starts QEMU and returns once the guest's sshd answers.
func (g *gateway) boot(timeout time.Duration) (time.Duration, error) {
	g.boots++
	g.trace = &timeline{}
	g.done = make(chan struct{})
	g.cmd = exec.Command(g.qemu, g.qemuArgs()...)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	trLog, err := os.Create(filepath.Join(g.dir, fmt.Sprintf("boot%d.trace.log", g.boots)))
	if err != nil {
		return 0, err
	}
	g.started = time.Now()
	if err := g.cmd.Start(); err != nil {
		trLog.Close()
		return 0, fmt.Errorf("start %s: %w", g.qemu, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer trLog.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(trLog, sc.Text())
			if e, ok := parseTrace(sc.Text(), time.Now()); ok {
				g.trace.Add(e)
			}
		}
	}()
	go func() {
		<-read
		g.waitErr = g.cmd.Wait()
		close(g.done)
	}()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := g.ssh(10*time.Second, "true"); err == nil {
			return time.Since(g.started), nil
		}
		select {
		case <-g.done:
			return 0, fmt.Errorf("qemu exited during boot (%v):\n%s", g.waitErr, g.consoleTail(20))
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no ssh login within %v:\n%s", timeout, g.consoleTail(20))
		}
		time.Sleep(time.Second)
	}
}

// cut is the power cut: SIGKILL to QEMU; nothing in the guest runs on.
func (g *gateway) cut() {
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	g.cmd = nil
}

func (g *gateway) console() string {
	b, _ := os.ReadFile(filepath.Join(g.dir, fmt.Sprintf("boot%d.console.log", g.boots)))
	return string(b)
}

func (g *gateway) consoleTail(n int) string {
	var b strings.Builder
	for _, l := range strings.Split(tailLines(g.console(), n), "\n") {
		b.WriteString("      | " + strings.TrimRight(l, "\r") + "\n")
	}
	return b.String()
}

// sshOpts are the options ssh, scp and deploy.sh get: the run's key, the
// guest's host key checked strictly, never a password prompt.
func (g *gateway) sshOpts() []string {
	return []string{
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + g.known, "-o", "LogLevel=ERROR",
		"-o", "Port=" + strconv.Itoa(g.sshPort), "-i", g.card.key(),
	}
}

// ssh runs a shell command line on the gateway as root and returns its
// stdout; an error carries the exit status and stderr.
func (g *gateway) ssh(timeout time.Duration, cmdline string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(append([]string{"-n", "-o", "ConnectTimeout=5"}, g.sshOpts()...), "root@127.0.0.1", cmdline)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("ssh %q: no answer within %v", cmdline, timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("ssh %q: %v: %s", cmdline, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// show reads systemd properties of a unit (systemctl show).
func (g *gateway) show(unit string, props ...string) (map[string]string, error) {
	out, err := g.ssh(20*time.Second, "systemctl show "+unit+" -p "+strings.Join(props, ","))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// copySparse copies the cached card for this run (cp keeps the holes).
func copySparse(src, dst string) error {
	return runCmd("cp", "--sparse=always", src, dst)
}
