package main

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
)

// stopBound is what the README promises: SIGTERM to exit within 8 s,
// whatever is running.
const stopBound = 8 * time.Second

// TestSIGTERMExitsWithinBound: SIGTERM ends the agent with exit 0 within
// 8 s while a `led test` plays (27 s at -each 3s), while a `relay set`
// waits on it, and while the broker accepts connections but never answers.
func TestSIGTERMExitsWithinBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		busy func(t *testing.T, r *rig) // makes the agent busy, returns once it is
	}{
		{"led test playing", func(t *testing.T, r *rig) {
			go cli("led", "test", "-each", "3s", "-config", r.cfgPath)
			r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.LEDs["status"] == "test" })
		}},
		{"led test and relay sets", func(t *testing.T, r *rig) {
			go cli("led", "test", "-each", "3s", "-config", r.cfgPath)
			r.waitStatus(5*time.Second, func(s agent.Status) bool { return s.LEDs["status"] == "test" })
			for i := range 5 {
				go cli("relay", "set", "lamp", []string{"on", "off"}[i%2], "-config", r.cfgPath)
			}
		}},
		{"broker stopped answering", func(t *testing.T, r *rig) {
			// SIGSTOP: the connection stays open, nothing is read or sent.
			if err := syscall.Kill(r.broker.Pid(), syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Kill(r.broker.Pid(), syscall.SIGCONT) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCommandRig(t)
			p := r.startAgent()
			r.waitConnected()
			tc.busy(t, r)
			err, took := p.stop(stopBound + 2*time.Second)
			if err != nil || took > stopBound {
				t.Fatalf("SIGTERM: exit %v after %v, want exit 0 within %v\n%s", err, took.Round(time.Millisecond), stopBound, tailLines(p.Log(), 15))
			}
			t.Logf("exit 0 after %v", took.Round(time.Millisecond))
		})
	}

	t.Run("broker accepts and never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close() // held open, never answered
			}
		}()
		r := newCommandRig(t)
		r.writeConfig(map[string]string{"broker": fmt.Sprintf("%q", "tls://"+ln.Addr().String()), "server_name": `"localhost"`})
		p := r.startAgent()
		// Wait until the agent is inside its connection attempt.
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.Log(), "connecting") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		err, took := p.stop(stopBound + 2*time.Second)
		if err != nil || took > stopBound {
			t.Fatalf("SIGTERM: exit %v after %v, want exit 0 within %v\n%s", err, took.Round(time.Millisecond), stopBound, tailLines(p.Log(), 15))
		}
		t.Logf("exit 0 after %v", took.Round(time.Millisecond))
	})
}
