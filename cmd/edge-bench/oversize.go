package main

import (
	"fmt"
	"time"

	"github.com/edge-agent/edge-agent/agent/control"
)

// oversizeSection measures the agent's peak RSS (VmHWM) while messages far
// over its max_message_size (the default, 1 MiB) arrive: it must hold at
// most the limit of any one of them, so the figure stays near the idle
// RSS whatever their size. mosquitto 2.0.11 lets them through as it is
// configured for every section: message_size_limit defaults to 0 (any
// valid MQTT payload, up to 256 MiB) and max_packet_size to no limit.
//
// The publisher keeps at most two messages ahead of the agent (it waits for
// ingest.oversize to follow), so what the broker queues stays small and the
// messages arrive one after another at the speed of TLS on loopback.
func oversizeSection(e *env) {
	n, size := e.sz.oversizeN, e.sz.oversizeSize
	e.progress("oversize: %d messages of %s (max_message_size 1 MiB), agent", n, mbs(size))
	hwm, took, err := measureOversize(e, n, size)
	if err != nil {
		e.fail("oversize: %v", err)
		return
	}
	e.progress("oversize: %d × %s stored as markers in %.1f s (%.0f MB/s); VmHWM %.1f MB",
		n, mbs(size), took.Seconds(), float64(n)*float64(size)/1e6/took.Seconds(), float64(hwm)/1e6)
	e.rep.fig("rss.oversize", fmt.Sprintf("peak RSS while %d × %s messages arrive (max_message_size 1 MiB; VmHWM)", n, mbs(size)), "MB", 1).
		add(float64(hwm) / 1e6)
}

func mbs(n int) string {
	if n%1_000_000 == 0 {
		return fmt.Sprintf("%d MB", n/1_000_000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// measureOversize runs one agent through n messages of size bytes and
// returns its VmHWM in bytes and the time from the first publish to the
// last marker stored. Every message must be stored as a marker of the right
// size.
func measureOversize(e *env, n, size int) (hwm int64, took time.Duration, err error) {
	a, err := e.newAgent("agent-oversize", storeCfg{})
	if err != nil {
		return 0, 0, err
	}
	if err := a.start(nil); err != nil {
		return 0, 0, err
	}
	defer a.p.kill()
	if _, err := a.waitConnected(15*time.Second, 10*time.Millisecond); err != nil {
		return 0, 0, err
	}
	pub, err := e.broker.pub(e.id("oversize-pub"), 2)
	if err != nil {
		return 0, 0, err
	}
	defer pub.close()
	oversize := func() (uint64, error) {
		st, err := a.status()
		if err != nil {
			return 0, err
		}
		if st.Ingest == nil {
			return 0, fmt.Errorf("no ingest object in status: the agent predates max_message_size")
		}
		return st.Ingest.Oversize, nil
	}
	// One payload, its header renumbered: binary, not a command.
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*131 + i>>8)
	}
	topic := a.topic("notify")
	start := time.Now()
	for i := 0; i < n; i++ {
		copy(payload, fmt.Sprintf("oversize-%05d:", i))
		// At most two ahead of the agent.
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, err := oversize()
			if err != nil {
				return 0, 0, err
			}
			if int(got) >= i-1 {
				break
			}
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("message %d not stored as a marker within 60 s (ingest.oversize %d)", i-1, got)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := pub.flood(topic, 1, func(int) []byte { return payload }); err != nil {
			return 0, 0, fmt.Errorf("publish %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := oversize()
		if err != nil {
			return 0, 0, err
		}
		if int(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%d of %d messages stored as markers after 60 s", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	took = time.Since(start)
	m, err := memKB(a.p.pid(), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	hwm = m["VmHWM"] * 1024
	// Each once, as a marker of the right size.
	markers := 0
	if err := a.export(func(r control.Record) error {
		if !r.Oversize {
			b, _ := r.Bytes()
			return fmt.Errorf("record %d of %d bytes is not a marker", r.Seq, len(b))
		}
		if r.Size != int64(size) {
			return fmt.Errorf("marker %d says size %d, want %d", r.Seq, r.Size, size)
		}
		markers++
		return nil
	}); err != nil {
		return 0, 0, err
	}
	if markers != n {
		return 0, 0, fmt.Errorf("%d markers stored, want %d", markers, n)
	}
	if err := a.stop(); err != nil {
		return 0, 0, err
	}
	return hwm, took, a.dropSession()
}
