//go:build unix

package store

import (
	"os"
	"syscall"
	"time"
)

// lockFile takes a flock on f, exclusive or shared, polling as bbolt does,
// and fails with errLockTimeout after timeout. Called again on the same f it
// converts the lock. The lock goes when f is closed.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		if time.Now().After(deadline) {
			return errLockTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}
