package sinks

import (
	"runtime"
	"syscall"
)

// execNice is how much lower than the agent's own a sink command's CPU
// priority is: on a two-core gateway a process per record would otherwise
// take the CPU the writer needs while a backlog drains (the exec sink cost
// the drain 12% at nice 0, make bench ONLY=sinks). 10 gives the command
// about a tenth of a core's share against the agent when both want it, and
// all of it when the agent is idle.
const execNice = 10

// spawn starts path on a thread of its own whose nice value it raised
// first: Linux keeps nice per thread and a child inherits its parent
// thread's, so the command runs at the lower priority from its first
// instruction (setpriority on the child's pid after the fork would race it).
// The thread is never unlocked: it ends with the goroutine, so its nice
// value never reaches the agent's other goroutines.
func spawn(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		tid := syscall.Gettid()
		// getpriority's system call returns 20 - nice.
		if p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil {
			// An agent already at a higher nice keeps it: lowering it back
			// needs a privilege the agent does not have.
			if nice := min(20-p+execNice, 19); nice > 20-p {
				syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
			}
		}
		pid, err := syscall.ForkExec(path, argv, attr)
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}
