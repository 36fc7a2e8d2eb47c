package main

import "sync"

// exits are what an interrupted bench must undo before it exits: mounts
// and loop devices, which a deferred close does not remove when the
// signal handler calls os.Exit. One lock guards the table; each function
// must not wait on anything the interrupted section holds.
var exits struct {
	mu   sync.Mutex
	next int
	fns  map[int]func()
}

// atExit registers fn to run if the bench is interrupted; undo drops it
// (idempotent), when its resource was closed in order.
func atExit(fn func()) (undo func()) {
	exits.mu.Lock()
	defer exits.mu.Unlock()
	if exits.fns == nil {
		exits.fns = map[int]func(){}
	}
	id := exits.next
	exits.next++
	exits.fns[id] = fn
	return func() {
		exits.mu.Lock()
		delete(exits.fns, id)
		exits.mu.Unlock()
	}
}

// exitGuard keeps the handler from running between a resource's making
// and its registration (the section goes on while the handler runs): the
// maker holds it for reading from before the mount to after atExit, the
// handler takes it for writing and never gives it back, so a resource
// made after that waits for the exit instead.
var exitGuard sync.RWMutex

// making is called before a resource is made; the function it returns
// after its atExit. Not nested: a waiting handler blocks new readers.
func making() (made func()) {
	exitGuard.RLock()
	return exitGuard.RUnlock
}

// runAtExit runs the registered functions, newest first (a loop device
// before the card it sits on), once each.
func runAtExit() {
	exitGuard.Lock()
	exits.mu.Lock()
	fns := exits.fns
	exits.fns = nil
	next := exits.next
	exits.mu.Unlock()
	for id := next - 1; id >= 0; id-- {
		if fn, ok := fns[id]; ok {
			fn()
		}
	}
}
