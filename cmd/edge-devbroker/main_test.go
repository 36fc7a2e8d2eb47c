package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// The test binary runs as edge-devbroker itself when this is set, so the
// tests below exercise a real process: stdout, stderr, signals, exit code.
const asMain = "EDGE_DEVBROKER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestDevbrokerProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	cmd := exec.Command(os.Args[0], "-dir", dir, "-user", "demo", "-pass", "demo-pass")
	// A -race binary sleeps 1 s on exit unless told not to.
	cmd.Env = append(os.Environ(), asMain+"=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	var stderr lockedBuffer // written by exec's copier while the test reads it
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	// Ends with the process; the cleanup makes sure the process ends.
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()

	var got ready
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("no ready line; stderr:\n%s", stderr.String())
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("ready line %q: %v", l, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ready line within 10 s")
	}
	if !strings.HasPrefix(got.URL, "tls://127.0.0.1:") {
		t.Errorf("url = %q, want tls://127.0.0.1:PORT", got.URL)
	}
	if want := filepath.Join(dir, "ca.pem"); got.CAFile != want {
		t.Errorf("ca_file = %q, want %q", got.CAFile, want)
	}

	pki, err := agenttest.LoadOrNewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agenttest.Publisher(got.URL, pki, "demo", "demo-pass", "devbroker-test")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := agenttest.PublishQoS1(c, "demo/x", []byte("hi"), 5*time.Second); err != nil {
		t.Error(err)
	}
	c.Disconnect(100)
	if _, err := agenttest.Publisher(got.URL, pki, "demo", "wrong", "devbroker-test"); !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
		t.Errorf("wrong password: %v, want %v", err, packets.ErrorRefusedNotAuthorised)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("stderr lacks the shutdown log:\n%s", stderr.String())
	}
}

func TestDevbrokerReusesPKI(t *testing.T) {
	dir := t.TempDir()
	first, err := agenttest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(first.CAFile)

	// run prints the ready line before it waits for ctx, so an already
	// cancelled ctx runs it start to finish.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if got := run(ctx, []string{"-dir", dir}, &stdout, &stderr); got != exitOK {
		t.Fatalf("run = %d, want %d; stderr:\n%s", got, exitOK, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"ca_file":"`+first.CAFile+`"`) {
		t.Errorf("stdout = %q, want the ca_file %s", stdout.String(), first.CAFile)
	}
	if again, _ := os.ReadFile(first.CAFile); !bytes.Equal(ca, again) {
		t.Errorf("run replaced the valid PKI in %s", dir)
	}
}

func TestDevbrokerUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no dir", nil, exitUsage},
		{"user without pass", []string{"-dir", "x", "-user", "u"}, exitUsage},
		{"pass without user", []string{"-dir", "x", "-pass", "p"}, exitUsage},
		{"stray argument", []string{"-dir", "x", "extra"}, exitUsage},
		{"unknown flag", []string{"-nope"}, exitUsage},
		{"help", []string{"-h"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(context.Background(), tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
