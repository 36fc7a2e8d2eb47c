//go:build unix && !linux

package sinks

import "syscall"

// spawn starts path; only Linux lowers the command's priority (spawn_linux.go).
func spawn(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	return syscall.ForkExec(path, argv, attr)
}
