package agenttest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrMosquittoNotInstalled is returned (wrapped) by StartMosquitto when
// the mosquitto binary or mosquitto_passwd is not on this machine.
var ErrMosquittoNotInstalled = errors.New("mosquitto not installed")

// Bounds for one broker process.
const (
	mosquittoReady = 5 * time.Second // start to accepting a TLS handshake (~30 ms measured)
	mosquittoStop  = 5 * time.Second // SIGTERM to exit, before SIGKILL
	bindAttempts   = 5               // a free port can be taken between probe and bind
)

// MosquittoOptions configures StartMosquitto. The zero value (with a PKI)
// is a TLS 1.2 listener that allows anonymous clients.
type MosquittoOptions struct {
	// PKI provides the CA and, unless overridden below, the server
	// certificate. Required.
	PKI *PKI
	// Users maps user name to password. If empty, anonymous clients are
	// allowed; otherwise allow_anonymous is false and a password file is
	// made with mosquitto_passwd.
	Users map[string]string
	// RequireCertificate makes the TLS listener demand a client
	// certificate signed by the PKI's CA (mutual TLS).
	RequireCertificate bool
	// Persistence keeps sessions and queued messages in Dir across
	// Restart (written on clean shutdown and every autosave_interval).
	Persistence bool
	// Plain also opens a plaintext listener on 127.0.0.1 (PlainPort).
	Plain bool
	// Dir holds the config, password file, persistence database and log.
	// If empty, a new temporary directory (removed by Stop).
	Dir string
	// Extra config lines. They go right after the TLS listener's lines, so
	// a per-listener option applies to the TLS listener and a general one
	// (max_inflight_messages 1000, autosave_interval 1) applies everywhere.
	Extra []string
	// ServerCert and ServerKey override the PKI's server certificate
	// (PKI.ExpiredServerCert, PKI.WrongHostServerCert tests). Both or none.
	ServerCert, ServerKey string
	// TLSVersion is mosquitto's tls_version: the lowest version the
	// listener accepts. If empty, "tlsv1.2".
	TLSVersion string
}

// Mosquitto is a mosquitto broker running as a child process.
type Mosquitto struct {
	Port      int    // TLS listener on 127.0.0.1
	PlainPort int    // plaintext listener on 127.0.0.1, 0 unless Options.Plain
	URL       string // tls://127.0.0.1:Port
	PlainURL  string // tcp://127.0.0.1:PlainPort, "" unless Options.Plain
	Dir       string // config, password file, persistence and log
	Conf      string // the config file

	bin     string
	logFile string
	probe   *tls.Config
	rmDir   bool // Dir was made by StartMosquitto

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when not running
	done chan struct{} // closed when cmd has been waited for
}

// MosquittoBinary returns the path of the mosquitto binary, or an error
// wrapping ErrMosquittoNotInstalled.
func MosquittoBinary() (string, error) {
	return findBinary("mosquitto", "/usr/sbin/mosquitto")
}

func findBinary(name, usual string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// /usr/sbin is not on every PATH.
	if _, err := os.Stat(usual); err == nil {
		return usual, nil
	}
	return "", fmt.Errorf("%w: no %s in PATH or at %s", ErrMosquittoNotInstalled, name, usual)
}

// StartMosquitto writes a config for opts, starts mosquitto on a free port
// of 127.0.0.1 and returns once its TLS listener completes a handshake.
// On failure the error includes the tail of mosquitto's log.
func StartMosquitto(opts MosquittoOptions) (*Mosquitto, error) {
	if opts.PKI == nil {
		return nil, errors.New("start mosquitto: no PKI")
	}
	if (opts.ServerCert == "") != (opts.ServerKey == "") {
		return nil, errors.New("start mosquitto: ServerCert and ServerKey go together")
	}
	bin, err := MosquittoBinary()
	if err != nil {
		return nil, err
	}
	var passwd string
	if len(opts.Users) > 0 {
		if passwd, err = findBinary("mosquitto_passwd", "/usr/bin/mosquitto_passwd"); err != nil {
			return nil, err
		}
	}

	m := &Mosquitto{Dir: opts.Dir, bin: bin}
	if m.Dir == "" {
		if m.Dir, err = os.MkdirTemp("", "agenttest-mosquitto-"); err != nil {
			return nil, fmt.Errorf("start mosquitto: %w", err)
		}
		m.rmDir = true
	} else if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	m.Conf = filepath.Join(m.Dir, "mosquitto.conf")
	m.logFile = filepath.Join(m.Dir, "mosquitto.log")

	fail := func(err error) (*Mosquitto, error) {
		if m.rmDir {
			os.RemoveAll(m.Dir)
		}
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}

	passwdFile := ""
	if len(opts.Users) > 0 {
		passwdFile = filepath.Join(m.Dir, "passwd")
		if err := writePasswd(passwd, passwdFile, opts.Users); err != nil {
			return fail(err)
		}
	}
	if opts.Persistence {
		if err := os.MkdirAll(filepath.Join(m.Dir, "data"), 0o755); err != nil {
			return fail(err)
		}
	}

	// The readiness probe only proves the listener does TLS: it must also
	// succeed with an expired or wrong-host certificate, so it does not
	// verify the server. It offers the client certificate for mutual TLS.
	pair, err := tls.LoadX509KeyPair(opts.PKI.ClientCert, opts.PKI.ClientKey)
	if err != nil {
		return fail(err)
	}
	m.probe = &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}}

	for attempt := 1; ; attempt++ {
		if m.Port, err = freePort(); err != nil {
			return fail(err)
		}
		if opts.Plain {
			if m.PlainPort, err = freePort(); err != nil {
				return fail(err)
			}
		}
		conf := mosquittoConf(opts, m, passwdFile)
		if err := os.WriteFile(m.Conf, []byte(conf), 0o644); err != nil {
			return fail(err)
		}
		err = m.start()
		if err == nil {
			break
		}
		// Another process may have taken a port between freePort and bind.
		if attempt == bindAttempts || !strings.Contains(err.Error(), "in use") {
			return fail(err)
		}
	}
	m.URL = "tls://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	if opts.Plain {
		m.PlainURL = "tcp://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(m.PlainPort))
	}
	return m, nil
}

// MustMosquitto starts mosquitto for a test and stops it on t.Cleanup. If
// mosquitto is not installed the test is skipped, except under CI (CI set)
// where that is a failure: .ci/run installs it.
func MustMosquitto(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	if _, err := MosquittoBinary(); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%v (apt-get install mosquitto mosquitto-clients)", err)
		}
		t.Fatal("mosquitto not installed: .ci/run installs it")
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	m, err := StartMosquitto(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
		if t.Failed() {
			t.Logf("mosquitto log (%s):\n%s", m.logFile, tail(m.Log(), 60))
		}
	})
	return m
}

func mosquittoConf(opts MosquittoOptions, m *Mosquitto, passwdFile string) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# written by agenttest.StartMosquitto")
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to user "mosquitto", which may
		// not read our 0600 keys or write Dir (as root it drops to user mosquitto).
		line("user root")
	}
	line("log_dest stderr")
	line("log_type error")
	line("log_type warning")
	line("log_type notice")
	line("log_type information")
	line("connection_messages true")
	line("log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S")
	if passwdFile == "" {
		line("allow_anonymous true")
	} else {
		line("allow_anonymous false")
		line("password_file %s", passwdFile)
	}
	if opts.Persistence {
		line("persistence true")
		line("persistence_location %s/", filepath.Join(m.Dir, "data")) // the trailing slash is required
	}

	certFile, keyFile := opts.PKI.ServerCert, opts.PKI.ServerKey
	if opts.ServerCert != "" {
		certFile, keyFile = opts.ServerCert, opts.ServerKey
	}
	tlsVersion := opts.TLSVersion
	if tlsVersion == "" {
		tlsVersion = "tlsv1.2"
	}
	line("")
	line("listener %d 127.0.0.1", m.Port)
	line("cafile %s", opts.PKI.CAFile)
	line("certfile %s", certFile)
	line("keyfile %s", keyFile)
	line("tls_version %s", tlsVersion)
	if opts.RequireCertificate {
		line("require_certificate true")
	}
	for _, l := range opts.Extra {
		line("%s", l)
	}
	if opts.Plain {
		line("")
		line("listener %d 127.0.0.1", m.PlainPort)
	}
	return b.String()
}

func writePasswd(bin, file string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	for i, u := range names {
		args := []string{"-b", file, u, users[u]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("mosquitto_passwd %s: %w: %s", u, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs mosquitto with m.Conf and waits until it is ready or has died.
func (m *Mosquitto) start() error {
	log, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	logStart, _ := log.Seek(0, io.SeekEnd)

	cmd := exec.Command(m.bin, "-c", m.Conf)
	cmd.Dir = m.Dir
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // the exit status is in cmd.ProcessState
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port))
	deadline := time.Now().Add(mosquittoReady)
	for {
		select {
		case <-done:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			return fmt.Errorf("mosquitto exited (%v): %s", cmd.ProcessState, tail(m.logSince(logStart), 20))
		default:
		}
		if err := m.handshake(addr); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			m.Kill()
			return fmt.Errorf("mosquitto not ready after %v (%v): %s", mosquittoReady, err, tail(m.logSince(logStart), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *Mosquitto) handshake(addr string) error {
	d := &net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, m.probe)
	if err != nil {
		return err
	}
	return c.Close()
}

// Stop sends SIGTERM and waits for mosquitto to exit (it saves its
// persistence database first), then SIGKILL if it takes longer than 5 s.
// It removes Dir if StartMosquitto made it. Safe to call more than once.
func (m *Mosquitto) Stop() error {
	err := m.stop(syscall.SIGTERM)
	if m.rmDir {
		os.RemoveAll(m.Dir)
	}
	return err
}

// Kill sends SIGKILL and waits: a crash, nothing is saved. The broker can
// be started again with Restart.
func (m *Mosquitto) Kill() error {
	return m.stop(syscall.SIGKILL)
}

func (m *Mosquitto) stop(sig syscall.Signal) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal mosquitto: %w", err)
	}
	select {
	case <-done:
	case <-time.After(mosquittoStop):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("mosquitto ignored %v for %v: killed", sig, mosquittoStop)
	}
	if sig == syscall.SIGTERM && !cmd.ProcessState.Success() {
		return fmt.Errorf("mosquitto exited with %v: %s", cmd.ProcessState, tail(m.Log(), 10))
	}
	return nil
}

// Restart stops mosquitto if it is running (cleanly, so it saves its
// persistence database) and starts it again on the same ports with the
// same config.
func (m *Mosquitto) Restart() error {
	if err := m.stop(syscall.SIGTERM); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	if err := m.start(); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	return nil
}

// Pid returns the process id of the running mosquitto, or 0.
func (m *Mosquitto) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Log returns everything mosquitto has logged in this Dir, across restarts.
func (m *Mosquitto) Log() string {
	return m.logSince(0)
}

func (m *Mosquitto) logSince(off int64) string {
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// SetUsers replaces the broker's users and passwords (a password rotation).
// It takes effect at the next Restart; connections already made stay.
func (m *Mosquitto) SetUsers(users map[string]string) error {
	bin, err := findBinary("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
	if err != nil {
		return err
	}
	file := filepath.Join(m.Dir, "passwd")
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("set users: the broker was started without users: %w", err)
	}
	return writePasswd(bin, file, users)
}
