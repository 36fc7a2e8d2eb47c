package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	agentpkg "github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/store"
)

// benchRelay is the relay every bench agent has (sim backend); the command
// phase switches it.
const (
	benchRelay    = "pump"
	benchRelayPin = "GPIO17"
)

// storeCfg is the [store] section; zero values are left out (defaults).
type storeCfg struct {
	retainRecords int
	retainBytes   string
	maxDBSize     string
	commitWindow  string // "" = the key absent (the default)
}

// agent is one edge-agent configuration (device, client id, data_dir) and
// its current process, if any.
type agent struct {
	e        *env
	name     string
	device   string
	clientID string
	dir      string
	dataDir  string
	cfgPath  string
	p        *proc
	env      []string // extra environment of its process
	bin      string   // the binary to run; "" = -agent
	// startups: process start → connected, for each start that
	// waitConnected saw connect.
	startups []time.Duration
}

// newAgent writes the configuration of a fresh agent: its own device id
// (and so its own topics) and client id, the sim backend with a status
// and an activity LED and one relay, as on a typical gateway.
func (e *env) newAgent(name string, st storeCfg) (*agent, error) {
	dir := e.sub(name)
	a := &agent{e: e, name: name, device: e.id(name), dir: dir, dataDir: filepath.Join(dir, "data")}
	a.clientID = a.device + "-agent"
	a.cfgPath = filepath.Join(dir, "config.toml")
	pass := filepath.Join(dir, "mqtt.pass")
	if err := os.WriteFile(pass, []byte(agentPass+"\n"), 0o600); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "device_id = %q\ndata_dir = %q\n\n[mqtt]\n", a.device, a.dataDir)
	fmt.Fprintf(&b, "broker = %q\nusername = %q\npassword_file = %q\nca_file = %q\nclient_id = %q\nkeepalive = \"30s\"\n",
		e.broker.url(), agentUser, pass, e.pki.CAFile, a.clientID)
	b.WriteString("\n[hw]\nbackend = \"sim\"\n\n[leds]\nstatus = \"GPIO27\"\nactivity = \"GPIO22\"\n")
	fmt.Fprintf(&b, "\n[[relay]]\nname = %q\npin = %q\n", benchRelay, benchRelayPin)
	if st != (storeCfg{}) {
		b.WriteString("\n[store]\n")
		if st.retainRecords > 0 {
			fmt.Fprintf(&b, "retain_records = %d\n", st.retainRecords)
		}
		if st.retainBytes != "" {
			fmt.Fprintf(&b, "retain_bytes = %q\n", st.retainBytes)
		}
		if st.maxDBSize != "" {
			fmt.Fprintf(&b, "max_db_size = %q\n", st.maxDBSize)
		}
		if st.commitWindow != "" {
			fmt.Fprintf(&b, "commit_window = %q\n", st.commitWindow)
		}
	}
	return a, os.WriteFile(a.cfgPath, []byte(b.String()), 0o600)
}

func (a *agent) topic(leaf string) string { return "/sys/" + a.device + "/thing/push/" + leaf }

// start runs `edge-agent run -config …`; watch sees each stderr line.
func (a *agent) start(watch func(string, time.Time)) error {
	if a.p != nil && a.p.alive() {
		return fmt.Errorf("agent %s already running", a.name)
	}
	bin := a.bin
	if bin == "" {
		bin = a.e.agentBin
	}
	p, err := startProc([]string{bin, "run", "-config", a.cfgPath}, a.env, nil,
		filepath.Join(a.dir, "agent.log"), watch)
	if err != nil {
		return err
	}
	a.p = p
	return nil
}

// stop sends SIGTERM: the agent finishes its commit, acks and disconnects
// (README: at most 8 s).
func (a *agent) stop() error {
	if a.p == nil {
		return nil
	}
	err := a.p.term(10 * time.Second)
	if err == nil && !a.p.cmd.ProcessState.Success() {
		err = fmt.Errorf("agent %s exited with %v after SIGTERM: %s", a.name, a.p.cmd.ProcessState, a.p.lastLines())
	}
	return err
}

// agentStatus is the status document, as the agent defines it. Ingest is
// nil for an agent built before the ingest object (A/B runs of older builds).
type agentStatus = agentpkg.Status

func (a *agent) status() (agentStatus, error) {
	var st agentStatus
	err := control.Call(a.dataDir, control.Request{Cmd: control.CmdStatus}, func(r control.Reply) error {
		return json.Unmarshal(r.Status, &st)
	})
	return st, err
}

// waitConnected polls the control socket every `every` until the agent
// reports connected (subscribed: the session sets connected only after the
// SUBACK), the process dies, or d passes.
func (a *agent) waitConnected(d, every time.Duration) (agentStatus, error) {
	deadline := time.Now().Add(d)
	var st agentStatus
	var err error
	for time.Now().Before(deadline) {
		if !a.p.alive() {
			return st, fmt.Errorf("agent %s exited: %s", a.name, a.p.lastLines())
		}
		st, err = a.status()
		if err == nil && st.Connected {
			a.startups = append(a.startups, st.Since.Sub(a.p.started))
			return st, nil
		}
		time.Sleep(every)
	}
	return st, fmt.Errorf("agent %s not connected within %v (state %q, last_error %q, %v): %s",
		a.name, d, st.State, st.LastError, err, a.p.lastLines())
}

// export calls fn for every stored record (the last `last` if > 0), oldest
// first: what `inbox export -json [-n N]` prints.
func (a *agent) export(fn func(control.Record) error) error { return a.exportLast(0, fn) }

func (a *agent) exportLast(last int, fn func(control.Record) error) error {
	return control.Call(a.dataDir, control.Request{Cmd: control.CmdInboxExport, N: last}, func(r control.Reply) error {
		if r.Record == nil {
			return nil
		}
		return fn(*r.Record)
	})
}

// storeBytes is the store's size on disk: its database file and its
// journal (a preallocated 1 MiB), each as far as it exists.
func (a *agent) storeBytes() int64 {
	var n int64
	for _, name := range []string{store.FileName, store.JournalName} {
		if st, err := os.Stat(filepath.Join(a.dataDir, name)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// verify checks that every message 0..n-1 of stream tag is in the inbox at
// least once. A lost message fails the bench. The stream is the newest of
// the inbox, so the last n records are read first; only if some are
// missing there (duplicates take room) is the whole inbox read.
func (a *agent) verify(tag string, n int) (dups int, err error) {
	dups, lost, first, err := a.coverage(tag, n, n)
	if err == nil && lost > 0 {
		dups, lost, first, err = a.coverage(tag, n, 0)
	}
	if err != nil {
		return dups, err
	}
	if lost > 0 {
		return dups, fmt.Errorf("agent %s: %d of %d messages of %s NOT stored (first lost #%d)", a.name, lost, n, tag, first)
	}
	return dups, nil
}

func (a *agent) coverage(tag string, n, last int) (dups, lost, first int, err error) {
	cov := newCoverage(n)
	if err := a.exportLast(last, func(r control.Record) error {
		b, err := r.Bytes()
		if err != nil {
			return err
		}
		cov.add(tag, b)
		return nil
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("export %s: %w", a.name, err)
	}
	lost, dups, first = cov.result()
	return dups, lost, first, nil
}

// dropSession discards the agent's persistent session at the broker once
// its phase is over.
func (a *agent) dropSession() error {
	return a.e.broker.dropSession(a.clientID, agentUser, agentPass)
}
