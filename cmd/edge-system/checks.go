package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/agentstatus"
	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

// The board: QEMU virt's PL061 is the guest's only GPIO controller, so
// gpiochip0 (the check "gpiochip" makes sure). Line 3 is the board's power
// button (gpio-keys holds it). pump powers on off, lamp and heater restore.
type pin struct {
	name    string
	line    int
	powerOn string
}

var relayPins = []pin{{"pump", 0, "off"}, {"lamp", 2, "restore"}, {"heater", 4, "restore"}}

const (
	statusLED = 5
	chip      = "gpiochip0"
	unit      = "edge-agent"
)

func pinOf(name string) pin {
	for _, p := range relayPins {
		if p.name == name {
			return p
		}
	}
	panic(name)
}

// agentConfig is the operator's config.toml as install-image.sh installs
// it: the broker on the host, secrets in files beside it.
func agentConfig(port int) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by cmd/edge-system (make system)")
	w("device_id = %q", deviceID)
	w("")
	b.WriteString(testcloud.MQTTConfig(port, agentUser))
	w("")
	w("[hw]")
	w(`backend = "periph"`)
	w("")
	w("[leds]")
	w(`status = "%s:%d"`, chip, statusLED)
	w(`activity = "%s:6"`, chip)
	w(`fault = "%s:7"`, chip)
	for _, p := range relayPins {
		w("")
		w("[[relay]]")
		w("name = %q", p.name)
		w(`pin = "%s:%d"`, chip, p.line)
		w("power_on = %q", p.powerOn)
	}
	return b.String()
}

// agentStatus is the part of `edge-agent status -json` the checks read.
type agentStatus = agentstatus.Status

func (r *rig) status() (agentStatus, error) {
	var st agentStatus
	out, err := r.gw.ssh(20*time.Second, "edge-agent status -json")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status -json: %v: %q", err, out)
	}
	return st, nil
}

// waitStatus polls the agent's status over ssh until ok accepts it.
func (r *rig) waitStatus(d time.Duration, what string, ok func(agentStatus) bool) (agentStatus, error) {
	return agentstatus.Wait(r.status, 500*time.Millisecond, nil, d, what, ok)
}

func connected(st agentStatus) bool {
	return st.Connected && (st.State == "ok" || st.State == "backlog")
}

func (r *rig) mainPID() (int, error) {
	p, err := r.gw.show(unit, "MainPID")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p["MainPID"])
}

func (r *rig) runChecks() {
	g := r.gw
	if !r.check("install-image.sh", r.checkInstall) {
		return
	}
	if !r.check("boot", r.checkBoot) {
		return
	}
	if !r.check("unit ready, TLS", r.checkReady) {
		return
	}
	r.check("gpiochip", r.checkChip)
	if !r.check("relay through the sandbox", r.checkRelay) {
		return
	}
	r.check("sandbox in force", r.checkSandbox)
	r.check("journal", r.checkJournal)
	if !r.check("watchdog", r.checkWatchdog) {
		return
	}
	r.check("config error", r.checkConfigError)
	if !r.check("systemctl stop", r.checkStop) {
		return
	}
	r.check("deploy good", r.checkDeployGood)
	r.check("deploy crashes", func(res *result) bool { return r.checkDeployBad(res, "crash") })
	r.check("deploy never connects", func(res *result) bool { return r.checkDeployBad(res, "never") })
	r.check("deploy socket hangs", func(res *result) bool { return r.checkDeployBad(res, "hang") })
	r.check("power cut", r.checkPowerCut)
	g.cut()
}

// checkInstall: scripts/install-image.sh writes the agent, config,
// secrets and unit into this run's copy of the card.
func (r *rig) checkInstall(res *result) bool {
	g := r.gw
	t0 := time.Now()
	if err := copySparse(g.card.image(), g.img); err != nil {
		res.fail("copy the card: %v", err)
		return false
	}
	res.fig("card copied in %s", secs(time.Since(t0)))
	files := map[string]string{
		"config.toml": agentConfig(r.cloud.Broker.Port),
		"mqtt.pass":   agentPass + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(body), 0o600); err != nil {
			res.fail("%v", err)
			return false
		}
	}
	if err := copyFile(r.cloud.PKI.CAFile, filepath.Join(r.dir, "ca.pem"), 0o644); err != nil {
		res.fail("%v", err)
		return false
	}
	t1 := time.Now()
	cmd := exec.Command(filepath.Join(r.repo, "scripts/install-image.sh"), "-c", filepath.Join(r.dir, "config.toml"),
		"-f", filepath.Join(r.dir, "mqtt.pass"), "-f", filepath.Join(r.dir, "ca.pem"), "-d", r.opts.dist, g.img)
	out, err := cmd.CombinedOutput()
	os.WriteFile(filepath.Join(r.dir, "install-image.log"), out, 0o644)
	if err != nil {
		res.fail("install-image.sh: %v:\n%s", err, out)
		return false
	}
	res.fig("install-image.sh %s: %s", secs(time.Since(t1)), lastLine(string(out)))
	return true
}

// checkBoot: the card boots to a systemd that logs us in over ssh.
func (r *rig) checkBoot(res *result) bool {
	took, err := r.gw.boot(6 * time.Minute)
	if err != nil {
		res.fail("%v", err)
		return false
	}
	r.bootTook = took
	res.fig("power on → ssh login %s", secs(took))
	if out, err := r.gw.ssh(30*time.Second, "systemd-analyze time 2>&1 | head -n 1; ps -p 1 -o comm="); err == nil {
		res.fig("%s", strings.ReplaceAll(strings.TrimSpace(out), "\n", "; PID 1 is "))
		if !strings.HasSuffix(strings.TrimSpace(out), "systemd") {
			res.fail("PID 1 is not systemd: %q", out)
		}
	} else {
		res.fail("%v", err)
	}
	return true
}

// checkReady: systemd started the unit, the agent said READY=1 and
// connected to the host's broker over TLS.
func (r *rig) checkReady(res *result) bool {
	st, err := r.waitStatus(3*time.Minute, "connected agent", connected)
	if err != nil {
		out, _ := r.gw.ssh(20*time.Second, "systemctl status edge-agent --no-pager -n 0 2>&1; echo; echo 'journalctl -u edge-agent:'; journalctl -u edge-agent -o cat --no-pager -n 15")
		res.fail("%v\n%s", err, out)
		return false
	}
	res.fig("power on → connected %s (%s)", secs(time.Since(r.gw.started)), st.Version)
	p, err := r.gw.show(unit, "ActiveState", "SubState", "Type", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "NRestarts")
	if err != nil {
		res.fail("%v", err)
		return false
	}
	if p["ActiveState"] != "active" || p["SubState"] != "running" || p["Type"] != "notify" {
		res.fail("unit %s/%s (Type=%s), want active/running, notify", p["ActiveState"], p["SubState"], p["Type"])
	}
	a, _ := strconv.ParseInt(p["ExecMainStartTimestampMonotonic"], 10, 64)
	b, _ := strconv.ParseInt(p["ActiveEnterTimestampMonotonic"], 10, 64)
	res.fig("exec → READY=1 %s", secs(time.Duration(b-a)*time.Microsecond))
	if p["NRestarts"] != "0" {
		res.fail("the unit restarted %s times on the way up", p["NRestarts"])
	}
	return true
}

// checkChip: udev gave the PL061's character device to group gpio, and
// the agent (running as edge-agent) holds it open.
func (r *rig) checkChip(res *result) bool {
	pid, err := r.mainPID()
	if err != nil {
		res.fail("%v", err)
		return false
	}
	out, err := r.gw.ssh(20*time.Second, fmt.Sprintf("readlink -f /sys/bus/gpio/devices/%s; stat -c '%%G %%a' /dev/%s; ls -l /proc/%d/fd | grep -c /dev/%s", chip, chip, pid, chip))
	if err != nil {
		res.fail("%v", err)
		return false
	}
	f := strings.Split(strings.TrimSpace(out), "\n")
	if len(f) != 3 {
		res.fail("unexpected answer %q", out)
		return false
	}
	if !strings.Contains(f[0], "pl061") {
		res.fail("%s is %s, not the PL061", chip, f[0])
	}
	if f[1] != "gpio 660" {
		res.fail("/dev/%s is group/mode %q, want gpio 660 (install-image.sh's udev rule)", chip, f[1])
	}
	if f[2] == "0" {
		res.fail("the agent (pid %d) does not hold /dev/%s open", pid, chip)
	}
	res.fig("/dev/%s (PL061) group gpio 0660, held by the agent (%s descriptors)", chip, f[2])
	return true
}

// switchRelay sends relay.set and waits for the PL061 line to follow; it
// returns the time from publish to the line's change.
func (r *rig) switchRelay(res *result, id, name string, on bool, extra map[string]any) (time.Duration, bool) {
	p := pinOf(name)
	params := map[string]any{"relay": name, "on": on}
	for k, v := range extra {
		params[k] = v
	}
	rep, sent, err := r.cloud.command(id, "relay.set", params, 30*time.Second)
	if err != nil {
		res.fail("relay.set %s on=%v: %v", name, on, err)
		return 0, false
	}
	if !rep.OK {
		msg := ""
		if rep.Error != nil {
			msg = rep.Error.Code + ": " + rep.Error.Message
		}
		res.fail("relay.set %s on=%v refused: %s", name, on, msg)
		return 0, false
	}
	want := 0
	if on {
		want = 1
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range onLine(r.gw.trace.All(), p.line, sent, time.Time{}) {
			if e.Level == want {
				return e.At.Sub(sent), true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.fail("relay.set %s on=%v replied ok but PL061 line %d did not go to %d (QEMU's trace)", name, on, p.line, want)
	return 0, false
}

func (r *rig) checkRelay(res *result) bool {
	on, ok1 := r.switchRelay(res, "sys-relay-1", "pump", true, nil)
	off, ok2 := r.switchRelay(res, "sys-relay-2", "pump", false, nil)
	if ok1 && ok2 {
		res.fig("pump line 0: 0→1 %s, 1→0 %s after publish (QEMU trace)", ms(on), ms(off))
	}
	return ok1 && ok2
}

// checkSandbox: what systemd says is in force, and what the agent's
// process shows of it.
func (r *rig) checkSandbox(res *result) bool {
	want := map[string]string{
		"User": "edge-agent", "Group": "edge-agent", "SupplementaryGroups": "gpio",
		"DevicePolicy": "closed", "DeviceAllow": "char-gpiochip rw",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"NoNewPrivileges": "yes", "WatchdogUSec": "30s", "Restart": "on-failure",
		"MemoryMax": "134217728", "TasksMax": "64", "CapabilityBoundingSet": "",
		"RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
		"StateDirectory": "edge-agent",
	}
	var props []string
	for k := range want {
		props = append(props, k)
	}
	props = append(props, "SystemCallFilter", "RestrictAddressFamilies", "MainPID")
	p, err := r.gw.show(unit, props...)
	if err != nil {
		res.fail("%v", err)
		return false
	}
	for k, v := range want {
		if p[k] != v {
			res.fail("systemctl show %s=%q, want %q", k, p[k], v)
		}
	}
	if len(p["SystemCallFilter"]) < 100 {
		res.fail("SystemCallFilter=%q: no system call filter in force", p["SystemCallFilter"])
	}
	if p["RestrictAddressFamilies"] != "AF_INET AF_INET6 AF_UNIX" && p["RestrictAddressFamilies"] != "AF_UNIX AF_INET AF_INET6" {
		res.fail("RestrictAddressFamilies=%q", p["RestrictAddressFamilies"])
	}
	pid := p["MainPID"]
	out, err := r.gw.ssh(20*time.Second, fmt.Sprintf(`s=/proc/%s/status; id -u edge-agent; getent group gpio | cut -d: -f3; grep -E '^(Uid|Groups|NoNewPrivs|Seccomp|CapEff|CapBnd):' $s; awk '$5 == "/" {print "root", $6} $5 == "/var/lib/edge-agent" {print "data", $6}' /proc/%s/mountinfo`, pid, pid))
	if err != nil {
		res.fail("%v", err)
		return false
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 8 {
		res.fail("unexpected /proc answer %q", out)
		return false
	}
	uid, gpioGID := lines[0], lines[1]
	kv := map[string]string{}
	for _, l := range lines[2:] {
		k, v, _ := strings.Cut(l, ":")
		if strings.HasPrefix(l, "root ") || strings.HasPrefix(l, "data ") {
			k, v, _ = strings.Cut(l, " ")
		}
		kv[k] = strings.TrimSpace(v)
	}
	if f := strings.Fields(kv["Uid"]); len(f) == 0 || f[0] != uid {
		res.fail("agent runs as uid %q, want edge-agent's %s", kv["Uid"], uid)
	}
	if !contains(strings.Fields(kv["Groups"]), gpioGID) {
		res.fail("agent's groups %q lack gpio (%s)", kv["Groups"], gpioGID)
	}
	for k, v := range map[string]string{"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"} {
		if kv[k] != v {
			res.fail("/proc/%s/status %s: %q, want %q", pid, k, kv[k], v)
		}
	}
	if !strings.HasPrefix(kv["root"], "ro") {
		res.fail("the agent's / is mounted %q, want ro (ProtectSystem=strict)", kv["root"])
	}
	if !strings.HasPrefix(kv["data"], "rw") {
		res.fail("the agent's /var/lib/edge-agent is mounted %q, want rw", kv["data"])
	}
	if len(res.errs) == 0 {
		res.fig("%d unit properties as written; agent uid %s, groups %s, NoNewPrivs, seccomp filter, no capabilities, / ro, data dir rw",
			len(want), uid, kv["Groups"])
	}
	return true
}

// checkJournal: the agent's lines are in the journal, the password in no
// line of it (the whole journal, not only the unit's).
func (r *rig) checkJournal(res *result) bool {
	out, err := r.gw.ssh(30*time.Second, "journalctl -u edge-agent -o cat --no-pager | wc -l; journalctl -u edge-agent -o cat --no-pager | grep -c -i connected; journalctl -o cat --no-pager | grep -c -F "+shq(agentPass)+" || true")
	if err != nil {
		res.fail("%v", err)
		return false
	}
	f := strings.Fields(out)
	if len(f) != 3 {
		res.fail("unexpected answer %q", out)
		return false
	}
	if f[0] == "0" || f[1] == "0" {
		res.fail("the journal has %s lines of edge-agent, %s saying connected", f[0], f[1])
	}
	if f[2] != "0" {
		res.fail("the MQTT password appears in %s journal lines", f[2])
	}
	res.fig("%s lines of edge-agent, %s of them about connecting; the password in none", f[0], f[1])
	return true
}

// checkWatchdog: a stopped agent sends no WATCHDOG=1; systemd aborts it
// after WatchdogSec, kills it when the abort is not heeded
// (TimeoutStopSec), and starts it again after RestartSec.
func (r *rig) checkWatchdog(res *result) bool {
	pid, err := r.mainPID()
	if err != nil {
		res.fail("%v", err)
		return false
	}
	before, _ := r.gw.show(unit, "NRestarts")
	if _, err := r.gw.ssh(20*time.Second, fmt.Sprintf("kill -STOP %d", pid)); err != nil {
		res.fail("%v", err)
		return false
	}
	t0 := time.Now()
	// WatchdogSec 30 + TimeoutStopSec 20 + RestartSec 5 + a start.
	limit := 30*time.Second + 20*time.Second + 5*time.Second + 60*time.Second
	var newPID int
	for time.Since(t0) < limit {
		if n, err := r.mainPID(); err == nil && n != 0 && n != pid {
			newPID = n
			break
		}
		time.Sleep(time.Second)
	}
	if newPID == 0 {
		res.fail("the stopped agent (pid %d) was not replaced within %v", pid, limit)
		return false
	}
	restarted := time.Since(t0)
	st, err := r.waitStatus(2*time.Minute, "connected agent after the watchdog restart", connected)
	if err != nil {
		res.fail("%v", err)
		return false
	}
	_ = st
	after, _ := r.gw.show(unit, "NRestarts")
	out, _ := r.gw.ssh(20*time.Second, "journalctl -u edge-agent -o cat --no-pager | grep -c -i 'watchdog timeout' || true")
	if strings.TrimSpace(out) == "0" {
		res.fail("the journal does not say the watchdog fired (no 'Watchdog timeout')")
	}
	// The watchdog fires WatchdogSec after the last ping, which came up
	// to WatchdogSec/2 before the SIGSTOP; systemd's SIGABRT comes with
	// a SIGCONT, so the stopped agent dies at once, and RestartSec later
	// it runs again.
	res.fig("SIGSTOP → new pid %s (WatchdogSec 30 s after the last ping + RestartSec 5 s; limit %s); connected again %s; NRestarts %s→%s",
		secs(restarted), secs(limit), secs(time.Since(t0)), before["NRestarts"], after["NRestarts"])
	return true
}

var configBad = "\n[mqtt_typo]\nbroker = \"x\"\n"

// checkConfigError: a config with an unknown table; the agent stays up in
// the config state (status LED at 10 Hz, seen in the trace), the unit is
// active and its status shows why; the good config brings it back.
func (r *rig) checkConfigError(res *result) bool {
	if _, err := r.gw.ssh(30*time.Second, "cp -p /etc/edge-agent/config.toml /root/config.good && printf '%s' "+shq(configBad)+" >> /etc/edge-agent/config.toml && systemctl restart edge-agent"); err != nil {
		res.fail("%v", err)
		return false
	}
	t0 := time.Now()
	st, err := r.waitStatus(time.Minute, "config state", func(s agentStatus) bool { return s.State == "config" })
	if err != nil {
		res.fail("%v", err)
	} else {
		res.fig("state config: %q", truncate(st.LastError, 80))
	}
	time.Sleep(3 * time.Second)
	evs := onLine(r.gw.trace.All(), statusLED, time.Now().Add(-2*time.Second), time.Now())
	res.fig("status LED line %d: %d edges in 2 s (10 Hz blink = 40)", statusLED, len(evs))
	if len(evs) < 20 {
		res.fail("status LED line %d changed %d times in 2 s, want the config state's 10 Hz blink", statusLED, len(evs))
	}
	p, _ := r.gw.show(unit, "ActiveState", "SubState")
	out, _ := r.gw.ssh(20*time.Second, "systemctl status edge-agent --no-pager -n 5 2>&1")
	if p["ActiveState"] != "active" {
		res.fail("unit is %s/%s in the config state, want active (the LED must keep showing)", p["ActiveState"], p["SubState"])
	}
	if !strings.Contains(out, "configuration is invalid") {
		res.fail("systemctl status does not say why:\n%s", out)
	} else {
		res.fig("systemctl status: %s/%s, its log lines say \"the configuration is invalid\"", p["ActiveState"], p["SubState"])
	}
	if _, err := r.gw.ssh(30*time.Second, "cp -p /root/config.good /etc/edge-agent/config.toml && systemctl restart edge-agent"); err != nil {
		res.fail("%v", err)
		return false
	}
	if _, err := r.waitStatus(2*time.Minute, "connected agent with the good config", connected); err != nil {
		res.fail("%v", err)
		return false
	}
	res.fig("config error → fixed and connected %s", secs(time.Since(t0)))
	return true
}

// checkStop: systemctl stop is a clean exit within 8 s that tells the
// cloud offline (retained); then it is started again.
func (r *rig) checkStop(res *result) bool {
	t0 := time.Now()
	if _, err := r.gw.ssh(40*time.Second, "systemctl stop edge-agent"); err != nil {
		res.fail("%v", err)
		return false
	}
	took := time.Since(t0)
	p, _ := r.gw.show(unit, "ActiveState", "Result", "ExecMainStatus", "InactiveEnterTimestampMonotonic", "InactiveExitTimestampMonotonic", "ExecMainExitTimestampMonotonic")
	if p["Result"] != "success" || p["ActiveState"] != "inactive" {
		res.fail("after stop: %s, result %s, exit status %s; want inactive, success", p["ActiveState"], p["Result"], p["ExecMainStatus"])
	}
	res.fig("systemctl stop returned in %s (over ssh; limit 8 s for the agent)", secs(took))
	if took > 8*time.Second+2*time.Second {
		res.fail("stop took %s: more than 8 s (+2 s for ssh)", secs(took))
	}
	time.Sleep(time.Second)
	sawOffline := false
	for _, s := range r.cloud.statusSince(t0) {
		if isOffline(s.Payload) {
			sawOffline = true
		}
	}
	ret, err := r.cloud.retainedStatus()
	if err != nil || !isOffline(ret) {
		res.fail("retained status after stop: %q (%v), want offline", ret, err)
	} else {
		res.fig("offline published (seen live: %v) and retained", sawOffline)
	}
	if _, err := r.gw.ssh(40*time.Second, "systemctl start edge-agent"); err != nil {
		res.fail("%v", err)
		return false
	}
	if _, err := r.waitStatus(2*time.Minute, "connected agent after start", connected); err != nil {
		res.fail("%v", err)
		return false
	}
	return true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
