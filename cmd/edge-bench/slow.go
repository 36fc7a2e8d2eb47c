package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The slow section runs the ingest figures on a disk as slow to sync as an
// SD card: the agent's data_dir on a loop ext4 of its own, and the agent in
// a cgroup (v1 blkio) whose writes to that device the kernel's block layer
// throttles to slowIOPS requests a second. A commit's fdatasync then waits
// for its data and flush requests to pass the throttle, milliseconds as on
// a card, while the CPU stays this machine's. The disk's own fdatasync is
// timed from a thread in the same cgroup on the same device.
const blkioRoot = "/sys/fs/cgroup/blkio"

// slowDisk is the throttled loop file system and its cgroup.
type slowDisk struct {
	fs     *loopFS
	cgroup string // its directory
}

// newSlowDisk mounts a fresh loop ext4 on mnt and makes a cgroup whose
// writes to it are throttled to iops requests a second.
func newSlowDisk(img, mnt, name string, iops int) (*slowDisk, error) {
	fs, err := newLoopFS(img, mnt)
	if err != nil {
		return nil, err
	}
	devno, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(fs.dev), "dev"))
	if err != nil {
		fs.close()
		return nil, err
	}
	cg := filepath.Join(blkioRoot, name)
	if err := os.Mkdir(cg, 0o755); err != nil {
		fs.close()
		return nil, fmt.Errorf("cgroup %s: %w (the slow section needs cgroup v1 blkio with throttling)", cg, err)
	}
	rule := strings.TrimSpace(string(devno)) + " " + strconv.Itoa(iops)
	if err := os.WriteFile(filepath.Join(cg, "blkio.throttle.write_iops_device"), []byte(rule), 0o644); err != nil {
		_ = os.Remove(cg)
		fs.close()
		return nil, fmt.Errorf("throttle %s: %w", rule, err)
	}
	return &slowDisk{fs: fs, cgroup: cg}, nil
}

// wrap returns a script that joins the cgroup and runs bin with its
// arguments: the agent's process (exec keeps its pid) is throttled from
// its first write.
func (d *slowDisk) wrap(dir, bin string) (string, error) {
	path := filepath.Join(dir, "in-cgroup.sh")
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s/cgroup.procs || exit 1\nexec %s \"$@\"\n", d.cgroup, bin)
	return path, os.WriteFile(path, []byte(script), 0o755)
}

// probe times n 4 KiB overwrites + fdatasync, back to back, from a thread
// that has joined the cgroup (v1 moves single threads), and returns the
// latencies in ms. Back to back, because the throttle is a rate: a lone
// request on an idle device passes at once (the block layer allows a
// slice's worth in a burst), so the floor under a commit is what a sync
// takes while the device is kept busy, as the agent keeps it under load.
func (d *slowDisk) probe(n int) ([]float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := strconv.Itoa(unix.Gettid())
	if err := os.WriteFile(filepath.Join(d.cgroup, "tasks"), []byte(tid), 0o644); err != nil {
		return nil, err
	}
	// Back to the root group before the thread is unlocked and reused.
	defer os.WriteFile(filepath.Join(blkioRoot, "tasks"), []byte(tid), 0o644)
	f, err := os.OpenFile(filepath.Join(d.fs.mnt, "probe"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	if _, err := f.WriteAt(block, 0); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	var ms []float64
	for i := range n {
		block[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		ms = append(ms, float64(time.Since(t))/1e6)
	}
	return ms, nil
}

func (d *slowDisk) close() {
	d.fs.close()
	_ = os.Remove(d.cgroup)
}

// slowSection: on the throttled disk, the disk's own fdatasync p50/p99,
// then for a fresh agent each: a backlog drain, a live flood, and
// publish→stored at 100/s with commit_window 0 and with the default.
func slowSection(e *env) {
	name := fmt.Sprintf("edge-bench-%s-r%d", e.token, e.run)
	newDisk := func(dir string, i int) (*slowDisk, error) {
		return newSlowDisk(filepath.Join(dir, "disk.img"), filepath.Join(dir, "data"), fmt.Sprintf("%s-%d", name, i), e.slowIOPS)
	}
	var disks []*slowDisk
	defer func() {
		for _, d := range disks {
			d.close()
		}
	}()
	// Each agent gets its own disk (a fresh file system, as the wear
	// section's), the probe the first one.
	onDisk := func(a *agent) error {
		d, err := newDisk(a.dir, len(disks))
		if err != nil {
			return err
		}
		disks = append(disks, d)
		a.bin, err = d.wrap(a.dir, e.agentBin)
		return err
	}
	probeDir := e.sub("slow-probe")
	d, err := newDisk(probeDir, 99)
	if err != nil {
		e.fail("slow disk: %v", err)
		return
	}
	disks = append(disks, d)
	e.progress("slow: fdatasync on the throttled disk (%d write requests/s)", e.slowIOPS)
	ms, err := d.probe(e.sz.wearSyncs)
	if err != nil {
		e.fail("slow disk probe: %v", err)
		return
	}
	p99 := percentile(ms, 99)
	e.rep.fig("slow.fdatasync.p50", "slow disk: fdatasync p50 of a 4 KiB write, back to back", "ms", 2).add(percentile(ms, 50))
	e.rep.fig("slow.fdatasync.p99", "slow disk: fdatasync p99 of a 4 KiB write, back to back", "ms", 2).add(p99)

	n := e.sz.backlog / 5
	e.progress("slow: backlog drain of %s messages, agent", num(float64(n), 0))
	a, err := e.newAgent("slow-drain", storeCfg{})
	if err == nil {
		err = onDisk(a)
	}
	if err != nil {
		e.fail("slow drain: %v", err)
		return
	}
	if r, err := e.drain(agentSubject{a}, e.id("slow-drain"), n, nil); err != nil {
		e.fail("slow drain: %v", err)
	} else {
		e.rep.fig("slow.drain.rate", fmt.Sprintf("slow disk: backlog drain of %s, agent", num(float64(n), 0)), "msg/s", 0).add(r.rate())
		e.rep.fig("slow.drain.percommit", "slow disk: messages per commit, backlog drain", "", 1).add(r.perCommit)
		e.rep.fig("slow.drain.cpu", "slow disk: CPU s per 10,000 drained", "s", 3).add(r.cpu / float64(n) * 10000)
	}

	e.progress("slow: live flood of %s messages, agent", num(float64(n), 0))
	a, err = e.newAgent("slow-flood", storeCfg{})
	if err == nil {
		err = onDisk(a)
	}
	if err != nil {
		e.fail("slow flood: %v", err)
		return
	}
	if r, err := e.live(agentSubject{a}, e.id("slow-flood"), n); err != nil {
		e.fail("slow flood: %v", err)
	} else {
		e.rep.fig("slow.flood.rate", fmt.Sprintf("slow disk: live flood of %s, agent", num(float64(n), 0)), "msg/s", 0).add(r.rate())
		e.rep.fig("slow.flood.keep", "slow disk: live flood, agent ÷ its publisher", "×", 3).add(r.rate() / r.pubRate())
		e.rep.fig("slow.flood.percommit", "slow disk: messages per commit, live flood", "", 1).add(r.perCommit)
		e.rep.fig("slow.flood.storedp99", "slow disk: receive→stored p99 at the end of the flood", "ms", 2).add(r.storedP99)
	}

	for _, w := range []struct{ window, label, key string }{
		{"0s", "commit_window 0", "slow.lat0."},
		{"", "default commit_window (" + defaultCommitWindow + ")", "slow.latd."},
	} {
		e.progress("slow: publish→stored, %d messages at 100/s, %s", e.sz.paced, w.label)
		lr := latencyRun{key: w.key, label: ", slow disk, " + w.label, st: storeCfg{commitWindow: w.window}, prep: onDisk}
		if err := measureLatency(e, e.sz.paced, lr); err != nil {
			e.fail("slow publish→stored (%s): %v", w.label, err)
			continue
		}
		// The target, on this run's disk.
		bound, why := 2*p99+1, "2 × fdatasync p99 + 1"
		if w.window == "" {
			if win, err := time.ParseDuration(defaultCommitWindow); err == nil {
				bound, why = bound+float64(win)/1e6, "window + "+why
			}
		}
		if f := e.rep.get(w.key + "pubstored.p99"); f != nil {
			f.want(fmt.Sprintf("≤ %s ms (%s)", num(bound, 1), why), func(v float64) bool { return v <= bound })
		}
	}
}
