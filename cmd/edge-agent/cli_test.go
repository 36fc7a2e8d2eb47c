package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// cli runs a verb in-process, as the edge-agent command would.
func cli(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCLIAgainstRunningAgent(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.startAgent()
	r.waitConnected()
	pub := r.publisher("cloud-cli")
	bin := []byte{0xff, 0xfe, 0x00, 'x'}
	for _, p := range [][]byte{[]byte("first"), []byte(`{"hello":"world"}`), bin} {
		if err := agenttest.PublishQoS1(pub, r.notifyTopic(), p, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.Inbox.Total == 3 })

	t.Run("status -json", func(t *testing.T) {
		code, out, errOut := cli("status", "-json", "-config", r.cfgPath)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("not one JSON object: %v\n%s", err, out)
		}
		for _, k := range []string{"version", "device_id", "connected", "broker", "since", "inbox", "outbox", "relays", "leds", "state", "last_error"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("status -json lacks %q", k)
			}
		}
		if doc["connected"] != true || doc["state"] != "ok" || doc["device_id"] != r.device {
			t.Errorf("connected=%v state=%v device_id=%v", doc["connected"], doc["state"], doc["device_id"])
		}
		inbox := doc["inbox"].(map[string]any)
		if inbox["total"] != 3.0 || inbox["pending"] != 0.0 {
			t.Errorf("inbox %v, want total 3, pending 0", inbox)
		}
		if strings.Contains(out, testPass) {
			t.Error("status shows the password")
		}
	})
	t.Run("status", func(t *testing.T) {
		code, out, errOut := cli("status", "-config", r.cfgPath)
		if code != 0 || !strings.Contains(out, "state") || !strings.Contains(out, "3 stored") {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("inbox export -json", func(t *testing.T) {
		code, out, errOut := cli("inbox", "export", "-json", "-config", r.cfgPath)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
		}
		var last map[string]any
		if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
			t.Fatal(err)
		}
		if _, ok := last["payload"]; ok {
			t.Error("a non-UTF-8 payload was written as payload")
		}
		got, _ := base64.StdEncoding.DecodeString(last["payload_b64"].(string))
		if !bytes.Equal(got, bin) {
			t.Errorf("payload_b64 decodes to %x, want %x", got, bin)
		}
		var first map[string]any
		_ = json.Unmarshal([]byte(lines[0]), &first)
		if first["payload"] != "first" || first["seq"] != 1.0 || first["topic"] != r.notifyTopic() || first["dup"] != false {
			t.Errorf("first record %v", first)
		}
		if _, err := time.Parse(time.RFC3339, first["received_at"].(string)); err != nil {
			t.Errorf("received_at: %v", err)
		}
	})
	t.Run("inbox export -n 1", func(t *testing.T) {
		_, out, _ := cli("inbox", "export", "-n", "1", "-config", r.cfgPath)
		if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, `"seq":3`) {
			t.Fatalf("want only seq 3:\n%s", out)
		}
	})
	t.Run("inbox list", func(t *testing.T) {
		code, out, _ := cli("inbox", "list", "-config", r.cfgPath)
		if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, `"first"`) || !strings.Contains(out, `\xff\xfe\x00x`) {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	})
	t.Run("inbox show", func(t *testing.T) {
		code, out, _ := cli("inbox", "show", "2", "-config", r.cfgPath)
		if code != 0 || !strings.Contains(out, `{"hello":"world"}`) || !strings.Contains(out, "seq:         2") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		code, _, errOut := cli("inbox", "show", "99", "-config", r.cfgPath)
		if code != 1 || !strings.Contains(errOut, "no record with seq 99") {
			t.Fatalf("show 99: exit %d: %s", code, errOut)
		}
	})
	t.Run("control socket mode", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(r.dataDir(), "edge-agent.sock"))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o660 {
			t.Fatalf("socket mode %o, want 660", perm)
		}
	})
}

func TestCLIWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("device_id = \"x\"\ndata_dir = \""+dir+"\"\n"), 0o600)
	code, _, errOut := cli("status", "-config", cfg)
	if code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("s3cret-value\n"), 0o600)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte(`data_dir = "/tmp/x"

[mqtt]
broker = "tcp://127.0.0.1:1883"
password_file = "`+pass+`"
brokr = "typo"
`), 0o600)
	code, out, _ := cli("config", "check", "-config", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"device_id", "bad.toml:4: mqtt.broker", "allow_plaintext", "bad.toml:6: mqtt.brokr"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret-value") {
		t.Error("config check printed the password")
	}
	// run refuses to start on it.
	code, _, errOut := cli("run", "-config", bad)
	if code != 1 || !strings.Contains(errOut, "refusing to start") {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}

	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(`device_id = "d1"
[mqtt]
broker = "tls://127.0.0.1:8883"
password_file = "`+pass+`"
`), 0o600)
	if code, out, _ := cli("config", "check", "-config", good); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good config: exit %d\n%s", code, out)
	}
	if code, _, _ := cli("config", "check", "-config", filepath.Join(dir, "missing.toml")); code != 1 {
		t.Fatalf("missing config: exit %d, want 1", code)
	}
}

// config check lists every mistake at once, a type error among them, and
// refuses a pin the sim board lacks, as run would.
func TestConfigCheckEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	os.WriteFile(path, []byte(`device_id = "d1"
[mqtt]
broker = "tls://127.0.0.1:8883"
allow_plaintext = "no"
keepalive = "forever"
colour = "red"
[hw]
backend = "sim"
[[relay]]
name = "pump"
pin = "GPIO99"
`), 0o600)
	code, out, _ := cli("config", "check", "-config", path)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"c.toml:4: mqtt.allow_plaintext: expected true or false", "c.toml:5: mqtt.keepalive:",
		"c.toml:6: mqtt.colour: unknown key", `c.toml:11: relay[0].pin: no such GPIO pin "GPIO99"`} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := cli("version")
	if code != 0 || !strings.HasPrefix(out, "edge-agent ") {
		t.Fatalf("exit %d: %q", code, out)
	}
}

func TestCLIRelayAndLEDVerbs(t *testing.T) {
	r := newCommandRig(t)
	r.startAgent()
	r.waitConnected()

	if code, out, errOut := cli("relay", "set", "lamp", "on", "-for", "1h", "-config", r.cfgPath); code != 0 || !strings.Contains(out, "relay lamp on until ") || !strings.Contains(out, "(1h0m0s)") {
		t.Fatalf("relay set: exit %d: %s%s", code, out, errOut)
	}
	st, _ := r.status()
	if !st.Relays["lamp"].On || st.Relays["lamp"].Until == nil {
		t.Fatalf("lamp %+v", st.Relays["lamp"])
	}
	if code, _, errOut := cli("relay", "set", "nope", "on", "-config", r.cfgPath); code != 1 || !strings.Contains(errOut, `no relay named "nope"`) {
		t.Fatalf("unknown relay: exit %d: %s", code, errOut)
	}
	// What was applied, not what was asked: pump's max_on is 1m.
	if code, out, errOut := cli("relay", "set", "pump", "on", "-for", "20m", "-config", r.cfgPath); code != 0 ||
		!strings.Contains(out, "not the 20m0s asked: its max_on stops it sooner") {
		t.Fatalf("relay set beyond max_on: exit %d: %s%s", code, out, errOut)
	}
	if st, _ := r.status(); st.Relays["pump"].Until == nil || time.Until(*st.Relays["pump"].Until) > time.Minute {
		t.Fatalf("pump %+v: want max_on's 1m deadline", st.Relays["pump"])
	}
	for _, bad := range []string{"-5s", "0s"} {
		if code, _, errOut := cli("relay", "set", "lamp", "on", "-for", bad, "-config", r.cfgPath); code != 2 || !strings.Contains(errOut, "must be positive") {
			t.Fatalf("relay set -for %s: exit %d: %s; want a usage error", bad, code, errOut)
		}
	}
	if code, _, errOut := cli("relay", "set", "drain", "on", "-config", r.cfgPath); code != 1 || !strings.Contains(errOut, "interlock") {
		t.Fatalf("interlocked: exit %d: %s", code, errOut)
	}
	if code, _, _ := cli("relay", "set", "lamp", "maybe", "-config", r.cfgPath); code != 2 {
		t.Fatalf("bad state: exit %d, want 2", code)
	}

	if code, out, _ := cli("led", "identify", "-for", "2s", "-config", r.cfgPath); code != 0 || !strings.Contains(out, "2s") {
		t.Fatalf("led identify: exit %d %s", code, out)
	}
	st = r.waitStatus(2*time.Second, func(s agent.Status) bool { return s.LEDs["status"] == "identify" })
	if st.LEDs["fault"] != "identify" {
		t.Fatalf("identify: leds %v", st.LEDs)
	}

	code, out, errOut := cli("led", "test", "-each", "50ms", "-config", r.cfgPath)
	if code != 0 {
		t.Fatalf("led test: exit %d: %s", code, errOut)
	}
	for _, state := range []string{"ok", "backlog", "connecting", "auth", "bootstrap", "storage", "config", "identify"} {
		if !strings.Contains(out, state) {
			t.Errorf("led test did not name %q:\n%s", state, out)
		}
	}
	t.Logf("led test:\n%s", out)
}

// TestRunShowsConfigStateOnLED: with an invalid config that still names a
// status LED, run stays up showing the config state until SIGTERM, then
// exits 1.
func TestRunShowsConfigStateOnLED(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = "\n[leds]\nstatus = \"GPIO27\"\nfault = \"GPIO24\"\nbogus = 1\n"
	r.writeConfig(nil)
	p := r.startAgent()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log(), "showing the config state") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.Log(), "showing the config state") || !strings.Contains(p.Log(), "leds.bogus") {
		t.Fatalf("log:\n%s", p.Log())
	}
	err, _ := p.stop(5 * time.Second)
	if code := p.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1", code, err)
	}
}
