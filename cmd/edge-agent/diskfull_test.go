package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/hw/led"
)

// TestDiskFullShowsStorageAndLosesNothing puts data_dir on a small real file
// system, fills it, and checks that the agent stops acknowledging, shows
// the storage state on its LEDs, keeps its relays, and stores everything
// once space is freed.
func TestDiskFullShowsStorageAndLosesNothing(t *testing.T) {
	mnt := agenttest.SmallFS(t, 8<<20)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newCommandRig(t)
	r.dataDirOverride = filepath.Join(mnt, "data")
	r.writeConfig(nil)
	r.startAgent()
	r.waitConnected()
	rep := r.replies()
	pub := r.publisher("cloud-full")
	r.send(pub, `{"id":"lamp-on","method":"relay.set","params":{"relay":"lamp","on":true}}`)
	rep.wait("lamp-on")

	// 64 KiB payloads until the agent can no longer store them.
	payload := func(i int) []byte {
		return append([]byte(fmt.Sprintf("big-%04d:", i)), bytes.Repeat([]byte{'x'}, 64<<10)...)
	}
	sent := 0
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// Publishing does not wait for the agent: the broker acknowledges it.
		if err := agenttest.PublishQoS1(pub, r.notifyTopic(), payload(sent), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		sent++
		if st, err := r.status(); err == nil && st.State == led.StateStorage {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.LEDs["status"] == led.StateStorage })
	if st.State != led.StateStorage || st.LEDs["fault"] != "on" || st.LastError == "" {
		t.Fatalf("disk full: state %q leds %v last_error %q", st.State, st.LEDs, st.LastError)
	}
	if !st.Relays["lamp"].On {
		t.Fatal("the lamp changed while the store was full")
	}
	t.Logf("store full after %d messages of 64 KiB: %s", sent, st.LastError)

	// Free the space: the agent resumes by itself and loses nothing.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Every message the broker took is stored once the agent resumes: the
	// lamp command and the sent ones (the last may still sit in the
	// commit window when the state turns ok).
	r.waitStatus(30*time.Second, func(s agent.Status) bool { return s.State == led.StateOK && s.Inbox.Total >= sent+1 })
	recs, err := r.export()
	if err != nil {
		t.Fatal(err)
	}
	got := byPayload(t, recs)
	for i := 0; i < sent; i++ {
		if got[string(payload(i))] == 0 {
			t.Errorf("message %d, acknowledged by the broker while the disk was full, never stored", i)
		}
	}
}
