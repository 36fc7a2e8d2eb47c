//go:build !linux

package store

// preallocation is Linux-only (SEEK_HOLE and ext4's journal are what it is
// about); elsewhere bbolt grows its file as it does by itself.
type preallocation struct{}

const preallocMaxGrow = 0

func openPreallocation(string, int64, int64) (*preallocation, error) { return nil, nil }

func (p *preallocation) ahead(int64) {}

func (p *preallocation) close() error { return nil }
