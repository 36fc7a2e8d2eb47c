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

	t.Run("a bad resource bound is caught", func(t *testing.T) {
		for _, bad := range []string{"MemoryMax=lots", "TasksMax=many"} {
			k, _, _ := strings.Cut(bad, "=")
			u := regexp.MustCompile(`(?m)^`+k+`=.*$`).ReplaceAllString(unit, bad)
			if u == unit {
				t.Fatalf("no %s= line in the unit", k)
			}
			out, err := verifyUnit(verifyRoot(t, u))
			if err == nil && strings.TrimSpace(out) == "" {
				t.Errorf("verify said nothing about %s: this test would not catch a broken bound", bad)
			}
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
	// Resource bounds for a Pi Zero (512 MB): the agent peaks at ~32 MB
	// draining a 100,000-message backlog (docs/testing.md#make-bench), so the
	// kill line is well above that and well below the machine.
	const peak, zeroRAM = 32 << 20, 512 << 20
	high, memMax := unitBytes(t, got, "MemoryHigh"), unitBytes(t, got, "MemoryMax")
	if memMax < 3*peak || memMax > zeroRAM/4 {
		t.Errorf("MemoryMax=%d MiB, want 3× the 32 MB peak (96 MiB) to a quarter of a Pi Zero's 512 MB (128 MiB)", memMax>>20)
	}
	if high < 2*peak || high >= memMax {
		t.Errorf("MemoryHigh=%d MiB, want at least twice the peak (64 MiB) and below MemoryMax (%d MiB)", high>>20, memMax>>20)
	}
	// The Go runtime runs about ten threads; room for bursts, not for a runaway.
	if v := got["TasksMax"]; len(v) != 1 {
		t.Errorf("TasksMax=%q, want one", v)
	} else if n, err := strconv.Atoi(v[0]); err != nil || n < 32 || n > 256 {
		t.Errorf("TasksMax=%s, want a number from 32 to 256", v[0])
	}
	// Stopping takes at most 8 s (README, docs/architecture.md): the stop timeout must allow it.
	if v := got["TimeoutStopSec"]; len(v) != 1 {
		t.Errorf("TimeoutStopSec=%q", v)
	} else if s, err := strconv.Atoi(strings.TrimSuffix(v[0], "s")); err != nil || s < 10 {
		t.Errorf("TimeoutStopSec=%s, want 10s or more", v[0])
	}
}

// unitBytes is the size a unit's key sets (K, M, G: powers of 1024, as
// systemd reads them); it fails the test when the key is missing or not a
// size.
func unitBytes(t *testing.T, got map[string][]string, key string) int64 {
	t.Helper()
	v := got[key]
	if len(v) != 1 {
		t.Errorf("%s=%q, want one size", key, v)
		return 0
	}
	m := regexp.MustCompile(`^([0-9]+)([KMG]?)$`).FindStringSubmatch(v[0])
	if m == nil {
		t.Errorf("%s=%s, want a size such as 128M", key, v[0])
		return 0
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n << map[string]uint{"": 0, "K": 10, "M": 20, "G": 30}[m[2]]
}

func readUnit(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "scripts", "edge-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
