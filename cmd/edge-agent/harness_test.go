package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
)

// The integration tests run the real agent as a child process: the test
// binary re-executes itself with this variable set and then behaves exactly
// as the edge-agent command (same main code, race detector included).
const childEnv = "EDGE_AGENT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if builtAgents.dir != "" {
		os.RemoveAll(builtAgents.dir)
	}
	os.Exit(code)
}

// builtAgents are agent binaries built by buildAgent, by build tags.
var builtAgents struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// buildAgent builds the agent with go build, as a release is built (tags
// "") or with build tags ("faults"), once per test process; the test
// binary itself is built with whatever tags go test had.
func buildAgent(t *testing.T, tags string) string {
	t.Helper()
	builtAgents.Lock()
	defer builtAgents.Unlock()
	if bin, ok := builtAgents.bins[tags]; ok {
		return bin
	}
	if builtAgents.dir == "" {
		dir, err := os.MkdirTemp("", "edge-agent-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builtAgents.dir, builtAgents.bins = dir, map[string]string{}
	}
	out := filepath.Join(builtAgents.dir, "edge-agent-"+strings.NewReplacer(",", "-", " ", "-").Replace(tags))
	args := []string{"build", "-trimpath", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	builtAgents.bins[tags] = out
	return out
}

const (
	testUser = "gw-test"
	testPass = "p4ss-w0rd-that-must-never-be-logged"
)

// rig is a mosquitto with TLS and a password plus a config for an agent.
type rig struct {
	t       *testing.T
	pki     *agenttest.PKI
	broker  *agenttest.Mosquitto
	dir     string
	cfgPath string
	device  string
	extra   string // appended to the config: [leds], [[relay]], [store]
	// noMQTTCreds leaves broker, username and password out of [mqtt]
	// (they come from the account service).
	noMQTTCreds bool
	// dataDirOverride, when set, is data_dir (a small file system).
	dataDirOverride string
	env             []string
	// exe, when set, is the agent binary to run (buildAgent) instead of
	// this test binary re-executed.
	exe string
}

func newRig(t *testing.T, opts agenttest.MosquittoOptions) *rig {
	t.Helper()
	pki := agenttest.MustPKI(t)
	opts.PKI = pki
	if opts.Users == nil {
		opts.Users = map[string]string{testUser: testPass, "cloud": "cloud-pass"}
	}
	// mosquitto drops messages for an offline client beyond
	// max_queued_messages (default 1000) even though it acknowledged them to
	// the publisher; a fleet's broker must queue more than an outage
	// produces, and so does this one (docs/deploying.md#the-broker).
	opts.Extra = append(opts.Extra, "max_queued_messages 1000000")
	b := agenttest.MustMosquitto(t, opts)
	r := &rig{t: t, pki: pki, broker: b, dir: t.TempDir(), device: "dev-" + strings.ReplaceAll(t.Name(), "/", "-")}
	r.writeConfig(nil)
	return r
}

// writeConfig writes the agent's config; over replaces [mqtt] keys.
func (r *rig) writeConfig(over map[string]string) {
	r.t.Helper()
	mq := map[string]string{
		"broker":        fmt.Sprintf("%q", r.broker.URL),
		"username":      fmt.Sprintf("%q", testUser),
		"password_file": fmt.Sprintf("%q", filepath.Join(r.dir, "mqtt.pass")),
		"ca_file":       fmt.Sprintf("%q", r.pki.CAFile),
		"keepalive":     `"5s"`,
	}
	if r.noMQTTCreds {
		delete(mq, "broker")
		delete(mq, "username")
		delete(mq, "password_file")
	}
	for k, v := range over {
		mq[k] = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = %q\ndata_dir = %q\n\n[mqtt]\n", r.device, r.dataDir())
	for k, v := range mq {
		if v != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
	}
	b.WriteString("\n[hw]\nbackend = \"sim\"\n")
	b.WriteString(r.extra)
	if err := os.WriteFile(filepath.Join(r.dir, "mqtt.pass"), []byte(testPass+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	r.cfgPath = filepath.Join(r.dir, "config.toml")
	if err := os.WriteFile(r.cfgPath, []byte(b.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) notifyTopic() string { return "/sys/" + r.device + "/thing/push/notify" }

// proc is a running agent child process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startAgent runs `edge-agent run` on the rig's config.
func (r *rig) startAgent() *proc {
	r.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(exe, "run", "-config", r.cfgPath)
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), r.env...)
	if r.exe != "" {
		cmd = exec.Command(r.exe, "run", "-config", r.cfgPath)
		cmd.Env = append(os.Environ(), r.env...)
	}
	p := &proc{t: r.t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	r.t.Cleanup(func() {
		p.kill()
		if r.t.Failed() {
			r.t.Logf("agent log:\n%s", tailLines(p.Log(), 80))
		}
	})
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and returns the exit error and how long it took.
func (p *proc) stop(within time.Duration) (error, time.Duration) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err, time.Since(start)
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("did not exit within %v of SIGTERM", within), time.Since(start)
	}
}

func (r *rig) dataDir() string {
	if r.dataDirOverride != "" {
		return r.dataDirOverride
	}
	return filepath.Join(r.dir, "data")
}

// status asks the running agent over its control socket.
func (r *rig) status() (agent.Status, error) {
	var st agent.Status
	err := control.Call(r.dataDir(), control.Request{Cmd: control.CmdStatus}, func(rep control.Reply) error {
		return json.Unmarshal(rep.Status, &st)
	})
	return st, err
}

// export returns every stored record, oldest first.
func (r *rig) export() ([]control.Record, error) {
	var recs []control.Record
	err := control.Call(r.dataDir(), control.Request{Cmd: control.CmdInboxExport}, func(rep control.Reply) error {
		recs = append(recs, *rep.Record)
		return nil
	})
	return recs, err
}

// waitStatus polls the status until ok accepts it.
func (r *rig) waitStatus(d time.Duration, ok func(agent.Status) bool) agent.Status {
	r.t.Helper()
	deadline := time.Now().Add(d)
	var st agent.Status
	var err error
	for time.Now().Before(deadline) {
		st, err = r.status()
		if err == nil && ok(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("status not reached within %v: last %+v, err %v", d, st, err)
	return st
}

func (r *rig) waitConnected() agent.Status {
	r.t.Helper()
	return r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.Connected })
}

// publisher connects a cloud-side client that publishes QoS 1.
func (r *rig) publisher(id string) mqtt.Client {
	r.t.Helper()
	c, err := agenttest.Publisher(r.broker.URL, r.pki, "cloud", "cloud-pass", id)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
