package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// loopFS is a fresh ext4 on a loop device of its own, so that what one
// subject writes to the block device can be read from the device's sector
// counter: what an SD card would be asked to write.
type loopFS struct {
	file   string // what the loop device reads and writes
	remove string // the image removed at close ("" none)
	dev    string
	mnt    string
	undo   func() // drops the emergency cleanup
}

// loopSize is each loop file system's size: room for a 100,000-record
// store and its growth, small enough that mkfs takes a blink.
const loopSize = "192M"

// newLoopFS makes img (sparse) with an ext4 on it, attaches it to a free
// loop device and mounts it on mnt; close removes img.
func newLoopFS(img, mnt string) (*loopFS, error) {
	if err := mkfsImage(img); err != nil {
		return nil, err
	}
	l, err := attachLoopFS(img, mnt)
	if err != nil {
		return nil, err
	}
	l.remove = img
	return l, nil
}

// mkfsImage makes img (sparse, loopSize) and an ext4 on it with 4 KiB
// blocks (an SD card's page, and Raspberry Pi OS's block size), its inode
// tables and journal written at mkfs (lazy init would write them in the
// background while the subject runs, into its figure).
func mkfsImage(img string) error {
	if err := runTool("truncate", "-s", loopSize, img); err != nil {
		return err
	}
	return runTool("mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", img)
}

// attachLoopFS attaches file, which holds an ext4, to a free loop device
// and mounts it on mnt with noatime, as Raspberry Pi OS mounts its root.
// An interrupted bench detaches both on its way out.
func attachLoopFS(file, mnt string) (*loopFS, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	made := making()
	defer made()
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup -f --show %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	l := &loopFS{file: file, dev: strings.TrimSpace(string(out)), mnt: mnt}
	if err := runTool("mount", "-o", "noatime", l.dev, mnt); err != nil {
		_ = runTool("losetup", "-d", l.dev)
		return nil, err
	}
	l.undo = atExit(func() {
		// Subjects may still have files open: detach lazily; losetup -d
		// of a busy device clears it when its last user lets go.
		_ = unix.Unmount(l.mnt, unix.MNT_DETACH)
		_ = runTool("losetup", "-d", l.dev)
	})
	return l, nil
}

// written syncs the file system (syncfs: the page cache's dirty data and
// the journal) and returns the bytes written to the device since it was
// attached.
func (l *loopFS) written() (int64, error) {
	fd, err := unix.Open(l.mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return 0, err
	}
	err = unix.Syncfs(fd)
	unix.Close(fd)
	if err != nil {
		return 0, fmt.Errorf("syncfs %s: %w", l.mnt, err)
	}
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(l.dev), "stat"))
	if err != nil {
		return 0, err
	}
	return parseWrittenSectors(string(b))
}

// parseWrittenSectors reads the sectors-written field (the 7th) of a
// /sys/block/DEV/stat line, in bytes (sectors are 512 bytes there
// whatever the device's own sector size).
func parseWrittenSectors(stat string) (int64, error) {
	f := strings.Fields(stat)
	if len(f) < 7 {
		return 0, fmt.Errorf("block stat %q: too few fields", stat)
	}
	n, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("block stat %q: %w", stat, err)
	}
	return n * 512, nil
}

// close unmounts, detaches the device and removes the image.
func (l *loopFS) close() error {
	l.undo()
	err := runTool("umount", l.mnt)
	if err != nil {
		// A subject's file still open: detach it from the tree anyway,
		// rather than leave it mounted.
		_ = unix.Unmount(l.mnt, unix.MNT_DETACH)
	}
	if err2 := runTool("losetup", "-d", l.dev); err == nil {
		err = err2
	}
	if l.remove != "" {
		os.Remove(l.remove)
	}
	return err
}

func runTool(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// wearPrerequisites: the wear and slow sections mount loop devices.
func wearPrerequisites() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the wear and slow sections mount loop devices and need root (or leave them out: -only without wear,slow)")
	}
	for _, t := range []string{"mkfs.ext4", "losetup", "mount", "umount", "truncate"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("the wear and slow sections need %s (apt-get install -y e2fsprogs mount coreutils)", t)
		}
	}
	return nil
}
