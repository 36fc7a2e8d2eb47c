package main

// Updates over ssh: scripts/deploy.sh from this machine to the gateway's
// sshd (QEMU forwards a loopback port to it), as an operator runs it.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/cmd/internal/testcloud"
)

const (
	goodVersion = "system-good"
	badVersion  = "system-bad"
	// The real agents the broken ones run, and the config that points
	// the one that never connects at a port nobody listens on.
	guestBad   = "/usr/local/lib/edge-system/edge-agent-bad"
	guestNever = "/etc/edge-agent/never.toml"
	// deploy.sh's health gate for these runs: the agent restarts and
	// connects in a few seconds even under TCG.
	deployTimeout = 45
	deploySettle  = 5
)

// The broken builds, as the field tests (scripts/deploy_test.go) make
// them: each passes deploy.sh's checks on the target (version, config
// check) and fails after the swap.
var brokenScripts = map[string]string{
	// dies at start, every time systemd starts it
	"crash": `#!/bin/sh
case $1 in
version) echo "edge-agent v-crash (commit 000000000000, go, linux/arm64)" ;;
config) echo "$4: ok" ;;
run) echo "panic: simulated crash at start" >&2; exit 2 ;;
*) echo "edge-agent: the daemon is not running" >&2; exit 1 ;;
esac
`,
	// a real agent whose broker is a closed port: up, never connected
	"never": `#!/bin/sh
[ "$1" = run ] && exec ` + guestBad + ` run -config ` + guestNever + `
exec ` + guestBad + ` "$@"
`,
	// a real agent, connected, whose control socket never answers the
	// health check (status -json), as when its loop is stuck
	"hang": `#!/bin/sh
[ "$1 $2" = "status -json" ] && exec sleep 3600
exec ` + guestBad + ` "$@"
`,
}

// buildAgent builds the arm64 agent from this tree with a version stamp
// (the shipped flags bar the size-tuning ones: this binary is only run).
func (r *rig) buildAgent(version string) (string, error) {
	out := filepath.Join(r.dir, "edge-agent-"+version)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, "./cmd/edge-agent")
	cmd.Dir = r.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// deploy runs scripts/deploy.sh with bin against the gateway.
func (r *rig) deploy(bin string) (string, int, time.Duration) {
	args := []string{"-b", bin, "--timeout", fmt.Sprint(deployTimeout), "--settle", fmt.Sprint(deploySettle)}
	for i := 0; i+1 < len(r.gw.sshOpts()); i += 2 {
		o := r.gw.sshOpts()
		args = append(args, o[i], o[i+1])
	}
	args = append(args, "root@127.0.0.1")
	t0 := time.Now()
	cmd := exec.Command(filepath.Join(r.repo, "scripts/deploy.sh"), args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return strings.TrimSpace(string(out)), code, time.Since(t0)
}

func fileSum(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// running checks that the binary in place is want (by SHA-256), that
// the unit's process runs it, and that it is connected as version.
func (r *rig) running(res *result, wantSum, version string) {
	out, err := r.gw.ssh(20*time.Second, "sha256sum /usr/local/bin/edge-agent | cut -d' ' -f1; ls /usr/local/bin/edge-agent.new 2>/dev/null | wc -l")
	if err != nil {
		res.fail("%v", err)
		return
	}
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != wantSum {
		res.fail("/usr/local/bin/edge-agent is %q, want the binary with SHA-256 %s", out, wantSum)
	}
	if len(f) == 2 && f[1] != "0" {
		res.fail("deploy.sh left /usr/local/bin/edge-agent.new behind")
	}
	st, err := r.waitStatus(time.Minute, "connected agent "+version, func(s agentStatus) bool { return connected(s) && s.Version == version })
	if err != nil {
		res.fail("%v", err)
		return
	}
	p, _ := r.gw.show(unit, "ActiveState", "SubState")
	if p["ActiveState"] != "active" || p["SubState"] != "running" {
		res.fail("unit %s/%s after deploy", p["ActiveState"], p["SubState"])
	}
	_ = st
}

func (r *rig) checkDeployGood(res *result) bool {
	bin, err := r.buildAgent(goodVersion)
	if err != nil {
		res.fail("%v", err)
		return false
	}
	sum, _ := fileSum(bin)
	out, code, took := r.deploy(bin)
	if code != 0 || !strings.Contains(out, ": ok:") {
		res.fail("deploy.sh exit %d: %s", code, out)
		return false
	}
	r.running(res, sum, goodVersion)
	r.goodSum = sum
	res.fig("deploy.sh %s (health gate: connected, then settle %d s): %s", secs(took), deploySettle, out)
	return true
}

// checkDeployBad deploys one broken build: deploy.sh must say rolled back
// and exit 1, and the good binary must be the one running after.
func (r *rig) checkDeployBad(res *result, kind string) bool {
	if r.goodSum == "" {
		res.fail("no good deploy to roll back to")
		return false
	}
	if !r.badReady {
		bad, err := r.buildAgent(badVersion)
		if err != nil {
			res.fail("%v", err)
			return false
		}
		never := strings.Replace(agentConfig(r.cloud.Broker.Port), fmt.Sprintf("%s:%d", testcloud.HostAlias, r.cloud.Broker.Port), testcloud.HostAlias+":1", 1)
		nf := filepath.Join(r.dir, "never.toml")
		if err := os.WriteFile(nf, []byte(never), 0o644); err != nil {
			res.fail("%v", err)
			return false
		}
		if _, err := r.gw.ssh(20*time.Second, "mkdir -p "+filepath.Dir(guestBad)); err != nil {
			res.fail("%v", err)
			return false
		}
		for src, dst := range map[string]string{bad: guestBad, nf: guestNever} {
			args := append(append([]string{"-q"}, r.gw.sshOpts()...), src, "root@127.0.0.1:"+dst)
			// scp takes -P, not Port=, but -o Port= works for both.
			if b, err := exec.Command("scp", args...).CombinedOutput(); err != nil {
				res.fail("scp %s: %v: %s", src, err, b)
				return false
			}
		}
		if _, err := r.gw.ssh(20*time.Second, "chmod 755 "+guestBad+" && chgrp edge-agent "+guestNever+" && chmod 640 "+guestNever); err != nil {
			res.fail("%v", err)
			return false
		}
		r.badReady = true
	}
	bin := filepath.Join(r.dir, "edge-agent-"+kind)
	if err := os.WriteFile(bin, []byte(brokenScripts[kind]), 0o755); err != nil {
		res.fail("%v", err)
		return false
	}
	out, code, took := r.deploy(bin)
	if code != 1 || !strings.Contains(out, "rolled back") {
		res.fail("deploy.sh exit %d, want 1 and \"rolled back\": %s", code, out)
	}
	r.running(res, r.goodSum, goodVersion)
	res.fig("rolled back in %s: %s", secs(took), truncate(out, 160))
	return true
}
