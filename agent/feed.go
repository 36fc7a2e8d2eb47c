package agent

import "sync"

// feed tells followers (`inbox follow`) that records were stored. The
// writer rings it after every commit; a follower takes the current channel
// before it reads the store and waits on it after, so no commit between
// the two goes unnoticed. Ringing never blocks the writer.
type feed struct {
	_  noEq // never compared: no equality function in the binary
	mu sync.Mutex
	ch chan struct{}
}

func newFeed() *feed { return &feed{ch: make(chan struct{})} }

// next is closed at the next commit.
func (f *feed) next() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

func (f *feed) ring() {
	f.mu.Lock()
	close(f.ch)
	f.ch = make(chan struct{})
	f.mu.Unlock()
}
