package agent

// wake is a doorbell between two parts: one pokes it when there is work,
// the other waits on it. It holds one poke, so a poke is never lost and
// never blocks. The daemon makes each wake and hands both ends to the
// parts' constructors, so no part is wired after it is built. A nil wake
// is a bell nobody rings: poke does nothing, a wait never ends.
type wake chan struct{}

func newWake() wake { return make(wake, 1) }

func (w wake) poke() {
	select {
	case w <- struct{}{}:
	default:
	}
}
