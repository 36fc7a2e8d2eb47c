package scripts

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// A gateway for deploy.sh is a user account on this machine, reached by a
// real sshd on 127.0.0.1: its home holds the agent (bin/edge-agent), the
// live config (etc/), the data directory, and a stand-in for systemd, since
// these machines have none: svc/supervise keeps bin/edge-agent running
// (restarting it when it exits, as Restart= does) and svc/restart, the
// --restart override, makes it start the binary now in place and waits for
// its control socket to answer (as Type=notify makes systemctl wait for
// READY=1), failing if it does not.

const superviseScript = `#!/bin/sh
# Keeps bin/edge-agent running; its pid in svc/pid.
cd "$HOME" || exit 1
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM INT
while :; do
	bin/edge-agent run -config etc/config.toml >>svc/agent.log 2>&1 &
	child=$!
	echo "$child" >svc/pid.tmp && mv svc/pid.tmp svc/pid
	wait "$child"
	sleep 0.2
done
`

const restartScript = `#!/bin/sh
# systemctl restart, for svc/supervise: stop the agent, wait for the next
# one to answer on its control socket (READY), fail if it does not in 5 s.
# (Through sudo HOME is root's: the gateway's directory is where this is.)
cd "$(dirname "$0")/.." || exit 1
old=$(cat svc/pid 2>/dev/null)
[ -n "$old" ] && kill -TERM "$old" 2>/dev/null
i=0
while [ $i -lt 50 ]; do
	new=$(cat svc/pid 2>/dev/null)
	if [ -n "$new" ] && [ "$new" != "$old" ] && bin/edge-agent status -config etc/config.toml >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "edge-agent did not come up (svc/agent.log)" >&2
exit 1
`

// crashScript passes deploy.sh's checks and dies at start.
const crashScript = `#!/bin/sh
case $1 in
version) echo "edge-agent v-crash (commit 000000000000, go, linux/amd64)" ;;
config) echo "$3: ok" ;;
run) echo "panic: simulated crash at start" >&2; exit 2 ;;
*) echo "edge-agent: the daemon is not running" >&2; exit 1 ;;
esac
`

// neverScript is a real agent that never connects: for run, it takes a
// copy of the live config whose broker is a port nobody listens on.
const neverScript = `#!/bin/sh
[ "$1" = run ] && exec "$HOME/never/edge-agent" run -config "$HOME/never/config.toml"
exec "$HOME/never/edge-agent" "$@"
`

// hangScript is the new agent, except that `status -json`, deploy.sh's
// health check, never answers, as when the daemon's control socket accepts
// and its loop is stuck. Plain `status`, which the rig's svc/restart waits
// for, still answers: the restart succeeds and the health check hangs.
const hangScript = `#!/bin/sh
[ "$1 $2" = "status -json" ] && exec sleep 3600
exec "$HOME/never/edge-agent" "$@"
`

// rejectScript runs but refuses the live config.
const rejectScript = `#!/bin/sh
case $1 in
version) echo "edge-agent v-reject (commit 000000000000, go, linux/amd64)" ;;
*) echo "$4:3: mqtt.brokr: unknown key"; exit 1 ;;
esac
`

type gateway struct {
	alias, user, home string
	uid, gid          int
	sup               *exec.Cmd
	supDone           chan struct{}
}

type deployRig struct {
	t         *testing.T
	dir       string
	sshConfig string
	gws       []*gateway
	old, new  string // agent binaries, versions v-old and v-new
}

// buildAgent builds the edge-agent for this machine with a version stamp.
func buildAgent(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "edge-agent-"+version)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/edge-agent")
	cmd.Dir = repoRoot
	cmd.Env = append(cleanEnv(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newDeployRig(t *testing.T, userPrefix string, n int) *deployRig {
	t.Helper()
	needRoot(t)
	need(t, "openssh-server", "sshd")
	need(t, "openssh-client", "ssh", "scp", "ssh-keygen")
	need(t, "passwd", "useradd", "userdel", "usermod")
	r := &deployRig{t: t, dir: t.TempDir()}
	// The test's files are read by the gateways' users.
	if err := os.Chmod(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.old = buildAgent(t, r.dir, "v-old")
	r.new = buildAgent(t, r.dir, "v-new")

	pki := agenttest.MustPKI(t)
	broker := agenttest.MustMosquitto(t, agenttest.MosquittoOptions{PKI: pki, Users: map[string]string{"gw": "gw-pass"}})
	deadPort := freePort(t)

	// Keys and sshd.
	sh(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(r.dir, "host_key"))
	sh(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(r.dir, "id"))
	clientPub := readText(t, filepath.Join(r.dir, "id.pub"))

	for i := 1; i <= n; i++ {
		gw := &gateway{alias: fmt.Sprintf("gw%d", i), user: fmt.Sprintf("%s%d", userPrefix, i)}
		r.addUser(gw)
		r.gws = append(r.gws, gw)
		files := map[string]string{
			".ssh/authorized_keys": clientPub,
			"svc/supervise":        superviseScript,
			"svc/restart":          restartScript,
			"never/edge-agent":     neverScript, // replaced below by the real binary
			"etc/mqtt.pass":        "gw-pass\n",
			"etc/ca.pem":           readText(t, pki.CAFile),
		}
		for name, content := range files {
			writeFile(t, filepath.Join(gw.home, name), content, 0o700)
		}
		config := func(brokerURL string) string {
			return fmt.Sprintf("device_id = %q\ndata_dir = %q\n\n[mqtt]\nbroker = %q\nusername = \"gw\"\npassword_file = %q\nca_file = %q\nkeepalive = \"5s\"\n\n[hw]\nbackend = \"sim\"\n",
				"deploy-"+gw.alias, filepath.Join(gw.home, "data"), brokerURL,
				filepath.Join(gw.home, "etc/mqtt.pass"), filepath.Join(gw.home, "etc/ca.pem"))
		}
		writeFile(t, filepath.Join(gw.home, "etc/config.toml"), config(broker.URL), 0o600)
		writeFile(t, filepath.Join(gw.home, "never/config.toml"), config(fmt.Sprintf("tls://127.0.0.1:%d", deadPort)), 0o600)
		copyFile(t, r.new, filepath.Join(gw.home, "never/edge-agent"), 0o755)
		copyFile(t, r.old, filepath.Join(gw.home, "bin/edge-agent"), 0o755)
		for _, d := range []string{".ssh", "etc", "svc", "never", "bin"} {
			sh(t, "chown", "-R", gw.user+":", filepath.Join(gw.home, d))
		}
		if err := os.Chmod(filepath.Join(gw.home, ".ssh/authorized_keys"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := r.startSSHD()

	var conf strings.Builder
	for _, gw := range r.gws {
		fmt.Fprintf(&conf, "Host %s\n  HostName 127.0.0.1\n  Port %d\n  User %s\n", gw.alias, port, gw.user)
	}
	fmt.Fprintf(&conf, "Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
		filepath.Join(r.dir, "id"), filepath.Join(r.dir, "known_hosts"))
	r.sshConfig = filepath.Join(r.dir, "ssh_config")
	writeFile(t, r.sshConfig, conf.String(), 0o600)
	hostPub := strings.TrimSpace(readText(t, filepath.Join(r.dir, "host_key.pub")))
	writeFile(t, filepath.Join(r.dir, "known_hosts"), fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostPub), 0o600)

	for _, gw := range r.gws {
		r.supervise(gw)
	}
	for _, gw := range r.gws {
		r.waitRunning(gw, r.old, "v-old")
	}
	return r
}

// addUser makes the gateway's login (removed, with its home, on cleanup).
func (r *deployRig) addUser(gw *gateway) {
	t := r.t
	if _, err := user.Lookup(gw.user); err == nil {
		_, _ = shErr("userdel", "-r", gw.user) // left by a killed run
	}
	sh(t, "useradd", "-m", "-s", "/bin/sh", gw.user)
	// "*", not the locked "!": sshd without PAM refuses locked accounts.
	sh(t, "usermod", "-p", "*", gw.user)
	t.Cleanup(func() { _, _ = shErr("userdel", "-r", gw.user) })
	u, err := user.Lookup(gw.user)
	if err != nil {
		t.Fatal(err)
	}
	gw.home = u.HomeDir
	gw.uid, _ = strconv.Atoi(u.Uid)
	gw.gid, _ = strconv.Atoi(u.Gid)
}

// startSSHD starts /usr/sbin/sshd on a free port of 127.0.0.1 and returns
// the port once it greets.
func (r *deployRig) startSSHD() int {
	t := r.t
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // its privilege separation directory
		t.Fatal(err)
	}
	sshd, err := lookTool("sshd")
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, gw := range r.gws {
		users = append(users, gw.user)
	}
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		conf := filepath.Join(r.dir, "sshd_config")
		writeFile(t, conf, fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers %s
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, filepath.Join(r.dir, "host_key"), filepath.Join(r.dir, "sshd.pid"), strings.Join(users, " ")), 0o600)
		cmd := exec.Command(sshd, "-D", "-e", "-f", conf)
		var log syncBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			if t.Failed() {
				t.Logf("sshd log:\n%s", tailText(log.String(), 40))
			}
		})
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			select {
			case <-done:
				if attempt < 3 && strings.Contains(log.String(), "Address already in use") {
					goto retry
				}
				t.Fatalf("sshd exited:\n%s", log.String())
			default:
			}
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				banner := make([]byte, 4)
				_, err := c.Read(banner)
				c.Close()
				if err == nil && string(banner) == "SSH-" {
					return port
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("sshd did not greet on 127.0.0.1:%d:\n%s", port, log.String())
	retry:
	}
}

// supervise starts the gateway's svc/supervise as its user (stopped with its
// agent on cleanup).
func (r *deployRig) supervise(gw *gateway) {
	t := r.t
	cmd := exec.Command("/bin/sh", filepath.Join(gw.home, "svc/supervise"))
	cmd.Dir = gw.home
	cmd.Env = []string{"HOME=" + gw.home, "USER=" + gw.user, "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(gw.uid), Gid: uint32(gw.gid)},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gw.sup, gw.supDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(gw.supDone) }()
	t.Cleanup(func() {
		pg := -cmd.Process.Pid
		_ = syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-gw.supDone:
		case <-time.After(10 * time.Second):
		}
		_ = syscall.Kill(pg, syscall.SIGKILL) // whatever of the group is left
		<-gw.supDone
		if t.Failed() {
			t.Logf("%s agent log:\n%s", gw.alias, tailText(readTextOr(filepath.Join(gw.home, "svc/agent.log")), 30))
		}
	})
}

// running returns the pid of the gateway's agent and the SHA-256 of the
// executable it runs.
func (r *deployRig) running(gw *gateway) (int, string, error) {
	b, err := os.ReadFile(filepath.Join(gw.home, "svc/pid"))
	if err != nil {
		return 0, "", err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, "", err
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if _, err := os.Stat(exe); err != nil {
		return pid, "", err
	}
	return pid, fileSHA256(r.t, exe), nil
}

// status asks the gateway's agent, as its user would.
func (r *deployRig) status(gw *gateway) string {
	out, _ := shErr("setpriv", "--reuid="+strconv.Itoa(gw.uid), "--regid="+strconv.Itoa(gw.gid), "--clear-groups",
		filepath.Join(gw.home, "bin/edge-agent"), "status", "-json", "-config", filepath.Join(gw.home, "etc/config.toml"))
	return out
}

// waitRunning waits until the gateway runs binary and reports version
// connected.
func (r *deployRig) waitRunning(gw *gateway, binary, version string) {
	t := r.t
	t.Helper()
	want := fileSHA256(t, binary)
	var got, st string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, got, _ = r.running(gw)
		st = r.status(gw)
		if got == want && strings.Contains(st, `"version":"`+version+`"`) && strings.Contains(st, `"connected":true`) {
			return
		}
	}
	t.Fatalf("%s does not run %s connected (exe sha256 %s, want %s); status %s", gw.alias, version, got, want, st)
}

// checkRunning fails unless the gateway runs binary, connected, now.
func (r *deployRig) checkRunning(gw *gateway, binary, version string) {
	t := r.t
	t.Helper()
	_, got, err := r.running(gw)
	if want := fileSHA256(t, binary); got != want {
		t.Errorf("%s runs an executable with sha256 %s (%v), want %s (%s)", gw.alias, got, err, want, version)
	}
	if st := r.status(gw); !strings.Contains(st, `"version":"`+version+`"`) || !strings.Contains(st, `"connected":true`) {
		t.Errorf("%s status: %s, want %s connected", gw.alias, st, version)
	}
}

// deploy runs deploy.sh with the rig's ssh config and the gateways' layout.
func (r *deployRig) deploy(args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	return r.deployWithin(3*time.Minute, args...)
}

// deployWithin is deploy, failing the test and killing deploy.sh (and its
// ssh) if it has not finished within limit.
func (r *deployRig) deployWithin(limit time.Duration, args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	base := []string{"-F", r.sshConfig, "-o", "ConnectTimeout=5",
		"--remote-bin", "bin/edge-agent", "--config", "etc/config.toml",
		"--restart", "sh svc/restart", "--timeout", "4", "--settle", "1"}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "deploy.sh"), append(base, args...)...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	start := time.Now()
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		r.t.Errorf("deploy.sh %s did not finish within %v (killed); output so far:\n%s", strings.Join(args, " "), limit, o.String())
		return o.String(), e.String(), -1
	}
	if err != nil && code < 0 {
		r.t.Fatalf("deploy.sh: %v", err)
	}
	r.t.Logf("deploy.sh %s (%v, exit %d):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), code, o.String())
	return o.String(), e.String(), code
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// deploy.sh against real sshd logins: a binary that crashes at start and one
// that never connects are rolled back (the old binary is the one running
// after each), a good one goes out to two hosts, one result line each.
func TestDeploy(t *testing.T) {
	t.Parallel() // mostly waiting: it overlaps the empty-cache build
	r := newDeployRig(t, "edgedeploy", 2)
	gw1, gw2 := r.gws[0], r.gws[1]
	bins := t.TempDir()
	crash := filepath.Join(bins, "edge-agent-crash")
	writeFile(t, crash, crashScript, 0o755)
	never := filepath.Join(bins, "edge-agent-never")
	writeFile(t, never, neverScript, 0o755)
	reject := filepath.Join(bins, "edge-agent-reject")
	writeFile(t, reject, rejectScript, 0o755)
	hang := filepath.Join(bins, "edge-agent-hang")
	writeFile(t, hang, hangScript, 0o755)
	foreign := filepath.Join(bins, "edge-agent-riscv")
	h := make([]byte, 4096)
	copy(h, "\x7fELF\x01\x01\x01")
	h[18] = 243 // RISC-V
	writeFile(t, foreign, string(h), 0o755)
	// What `make dist` gives deploy.sh to choose from by architecture.
	distNew := t.TempDir()
	copyFile(t, r.new, filepath.Join(distNew, "edge-agent-linux-amd64"), 0o755)
	writeFile(t, filepath.Join(distNew, "SHA256SUMS"), fileSHA256(t, r.new)+"  edge-agent-linux-amd64\n", 0o644)

	t.Run("crashes at start", func(t *testing.T) {
		out, _, code := r.deploy("-b", crash, gw1.alias, gw2.alias)
		l := lines(out)
		if code != 1 || len(l) != 2 {
			t.Fatalf("exit %d, %d lines; want 1 and one line per host", code, len(l))
		}
		if !strings.HasPrefix(l[0], "gw1: rolled back: restart failed") || !strings.Contains(l[0], "v-old running again, connected and healthy") {
			t.Errorf("gw1 line: %q", l[0])
		}
		if !strings.HasPrefix(l[1], "gw2: skipped") {
			t.Errorf("gw2 line: %q (a failed host stops the rollout)", l[1])
		}
		r.checkRunning(gw1, r.old, "v-old")
		r.checkRunning(gw2, r.old, "v-old")
	})

	t.Run("never connects", func(t *testing.T) {
		out, progress, code := r.deploy("-v", "-b", never, gw1.alias)
		l := lines(out)
		for _, step := range []string{"gw1: checksum ok", "gw1: swapped; restarting: sh svc/restart", "rolling back to v-old", "gw1: v-old connected and healthy"} {
			if !strings.Contains(progress, step) {
				t.Errorf("-v: no %q on stderr:\n%s", step, progress)
			}
		}
		if code != 1 || len(l) != 1 {
			t.Fatalf("exit %d, %d lines", code, len(l))
		}
		if !strings.HasPrefix(l[0], "gw1: rolled back: v-new not connected and healthy within 4s: not connected (state connecting") ||
			!strings.Contains(l[0], "v-old running again, connected and healthy") {
			t.Errorf("gw1 line: %q", l[0])
		}
		r.checkRunning(gw1, r.old, "v-old")
	})

	// Every check on the target is bounded (--check-timeout, default 10 s):
	// a status that never answers is a failed check like any other, so the
	// deploy reports and rolls back instead of waiting forever.
	t.Run("health check hangs", func(t *testing.T) {
		start := time.Now()
		out, _, code := r.deployWithin(90*time.Second, "-b", hang, gw1.alias)
		took := time.Since(start)
		l := lines(out)
		if code != 1 || len(l) != 1 {
			t.Fatalf("exit %d, %d lines", code, len(l))
		}
		if !strings.HasPrefix(l[0], "gw1: rolled back: v-new not connected and healthy within 4s: status did not answer within 10s") ||
			!strings.Contains(l[0], "v-old running again, connected and healthy") {
			t.Errorf("gw1 line: %q", l[0])
		}
		// One hung check (10 s), two restarts, a settle, the probe and the copy.
		if took > 45*time.Second {
			t.Errorf("took %v, want well under a minute", took.Round(time.Second))
		}
		r.checkRunning(gw1, r.old, "v-old")
	})

	t.Run("refused before the swap", func(t *testing.T) {
		for _, tc := range []struct{ bin, want string }{
			{foreign, "gw1: failed: the new binary does not run on this target: "},
			{reject, "gw1: failed: the new binary rejects the live config etc/config.toml: "},
		} {
			pid, _, _ := r.running(gw1)
			out, _, code := r.deploy("-b", tc.bin, "--keep-going", gw1.alias)
			if code != 1 || !strings.HasPrefix(out, tc.want) || !strings.HasSuffix(out, "(nothing changed)\n") {
				t.Errorf("exit %d, output %q; want 1 and %q…(nothing changed)", code, out, tc.want)
			}
			if now, _, _ := r.running(gw1); now != pid {
				t.Errorf("the agent was restarted (pid %d -> %d) for a binary refused before the swap", pid, now)
			}
			if _, err := os.Stat(filepath.Join(gw1.home, "bin/edge-agent.new")); err == nil {
				t.Error("bin/edge-agent.new left behind")
			}
			r.checkRunning(gw1, r.old, "v-old")
		}
	})

	// A dist without SHA256SUMS (or with one that does not match) is refused
	// before anything is copied; --no-verify goes on without it, on purpose.
	t.Run("dist checked against SHA256SUMS", func(t *testing.T) {
		noSums := t.TempDir()
		copyFile(t, r.new, filepath.Join(noSums, "edge-agent-linux-amd64"), 0o755)
		out, _, code := r.deploy("-d", noSums, gw1.alias)
		if want := "gw1: failed: no " + filepath.Join(noSums, "SHA256SUMS") + " to check "; code != 1 || !strings.HasPrefix(out, want) ||
			!strings.Contains(out, "run make dist (it writes dist/SHA256SUMS") || !strings.Contains(out, "--no-verify") || !strings.HasSuffix(out, "(nothing changed)\n") {
			t.Errorf("no SHA256SUMS: exit %d, %q; want 1 and %q…", code, out, want)
		}
		r.checkRunning(gw1, r.old, "v-old")

		writeFile(t, filepath.Join(noSums, "SHA256SUMS"), fileSHA256(t, r.old)+"  edge-agent-linux-amd64\n", 0o644)
		out, _, code = r.deploy("-d", noSums, gw1.alias)
		if code != 1 || !strings.Contains(out, "does not match") {
			t.Errorf("a SHA256SUMS of another build: exit %d, %q", code, out)
		}
		r.checkRunning(gw1, r.old, "v-old")

		// What the host runs already, unchecked: nothing to do.
		oldDist := t.TempDir()
		copyFile(t, r.old, filepath.Join(oldDist, "edge-agent-linux-amd64"), 0o755)
		out, _, code = r.deploy("-d", oldDist, "--no-verify", gw1.alias)
		if code != 0 || !strings.HasPrefix(out, "gw1: ok: already runs this binary") {
			t.Errorf("--no-verify: exit %d, %q", code, out)
		}
	})

	t.Run("good binary to two hosts", func(t *testing.T) {
		out, _, code := r.deploy("-d", distNew, "-o", "ServerAliveInterval=5", "--timeout", "30", gw1.alias, gw2.alias)
		l := lines(out)
		if code != 0 || len(l) != 2 {
			t.Fatalf("exit %d, %d lines; want 0 and one line per host", code, len(l))
		}
		for i, gw := range []*gateway{gw1, gw2} {
			if want := gw.alias + ": ok: v-new connected and healthy"; !strings.HasPrefix(l[i], want) || !strings.Contains(l[i], "(was v-old; previous kept as bin/edge-agent.prev)") {
				t.Errorf("line %d: %q, want %q…", i+1, l[i], want)
			}
			r.checkRunning(gw, r.new, "v-new")
			if got, want := fileSHA256(t, filepath.Join(gw.home, "bin/edge-agent.prev")), fileSHA256(t, r.old); got != want {
				t.Errorf("%s: bin/edge-agent.prev is not the previous binary", gw.alias)
			}
		}

		out, _, code = r.deploy("-d", distNew, gw1.alias)
		if code != 0 || !strings.HasPrefix(out, "gw1: ok: already runs this binary, edge-agent v-new") {
			t.Errorf("the same binary again: exit %d, %q", code, out)
		}
	})
}

// The production layout: the binary's directory belongs to root, the login
// is not root. Without --sudo nothing changes; with it the upload goes
// through the login's home and the steps run through sudo -n.
func TestDeploySudo(t *testing.T) {
	t.Parallel()
	need(t, "sudo", "sudo")
	r := newDeployRig(t, "edgesudo", 1)
	gw := r.gws[0]
	sudoers := "/etc/sudoers.d/edge-agent-deploy-test"
	writeFile(t, sudoers, gw.user+" ALL=(root) NOPASSWD: ALL\n", 0o440)
	t.Cleanup(func() { os.Remove(sudoers) })
	sh(t, "chown", "-R", "root:root", filepath.Join(gw.home, "bin"))
	sh(t, "chmod", "755", filepath.Join(gw.home, "bin"))

	out, _, code := r.deploy("-b", r.new, gw.alias)
	if code != 1 || !strings.HasPrefix(out, "gw1: failed: scp: ") || !strings.HasSuffix(out, "(nothing changed)\n") {
		t.Errorf("without --sudo: exit %d, %q; want a failed scp", code, out)
	}
	r.checkRunning(gw, r.old, "v-old")

	out, _, code = r.deploy("--sudo", "-b", r.new, "--timeout", "30", gw.alias)
	if code != 0 || !strings.HasPrefix(out, "gw1: ok: v-new connected and healthy") {
		t.Fatalf("with --sudo: exit %d, %q", code, out)
	}
	r.checkRunning(gw, r.new, "v-new")
	for _, f := range []string{"bin/edge-agent", "bin/edge-agent.prev"} {
		fi, err := os.Stat(filepath.Join(gw.home, f))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: uid %d mode %v, want root's and 0755", f, st.Uid, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(gw.home, ".edge-agent.upload")); err == nil {
		t.Error("the upload was left in the login's home")
	}
}

func tailText(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func readTextOr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
