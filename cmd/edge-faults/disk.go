package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// smallFS mounts a fresh ext4 of size bytes on a loop device (-m 0: root
// must not write into reserved blocks) and returns its mount point and the
// function that unmounts it.
func smallFS(dir string, size int64) (string, func(), error) {
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return "", nil, err
	}
	if err := os.Truncate(img, size); err != nil {
		return "", nil, err
	}
	if err := sh("mkfs.ext4", "-q", "-F", "-m", "0", img); err != nil {
		return "", nil, err
	}
	if err := sh("mount", "-o", "loop", img, mnt); err != nil {
		return "", nil, err
	}
	return mnt, func() {
		if err := sh("umount", mnt); err != nil {
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	}, nil
}

const diskRelays = `
[leds]
status = "GPIO27"
fault = "GPIO24"

[[relay]]
name = "lamp"
pin = "GPIO22"
power_on = "restore"
`

// runDiskFull: data_dir on an 8 MiB ext4 that fills up. The agent must
// stop acknowledging, show storage (state and LEDs), keep its relays, not
// execute a command it cannot store, survive a SIGKILL while full (the
// store opens and passes its check on the full disk), and resume by itself
// once space is freed, with nothing lost and the waiting command executed
// once.
func runDiskFull(e *env, p params, r *result) {
	if !needTools(r, true, "mkfs.ext4", "mount", "umount") {
		return
	}
	m := e.scenarioBroker(r, "disk", agenttest.MosquittoOptions{})
	if m == nil {
		return
	}
	defer m.Stop()
	dir := e.sub("disk")
	mnt, umount, err := smallFS(dir, 8<<20)
	if err != nil {
		r.fail("loop-mounted ext4: %v", err)
		return
	}
	defer umount()
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 5<<20), 0o600); err != nil {
		r.fail("%v", err)
		return
	}
	cfg := newAgentConfig("faults-disk", m.URL)
	cfg.dataDir = filepath.Join(mnt, "data")
	cfg.extra = diskRelays
	cfgPath, a, _, ok := e.startConnected(r, dir, cfg, nil)
	if !ok {
		return
	}
	defer func() { a.kill() }()
	notify := cfg.topic("notify")
	rl, pub, ok := e.cloudClients(r, m.URL, cfg, "faults-disk")
	if !ok {
		return
	}
	defer rl.close()
	defer pub.Disconnect(100)
	send := func(payload []byte) bool {
		if err := agenttest.PublishQoS1(pub, notify, payload, 10*time.Second); err != nil {
			r.fail("publish: %v", err)
			return false
		}
		return true
	}
	if !send([]byte(`{"id":"lamp-on","method":"relay.set","params":{"relay":"lamp","on":true}}`)) {
		return
	}
	if _, err := waitStatus(cfg.dataDir, 10*time.Second, func(s status) bool { return s.Relays["lamp"].On && s.Outbox.Pending == 0 }); err != nil {
		r.fail("lamp on: %v", err)
		return
	}

	big := func(i int) []byte {
		return append([]byte(fmt.Sprintf("big-%04d:", i)), bytes.Repeat([]byte{'x'}, 64<<10)...)
	}
	var acked [][]byte
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		pl := big(len(acked))
		if !send(pl) {
			return
		}
		acked = append(acked, pl)
		if st, err := getStatus(cfg.dataDir); err == nil && st.State == "storage" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fullAfter := len(acked)
	st, err := waitStatus(cfg.dataDir, 10*time.Second, func(s status) bool { return s.State == "storage" && s.LEDs["status"] == "storage" })
	if err != nil {
		r.fail("never showed storage: %v", err)
		return
	}
	if st.LEDs["fault"] != "on" || st.LastError == "" || !st.Relays["lamp"].On {
		r.fail("disk full: leds %v last_error %q lamp on=%v", st.LEDs, st.LastError, st.Relays["lamp"].On)
	}
	// Nothing is acknowledged, so nothing more is stored, while a command
	// (lamp off) and more messages wait at the broker.
	totalFull := st.Inbox.Total
	send([]byte(`{"id":"lamp-off-while-full","method":"relay.set","params":{"relay":"lamp","on":false}}`))
	for i := 0; i < 5; i++ {
		pl := big(len(acked))
		send(pl)
		acked = append(acked, pl)
	}
	time.Sleep(2 * time.Second)
	st, _ = getStatus(cfg.dataDir)
	if st.Inbox.Total != totalFull {
		r.fail("the inbox grew from %d to %d while the disk was full", totalFull, st.Inbox.Total)
	}
	if !st.Relays["lamp"].On || st.State != "storage" {
		r.fail("while full: lamp on=%v state %q", st.Relays["lamp"].On, st.State)
	}

	// Power cuts while full, at random instants: each time the store must
	// open and pass its check on the full disk, the lamp come back on, and
	// storage show again.
	rnd := rng(p, "diskfull")
	scratch := e.sub("disk-scratch")
	killsFull := 3
	if p.soak > 0 {
		killsFull = 20
	}
	for k := 0; k < killsFull; k++ {
		time.Sleep(time.Duration(rnd.IntN(1500)) * time.Millisecond)
		a.kill()
		if _, err := checkStoreOffline(cfg.dataDir, scratch, nil); err != nil {
			r.fail("after a SIGKILL on the full disk the database fails its check: %v", err)
		}
		a, err = e.startAgent(cfgPath, nil)
		if err != nil {
			r.fail("%v", err)
			return
		}
		if !a.waitLog("store open", 10*time.Second) {
			r.fail("restart on the full disk did not open the store:\n%s", tail(a.Log(), 10))
			return
		}
		st, err = waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return s.State == "storage" })
		if err != nil {
			r.fail("after a restart on the full disk: %v", err)
		}
		if !st.Relays["lamp"].On {
			r.fail("the lamp is off after a restart on the full disk")
		}
	}

	// Free the space: the agent resumes by itself.
	if err := os.Remove(filler); err != nil {
		r.fail("%v", err)
	}
	freed := time.Now()
	st, err = waitStatus(cfg.dataDir, 30*time.Second, func(s status) bool { return s.State == "ok" })
	if err != nil {
		r.fail("did not resume after space was freed: %v\n%s", err, tail(a.Log(), 10))
		return
	}
	resumed := time.Since(freed)
	rep, ok := allStored(r, cfg.dataDir, acked, 30*time.Second)
	if !ok {
		return
	}
	if rep.lost > 0 {
		r.fail("%d of %d messages acknowledged by the broker while the disk filled never stored", rep.lost, rep.acked)
	}
	// State ok can show for a moment before the command is stored (the
	// first commit after the space returned may not hold it): wait for it.
	if _, err := waitStatus(cfg.dataDir, 15*time.Second, func(s status) bool { return !s.Relays["lamp"].On }); err != nil {
		r.fail("the lamp-off command sent while the disk was full was not executed after space returned: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	replies, _ := rl.snapshot()
	if n := len(byID(replies)["lamp-off-while-full"]); n != 1 {
		r.fail("lamp-off-while-full answered %d times, want once", n)
	}
	if c := strings.Count(a.Log(), "id=lamp-off-while-full"); c == 0 {
		r.fail("lamp-off-while-full never executed")
	}
	if err := a.term(10 * time.Second); err != nil {
		r.fail("%v", err)
	}
	if _, err := checkStoreOffline(cfg.dataDir, scratch, nil); err != nil {
		r.fail("after the run the database fails its check: %v", err)
	}
	r.fig("disk", "8 MiB ext4, 5 MiB filler; full after %d messages of 64 KiB", fullAfter)
	r.fig("while full", "state storage, fault LED on, inbox frozen at %d, lamp kept on", totalFull)
	r.fig("SIGKILLs while full", "%d; each time the store opened and passed its check on the full disk", killsFull)
	r.fig("resumed after space freed", "%s", ms(resumed))
	r.fig("acknowledged by the broker / lost", "%d / %d (%d duplicates)", rep.acked, rep.lost, rep.dups)
	summarise("disk", "%d of %d, resumed %s after space freed", rep.acked-rep.lost, rep.acked, ms(resumed))
}
