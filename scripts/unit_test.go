package scripts

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// verifyRoot makes a file-system root for systemd-analyze: this machine's
// system units (sysinit.target and the rest that verify loads), the unit
// at /etc/systemd/system and the real binary at the path ExecStart names.
func verifyRoot(t *testing.T, unit string) string {
	t.Helper()
	root := t.TempDir()
	var sysUnits string
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			sysUnits = d
			break
		}
	}
	if sysUnits == "" {
		t.Fatal("no system units (sysinit.target) on this machine: apt-get install systemd")
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, "cp", "-a", sysUnits, filepath.Join(root, "usr/lib/systemd/system"))
	copyFile(t, filepath.Join(dist(t), "edge-agent-linux-amd64"), filepath.Join(root, "usr/local/bin/edge-agent"), 0o755)
	writeFile(t, filepath.Join(root, "etc/systemd/system/edge-agent.service"), unit, 0o644)
	return root
}

func verifyUnit(root string) (string, error) {
	return shErr("systemd-analyze", "verify", "--man=no", "--root="+root, "/etc/systemd/system/edge-agent.service")
}

// `systemd-analyze verify` passes on the unit: exit 0 and not a word (it
// warns about an unknown key or a bad value on stderr and still exits 0,
// which the typo case below shows).
func TestUnitVerifies(t *testing.T) {
	need(t, "systemd", "systemd-analyze")
	unit := readUnit(t)
	out, err := verifyUnit(verifyRoot(t, unit))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: err %v, output:\n%s", err, out)
	}

	t.Run("a typo is caught", func(t *testing.T) {
		bad := strings.Replace(unit, "ProtectSystem=strict", "ProtectSystm=strict", 1)
		out, err := verifyUnit(verifyRoot(t, bad))
		if err == nil && strings.TrimSpace(out) == "" {
			t.Fatal("verify said nothing about ProtectSystm=: this test would not catch a broken unit")
		}
	})

	t.Run("hardening", func(t *testing.T) {
		out, err := shErr("systemd-analyze", "security", "--offline=true", "--root="+verifyRoot(t, unit), "/etc/systemd/system/edge-agent.service")
		if err != nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`Overall exposure level for edge-agent.service: ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no exposure level in:\n%s", out)
		}
		level, _ := strconv.ParseFloat(m[1], 64)
		t.Logf("systemd-analyze security: exposure %.1f (0 = locked down, 10 = none)", level)
		if level > 2.5 {
			t.Errorf("exposure %.1f, want 2.5 or less:\n%s", level, out)
		}
	})
}

// The directives the issue asks for, as the agent and the image installer
// rely on them.
func TestUnitDirectives(t *testing.T) {
	unit := readUnit(t)
	got := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("not a key=value line: %q", line)
			continue
		}
		got[k] = append(got[k], v)
	}
	for k, want := range map[string]string{
		"Type":                "notify",
		"NotifyAccess":        "main",
		"ExecStart":           "/usr/local/bin/edge-agent run -config /etc/edge-agent/config.toml",
		"Restart":             "on-failure",
		"After":               "time-sync.target network-online.target",
		"User":                "edge-agent",
		"Group":               "edge-agent",
		"SupplementaryGroups": "gpio",
		"DeviceAllow":         "char-gpiochip rw",
		"StateDirectory":      "edge-agent",
		"ReadWritePaths":      "/var/lib/edge-agent",
		"ProtectSystem":       "strict",
		"NoNewPrivileges":     "yes",
		"PrivateTmp":          "yes",
		"ProtectHome":         "yes",
		"WantedBy":            "multi-user.target",
	} {
		if v := got[k]; len(v) != 1 || v[0] != want {
			t.Errorf("%s=%q, want %s=%s", k, v, k, want)
		}
	}
	// The agent pings every WatchdogSec/2 while no loop is stuck for 30 s.
	if v := got["WatchdogSec"]; len(v) != 1 || !strings.HasSuffix(v[0], "s") {
		t.Errorf("WatchdogSec=%q, want a value in seconds", v)
	}
	// Stopping takes at most 8 s (README): the stop timeout must allow it.
	if v := got["TimeoutStopSec"]; len(v) != 1 {
		t.Errorf("TimeoutStopSec=%q", v)
	} else if s, err := strconv.Atoi(strings.TrimSuffix(v[0], "s")); err != nil || s < 10 {
		t.Errorf("TimeoutStopSec=%s, want 10s or more", v[0])
	}
}

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "edge-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
