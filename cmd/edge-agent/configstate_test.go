package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/hw/led"
)

// TestConfigStateAnswersOnControlSocket: run refuses an invalid config that
// names a sim status LED and stays up showing the config state; meanwhile
// the CLI gets answers from it, not "not running": status says config and
// why (the text config check prints, no secret), led test and identify
// work, inbox and relay requests are refused with what to do, and SIGTERM
// ends it at once, a running led test included.
func TestConfigStateAnswersOnControlSocket(t *testing.T) {
	t.Parallel()
	r := &rig{t: t, dir: t.TempDir()}
	const secret = "s3cret-never-shown"
	pass := filepath.Join(r.dir, "mqtt.pass")
	if err := os.WriteFile(pass, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cfgPath = filepath.Join(r.dir, "config.toml")
	cfg := fmt.Sprintf(`data_dir = %q

[mqtt]
broker = "tcp://127.0.0.1:1883"
username = "gw"
password_file = %q

[hw]
backend = "sim"

[leds]
status = "GPIO27"
activity = "GPIO23"
fault = "GPIO24"

[[relay]]
name = "pump"
pin = "GPIO17"
`, r.dataDir(), pass)
	if err := os.WriteFile(r.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, check, _ := cli("config", "check", "-config", r.cfgPath)
	check = strings.TrimSpace(check)
	if !strings.Contains(check, "device_id") || !strings.Contains(check, "mqtt.broker") {
		t.Fatalf("config check does not find the mistakes:\n%s", check)
	}

	p := r.startAgent()
	var code int
	var out, errOut string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, out, errOut = cli("status", "-config", r.cfgPath); code == 0 {
			break
		}
	}
	if code != 0 {
		t.Fatalf("status: exit %d: %s\nagent log:\n%s", code, errOut, p.Log())
	}
	for _, want := range []string{"state", "config", "check first", "with a shell: edge-agent config check", "led status", "device_id", "mqtt.broker", "allow_plaintext"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not running") || strings.Contains(out, "inbox") {
		t.Errorf("status in the config state:\n%s", out)
	}
	t.Logf("status:\n%s", out)

	code, out, errOut = cli("status", "-json", "-config", r.cfgPath)
	var st agent.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status -json: exit %d: %s%s", code, out, errOut)
	}
	if st.State != "config" || st.LastError != check || st.LEDs["status"] != "config" || st.LEDs["fault"] != "on" {
		t.Errorf("status -json: state %q, leds %v, last_error:\n%s\nwant state config and what config check prints:\n%s", st.State, st.LEDs, st.LastError, check)
	}

	code, out, errOut = cli("led", "test", "-each", "100ms", "-config", r.cfgPath)
	if code != 0 {
		t.Fatalf("led test: exit %d: %s", code, errOut)
	}
	for _, name := range led.PlayOrder() {
		if !strings.Contains(out, name+" ") {
			t.Errorf("led test did not play %q:\n%s", name, out)
		}
	}
	if code, _, errOut = cli("led", "identify", "-for", "1s", "-config", r.cfgPath); code != 0 {
		t.Errorf("led identify: exit %d: %s", code, errOut)
	}

	for _, args := range [][]string{{"inbox", "list"}, {"inbox", "show", "1"}, {"inbox", "export"}, {"relay", "set", "pump", "on"}} {
		code, _, errOut = cli(append(args, "-config", r.cfgPath)...)
		if code != 1 || !strings.Contains(errOut, "the configuration is invalid, so the agent holds no store and no relays; fix it: edge-agent config check") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 saying why and what to do", args, code, errOut)
		}
	}

	// A long led test is playing when SIGTERM comes: it ends with the agent.
	playing := make(chan struct{})
	go func() {
		defer close(playing)
		cli("led", "test", "-each", "3s", "-config", r.cfgPath)
	}()
	time.Sleep(300 * time.Millisecond)
	err, took := p.stop(5 * time.Second)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || took > 2*time.Second {
		t.Errorf("SIGTERM: exit %d (%v) after %v; want 1, promptly", code, err, took)
	}
	<-playing
	for _, s := range []string{out, p.Log()} {
		if strings.Contains(s, secret) {
			t.Errorf("the password was shown:\n%s", s)
		}
	}
	if _, err := os.Stat(filepath.Join(r.dataDir(), "edge-agent.sock")); err == nil {
		t.Error("the control socket is left behind")
	}
}
