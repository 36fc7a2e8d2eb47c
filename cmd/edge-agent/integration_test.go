package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
	"github.com/edge-agent/edge-agent/agent/control"
	"github.com/edge-agent/edge-agent/hw/led"
)

// payloadFor makes message i's payload: numbered text, and every seventh
// one binary with every byte value, so byte-exactness is checked on both.
func payloadFor(i int) []byte {
	if i%7 == 3 {
		b := []byte(fmt.Sprintf("bin-%06d:", i))
		for v := 0; v < 256; v++ {
			b = append(b, byte(v))
		}
		return b
	}
	return []byte(fmt.Sprintf(`{"n":%d,"note":"notification %06d"}`, i, i))
}

// byPayload indexes records by payload, counting duplicates.
func byPayload(t *testing.T, recs []control.Record) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, r := range recs {
		b, err := r.Bytes()
		if err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		m[string(b)]++
	}
	return m
}

func TestIngestInOrderByteExact(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	p := r.startAgent()
	r.waitConnected()
	pub := r.publisher("cloud-ingest")

	const n = 2000
	start := time.Now()
	for i := 0; i < n; i++ {
		// Not waiting for each PUBACK keeps mosquitto's in-flight window
		// full, which is what a burst looks like to the agent.
		tok := pub.Publish(r.notifyTopic(), 1, false, payloadFor(i))
		if i%100 == 99 || i == n-1 {
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %d: %v", i, tok.Error())
			}
		}
	}
	st := r.waitStatus(30*time.Second, func(s agent.Status) bool { return s.Inbox.Total >= n })
	took := time.Since(start)
	t.Logf("%d messages published and stored in %v (%.0f msg/s)", n, took.Round(time.Millisecond), n/took.Seconds())

	recs, err := r.export()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n || st.Inbox.Total != n {
		t.Fatalf("stored %d records (status says %d), want %d", len(recs), st.Inbox.Total, n)
	}
	for i, rec := range recs {
		got, _ := rec.Bytes()
		if want := payloadFor(i); !bytes.Equal(got, want) {
			t.Fatalf("record %d (seq %d): payload %q, want %q", i, rec.Seq, got, want)
		}
		if rec.Topic != r.notifyTopic() {
			t.Fatalf("record %d: topic %q", i, rec.Topic)
		}
		if i > 0 && rec.Seq != recs[i-1].Seq+1 {
			t.Fatalf("seqs not consecutive at %d: %d after %d", i, rec.Seq, recs[i-1].Seq)
		}
	}
	if strings.Contains(p.Log(), testPass) {
		t.Fatal("the MQTT password appears in the agent's log")
	}
	if !strings.Contains(p.Log(), "notification stored") {
		t.Fatal("no per-notification log line")
	}
	if err, took := p.stop(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v after %v", err, took)
	}
}

func TestMessagesWhileStoppedArriveAfterStart(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	p := r.startAgent()
	r.waitConnected()
	if err, _ := p.stop(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}

	pub := r.publisher("cloud-offline")
	for i := 0; i < 50; i++ {
		if err := agenttest.PublishQoS1(pub, r.notifyTopic(), payloadFor(i), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	r.startAgent()
	r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.Inbox.Total >= 50 })
	recs, err := r.export()
	if err != nil {
		t.Fatal(err)
	}
	got := byPayload(t, recs)
	for i := 0; i < 50; i++ {
		if got[string(payloadFor(i))] == 0 {
			t.Errorf("message %d published while the agent was stopped never arrived", i)
		}
	}
}

// TestSIGKILLMidStreamLosesNothing kills the agent process repeatedly while a
// publisher streams QoS 1 messages. Every message the broker acknowledged to
// the publisher must end up in the inbox: the broker only forgets a message
// after the agent's PUBACK, which the agent sends only after the commit.
func TestSIGKILLMidStreamLosesNothing(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, seed))

	p := r.startAgent()
	r.waitConnected()
	pub := r.publisher("cloud-kill")

	const n, kills = 3000, 5
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := agenttest.PublishQoS1(pub, r.notifyTopic(), payloadFor(i), 20*time.Second); err != nil {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(50+rnd.IntN(250)) * time.Millisecond)
		if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.done
		p = r.startAgent()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Wait for every message, not for n records: the redelivered
	// duplicates count in the inbox too, and the last ones may still be in
	// the commit window.
	var got map[string]int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		recs, err := r.export()
		if err != nil { // the last restart may not be listening yet
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			continue
		}
		got = byPayload(t, recs)
		all := true
		for i := 0; i < n && all; i++ {
			all = got[string(payloadFor(i))] > 0
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	missing, dups := 0, 0
	for i := 0; i < n; i++ {
		c := got[string(payloadFor(i))]
		if c == 0 {
			missing++
			if missing < 10 {
				t.Errorf("message %d acknowledged by the broker but not in the inbox", i)
			}
		}
		if c > 1 {
			dups += c - 1
		}
	}
	t.Logf("%d kills, %d messages, %d missing, %d duplicates (QoS 1 allows them)", kills, n, missing, dups)
	if missing > 0 {
		t.Fatalf("%d acknowledged messages lost", missing)
	}
}

func TestRefusedConnectionsSayWhy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		over      func(r *rig) map[string]string
		wantState string
		wantIn    string
	}{
		{"wrong password", func(r *rig) map[string]string {
			return map[string]string{"password_file": "", "password": `"not-the-password"`}
		}, led.StateAuth, "refused the credentials"},
		{"wrong CA", func(r *rig) map[string]string {
			return map[string]string{"ca_file": fmt.Sprintf("%q", r.pki.OtherCAFile)}
		}, led.StateAuth, "mqtt.ca_file"},
		{"wrong host name", func(r *rig) map[string]string {
			return map[string]string{"server_name": `"wrong.example"`}
		}, led.StateAuth, "server_name"},
		{"broker down", func(r *rig) map[string]string {
			return map[string]string{"broker": `"tls://127.0.0.1:1"`}
		}, led.StateConnecting, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, agenttest.MosquittoOptions{})
			r.writeConfig(tc.over(r))
			p := r.startAgent()
			st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.LastError != "" })
			if st.Connected || st.State != tc.wantState || !strings.Contains(st.LastError, tc.wantIn) {
				t.Fatalf("connected=%v state=%q last_error=%q; want not connected, %q, mentioning %q",
					st.Connected, st.State, st.LastError, tc.wantState, tc.wantIn)
			}
			// It keeps trying without ever connecting.
			time.Sleep(1500 * time.Millisecond)
			if st, _ := r.status(); st.Connected {
				t.Fatal("connected after all")
			}
			if strings.Contains(p.Log(), testPass) || strings.Contains(p.Log(), "not-the-password") {
				t.Fatal("a password appears in the agent's log")
			}
		})
	}
}

// TestPasswordFileFixedAfterAuth: refused for a wrong password in
// password_file, the agent says so naming that key (not mqtt.password),
// and once the file is corrected it connects without a restart.
func TestPasswordFileFixedAfterAuth(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	pass := filepath.Join(r.dir, "mqtt.pass")
	if err := os.WriteFile(pass, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := r.startAgent()
	st := r.waitStatus(15*time.Second, func(s agent.Status) bool { return s.State == led.StateAuth })
	if !strings.Contains(st.LastError, "refused the credentials") || !strings.Contains(st.LastError, "mqtt.password_file") {
		t.Fatalf("last_error %q, want a refusal naming mqtt.password_file", st.LastError)
	}
	// A second refusal, so that the backoff has grown past its first step.
	time.Sleep(2 * time.Second)
	if err := os.WriteFile(pass, []byte(testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(30*time.Second, func(s agent.Status) bool { return s.Connected })
	if !strings.Contains(p.Log(), "mqtt.password_file has changed") {
		t.Error("no log line about the changed password file")
	}
	if strings.Contains(p.Log(), testPass) || strings.Contains(p.Log(), "not-the-password") {
		t.Fatal("a password appears in the agent's log")
	}
}

func TestSIGTERMExitsCleanlyAndQuickly(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	p := r.startAgent()
	r.waitConnected()
	err, took := p.stop(5 * time.Second)
	if err != nil {
		t.Fatalf("exit: %v", err)
	}
	t.Logf("stopped in %v", took.Round(time.Millisecond))
	if !strings.Contains(p.Log(), "stopped") {
		t.Fatalf("no 'stopped' line in the log")
	}
}

// TestStatusTopicOnlineOfflineAndWill: the retained status says online
// while the agent is connected, offline after a clean stop, and offline by
// the last will after a SIGKILL (the broker publishes it once it notices).
func TestStatusTopicOnlineOfflineAndWill(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	statusTopic := "/sys/" + r.device + "/thing/status"
	retained := func() string {
		t.Helper()
		// A fresh subscriber gets the retained message at once.
		c := r.publisher(fmt.Sprintf("watch-%d", time.Now().UnixNano()))
		got := make(chan string, 1)
		c.Subscribe(statusTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
			select {
			case got <- string(m.Payload()):
			default:
			}
		}).WaitTimeout(5 * time.Second)
		defer c.Disconnect(0)
		select {
		case s := <-got:
			return s
		case <-time.After(2 * time.Second):
			return "(none)"
		}
	}
	p := r.startAgent()
	r.waitConnected()
	if got := retained(); got != "online" {
		t.Fatalf("while connected: %q, want online", got)
	}
	if err, _ := p.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := retained(); got != "offline" {
		t.Fatalf("after SIGTERM: %q, want offline", got)
	}
	p = r.startAgent()
	r.waitConnected()
	if got := retained(); got != "online" {
		t.Fatalf("after restart: %q, want online", got)
	}
	p.kill()
	// The broker sees the socket close at once (the process is gone) and
	// publishes the will.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if retained() == "offline" {
			return
		}
	}
	t.Fatal("no offline will after SIGKILL")
}

// TestMutualTLS: with a client certificate the agent connects to a broker
// that requires one; without it, it is refused and says so.
func TestMutualTLS(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{RequireCertificate: true})
	r.writeConfig(map[string]string{
		"cert_file": fmt.Sprintf("%q", r.pki.ClientCert),
		"key_file":  fmt.Sprintf("%q", r.pki.ClientKey),
	})
	p := r.startAgent()
	r.waitConnected()
	if err, _ := p.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	r.writeConfig(nil)
	r.startAgent()
	st := r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.LastError != "" })
	if st.Connected || st.State != led.StateAuth || !strings.Contains(st.LastError, "client certificate") {
		t.Fatalf("without a client certificate: connected=%v state=%q last_error=%q", st.Connected, st.State, st.LastError)
	}
}
