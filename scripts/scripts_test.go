// Package scripts tests field delivery end to end with the real tools: `make
// dist` (run under qemu-user), the systemd unit (systemd-analyze), the image
// installer on a two-partition image on a loop device, and deploy.sh against
// a real sshd and mosquitto on 127.0.0.1.
//
// A missing tool skips a test with the package to install, except under CI
// (CI set), where it fails: .ci/run installs them all. The image and deploy
// tests need root (loop devices, mount, users for the ssh logins).
package scripts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The version and commit the test builds stamp.
const (
	testVersion = "v0.0.0-disttest"
	testCommit  = "0123456789ab"
)

// distArches are the binaries make dist ships.
var distArches = []string{"armv6", "armv7", "arm64", "amd64"}

var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Dir(wd) // this package is scripts/
}()

var (
	distOnce sync.Once
	distDir  string
	distErr  error
	distTemp string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if distTemp != "" {
		os.RemoveAll(distTemp)
	}
	os.Exit(code)
}

// dist returns a directory holding `make dist` output for this tree,
// stamped with testVersion and testCommit, built once per test binary.
func dist(t *testing.T) string {
	t.Helper()
	distOnce.Do(func() {
		if distTemp, distErr = os.MkdirTemp("", "edge-agent-dist-"); distErr != nil {
			return
		}
		distDir = filepath.Join(distTemp, "dist")
		var out []byte
		out, distErr = makeDist(repoRoot, distDir)
		if distErr != nil {
			distErr = fmt.Errorf("make dist: %v\n%s", distErr, out)
		}
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distDir
}

// makeDist runs `make dist` in src into out, with extra environment.
func makeDist(src, out string, env ...string) ([]byte, error) {
	return makeDistNice(0, src, out, env...)
}

// makeDistNice is makeDist at a lower CPU priority (nice > 0).
func makeDistNice(nice int, src, out string, env ...string) ([]byte, error) {
	args := []string{"make", "-C", src, "--no-print-directory", "dist",
		"DIST=" + out, "VERSION=" + testVersion, "COMMIT=" + testCommit}
	if nice > 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(nice)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	return cmd.CombinedOutput()
}

// cleanEnv is the environment without what an outer make passes down (its
// jobserver descriptors are not ours).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// need finds each tool in PATH or the sbin directories, or skips the test
// (fails it under CI) naming the Debian package that has it.
func need(t *testing.T, pkg string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := lookTool(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed: .ci/run installs %s", tool, pkg)
			}
			t.Skipf("%s not installed (apt-get install %s)", tool, pkg)
		}
	}
}

func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// needRoot skips the test unless it runs as root (fails under CI).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (loop devices, mount, users); CI runs as root")
		}
		t.Skip("needs root (loop devices, mount, users)")
	}
}

// sh runs a command and returns its combined output; it fails the test on
// an error unless the caller wants the error.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := shErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func shErr(name string, args ...string) (string, error) {
	path, err := lookTool(name)
	if err != nil {
		path = name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = cleanEnv()
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err = cmd.Run()
	return b.String(), err
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// goVersion is the toolchain that built this test, and so make dist.
var goVersion = runtime.Version()
