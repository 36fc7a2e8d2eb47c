//go:build !(amd64 || arm64)

package main

import (
	"fmt"
	"runtime"
)

// serveCard: the card's FUSE server needs go-fuse, which does not build
// for 32-bit targets (see slowcard_fuse.go).
func serveCard(img, mnt, syncArg, writeArg string) error {
	return fmt.Errorf("the slow section's card needs a 64-bit build of edge-bench (this one is %s/%s): run make bench on an amd64 or arm64 machine", runtime.GOOS, runtime.GOARCH)
}
