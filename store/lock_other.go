//go:build !unix

package store

import (
	"os"
	"time"
)

// lockFile is a no-op where flock is missing; bbolt's own lock still keeps
// a second writer out.
func lockFile(*os.File, bool, time.Duration) error { return nil }
