package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The slow section runs the ingest figures on a disk as slow to sync as an
// SD card: the agent's data_dir on ext4 on a loop device whose image is a
// slow card (slowcard.go), each cache flush taking -slow-sync, while the
// CPU stays this machine's.

// slowDisk is a slow card with a loop ext4 on it.
type slowDisk struct {
	backing string // the card's image on the machine's disk
	card    *slowCard
	fs      *loopFS
}

// newSlowDisk makes the image in dir (mkfs on the machine's disk, at its
// speed), serves it as a card on dir/card and mounts the ext4 on it on mnt.
func newSlowDisk(dir, mnt string, syncDelay, writeDelay time.Duration) (*slowDisk, error) {
	d := &slowDisk{backing: filepath.Join(dir, "card-image")}
	if err := mkfsImage(d.backing); err != nil {
		return nil, err
	}
	card, err := mountSlowCard(d.backing, filepath.Join(dir, "card"), filepath.Join(dir, "card.log"), syncDelay, writeDelay)
	if err != nil {
		os.Remove(d.backing)
		return nil, err
	}
	d.card = card
	if d.fs, err = attachLoopFS(card.path(), mnt); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// probe times n 4 KiB overwrites + fdatasync, one every 10 ms, and checks
// that each reached the card as a cache flush: if loop stopped passing
// flushes down (a write cache it did not advertise), the section would
// measure this machine's page cache, not a card.
func (d *slowDisk) probe(n int) ([]float64, error) {
	before, err := d.card.syncs()
	if err != nil {
		return nil, err
	}
	ms, err := timeSyncs(d.fs.mnt, n, pacedEvery)
	if err != nil {
		return nil, err
	}
	after, err := d.card.syncs()
	if err != nil {
		return nil, err
	}
	if got := after - before; got < int64(n) {
		return nil, fmt.Errorf("%d fdatasyncs on %s reached the card as %d flushes (want ≥ %d): check /sys/block/%s/queue/write_cache says \"write back\"",
			n, d.fs.dev, got, n, filepath.Base(d.fs.dev))
	}
	return ms, nil
}

func (d *slowDisk) close() {
	if d.fs != nil {
		_ = d.fs.close()
	}
	_ = d.card.close()
	os.Remove(d.backing)
}

// slowSection: on the slow card, the disk's own fdatasync p50/p99,
// then for a fresh agent each: a backlog drain, a live flood, and
// publish→stored at 100/s with commit_window 0 and with the default.
func slowSection(e *env) {
	if done, err := clearStaleCards(); err != nil {
		e.fail("slow: %v", err)
		return
	} else if len(done) > 0 {
		e.progress("slow: removed what a killed bench left: %s", strings.Join(done, ", "))
	}
	newDisk := func(dir, mnt string) (*slowDisk, error) {
		return newSlowDisk(dir, mnt, e.slowSync, e.slowWrite)
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
		d, err := newDisk(a.dir, a.dataDir)
		if err != nil {
			return err
		}
		disks = append(disks, d)
		return nil
	}
	probeDir := e.sub("slow-probe")
	d, err := newDisk(probeDir, filepath.Join(probeDir, "mnt"))
	if err != nil {
		e.fail("slow disk: %v", err)
		return
	}
	disks = append(disks, d)
	e.progress("slow: fdatasync on the slow card (flush %v, write %v)", e.slowSync, e.slowWrite)
	ms, err := d.probe(e.sz.wearSyncs)
	if err != nil {
		e.fail("slow disk probe: %v", err)
		return
	}
	p99 := percentile(ms, 99)
	e.rep.fig("slow.fdatasync.p50", "slow disk: fdatasync p50 of a 4 KiB write", "ms", 2).add(percentile(ms, 50))
	e.rep.fig("slow.fdatasync.p99", "slow disk: fdatasync p99 of a 4 KiB write", "ms", 2).add(p99)

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
		var disk *slowDisk
		var flushes0 int64
		prep := func(a *agent) error {
			if err := onDisk(a); err != nil {
				return err
			}
			disk = disks[len(disks)-1]
			var err error
			flushes0, err = disk.card.syncs()
			return err
		}
		lr := latencyRun{key: w.key, label: ", slow disk, " + w.label, st: storeCfg{commitWindow: w.window}, prep: prep}
		if err := measureLatency(e, e.sz.paced, lr); err != nil {
			e.fail("slow publish→stored (%s): %v", w.label, err)
			continue
		}
		// What a commit asks of the card: the flushes the agent made
		// (its start's few included) per commit of the phase.
		flushes, err := disk.card.syncs()
		if err != nil {
			e.fail("slow publish→stored (%s): %v", w.label, err)
			continue
		}
		if f := e.rep.get(w.key + "percommit"); f != nil && len(f.samples) > 0 {
			if pc := f.samples[len(f.samples)-1]; pc > 0 {
				commits := float64(e.sz.paced) / pc
				e.rep.fig(w.key+"flushes", "card flushes per commit at 100/s (the agent's start included), slow disk, "+w.label, "", 1).
					add(float64(flushes-flushes0) / commits)
			}
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
