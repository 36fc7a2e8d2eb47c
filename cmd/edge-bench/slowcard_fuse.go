//go:build amd64 || arm64

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The card's FUSE server (see slowcard.go). go-fuse v2.12.1 does not build
// for 32-bit targets (its splice package assigns an int to an int64), so
// this half of edge-bench is built for 64-bit machines only; the bench
// runs on the development machine, not on the gateway.

// cardNode is the image file: reads, writes and fsync pass to backing, the
// latter two after their delay.
type cardNode struct {
	fs.Inode
	backing    *os.File
	size       int64
	syncDelay  time.Duration
	writeDelay time.Duration
	syncs      atomic.Int64 // fsyncs served
}

var (
	_ fs.NodeGetattrer = (*cardNode)(nil)
	_ fs.NodeOpener    = (*cardNode)(nil)
	_ fs.NodeReader    = (*cardNode)(nil)
	_ fs.NodeWriter    = (*cardNode)(nil)
	_ fs.NodeFsyncer   = (*cardNode)(nil)
	_ fs.NodeFlusher   = (*cardNode)(nil)
)

func (n *cardNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(n.size)
	out.Blocks = uint64(n.size) / 512
	return 0
}

// Open: handle-less (the node serves every request); the page cache may be
// kept, the file changes only through this mount.
func (n *cardNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *cardNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := n.backing.ReadAt(dest, off)
	if err != nil && k == 0 && off < n.size {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Write: the card's image has a fixed size, as a card has.
func (n *cardNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if off+int64(len(data)) > n.size {
		return 0, syscall.ENOSPC
	}
	if n.writeDelay > 0 {
		time.Sleep(n.writeDelay)
	}
	k, err := n.backing.WriteAt(data, off)
	if err != nil {
		return uint32(k), fs.ToErrno(err)
	}
	return uint32(k), 0
}

// Fsync is the card's cache flush: what every REQ_PREFLUSH and FUA write
// of ext4 becomes by the time it leaves loop.
func (n *cardNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	time.Sleep(n.syncDelay)
	n.syncs.Add(1)
	return 0
}

// Flush is close(2), not a cache flush.
func (n *cardNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func serveCard(img, mnt, syncArg, writeArg string) error {
	syncDelay, err := time.ParseDuration(syncArg)
	if err != nil {
		return err
	}
	writeDelay, err := time.ParseDuration(writeArg)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	node := &cardNode{backing: f, size: st.Size(), syncDelay: syncDelay, writeDelay: writeDelay}
	root := &fs.Inode{}
	long := time.Hour // nothing changes the file but this mount
	server, err := fs.Mount(mnt, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			Name:              cardFSName,
			FsName:            "pid" + strconv.Itoa(os.Getpid()),
			MaxWrite:          1 << 20,
			DisableXAttrs:     true,
		},
		EntryTimeout: &long,
		AttrTimeout:  &long,
		OnAdd: func(ctx context.Context) {
			root.AddChild(cardFile, root.NewPersistentInode(ctx, node, fs.StableAttr{Mode: syscall.S_IFREG}), false)
		},
	})
	if err != nil {
		return fmt.Errorf("FUSE mount on %s: %w (the slow section needs /dev/fuse and root)", mnt, err)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println(node.syncs.Load())
	}
	// The bench has detached its loop device: nothing holds the file.
	if err := server.Unmount(); err != nil {
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	return nil
}
