package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// Credentials of the bench's broker.
const (
	agentUser = "gw-bench"
	agentPass = "bench-secret-never-logged"
	cloudUser = "cloud"
	cloudPass = "cloud-pass"
)

// brokerLimits are raised above mosquitto's defaults (20 in flight, 1000
// queued) as the issue says, so that the broker's window and queue, not
// its defaults, let a 100,000-message backlog through; max_queued_bytes 0
// = no byte bound. set_tcp_nodelay: mosquitto 2.0 leaves Nagle's algorithm
// on by default, which alone put command replies at p50 29 ms, p99 82 ms
// (measured here) whatever the agent did; a latency figure must be the
// agent's (-nagle keeps mosquitto's default). The report prints them all.
// Message size is left at mosquitto 2.0.11's defaults, which let the
// oversize section's 50 MB messages through: message_size_limit 0 (any
// payload MQTT allows, up to 256 MiB) and max_packet_size unset (no limit).
var brokerLimits = []string{
	"max_inflight_messages 1000",
	"max_queued_messages 100000",
	"max_queued_bytes 0",
	"set_tcp_nodelay true",
}

// brokerConfig is brokerLimits, without set_tcp_nodelay when nagle.
func brokerConfig(nagle bool) []string {
	var out []string
	for _, l := range brokerLimits {
		if !(nagle && strings.HasPrefix(l, "set_tcp_nodelay")) {
			out = append(out, l)
		}
	}
	return out
}

// broker is the one mosquitto (TLS on loopback, passwords, no persistence)
// that every subject of a run talks to.
type broker struct {
	m    *agenttest.Mosquitto
	pki  *agenttest.PKI
	addr string // 127.0.0.1:PORT
	port string
	tls  *tls.Config

	// The broker also logs to a FIFO the bench reads, so that each line is
	// stamped when mosquitto writes it (its own timestamps have 1 s
	// resolution). Debug lines (every packet) are switched on only around
	// the 100/s latency phase; see debug.
	fifo    *os.File
	mu      sync.Mutex
	watch   func(line string, at time.Time)
	reloads chan struct{}
}

// startBroker starts mosquitto in dir with the bench's users and limits.
func startBroker(dir string, pki *agenttest.PKI, conf []string) (*broker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fifoPath := filepath.Join(dir, "log.fifo")
	_ = os.Remove(fifoPath)
	if err := syscall.Mkfifo(fifoPath, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	// O_RDWR: the open does not wait for a writer, and the reader never
	// sees EOF when mosquitto closes and reopens its log on SIGHUP.
	fifo, err := os.OpenFile(fifoPath, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	b := &broker{pki: pki, fifo: fifo, reloads: make(chan struct{}, 4)}
	go b.readLog()
	m, err := agenttest.StartMosquitto(agenttest.MosquittoOptions{
		PKI:   pki,
		Dir:   dir,
		Users: map[string]string{agentUser: agentPass, cloudUser: cloudPass},
		Extra: append(append([]string{}, conf...), "log_dest file "+fifoPath),
	})
	if err != nil {
		fifo.Close()
		return nil, err
	}
	b.m = m
	u, err := url.Parse(m.URL)
	if err != nil {
		return nil, err
	}
	b.addr, b.port = u.Host, u.Port()
	if b.tls, err = pki.ClientTLSConfig("127.0.0.1"); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *broker) url() string { return b.m.URL }

// readLog stamps each line of mosquitto's log as it arrives and hands it
// to the current watcher. It must never stop reading: mosquitto blocks on
// a full FIFO.
func (b *broker) readLog() {
	r := bufio.NewReaderSize(b.fifo, 256<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		at := time.Now()
		if strings.Contains(line, "Reloading config") {
			select {
			case b.reloads <- struct{}{}:
			default:
			}
		}
		b.mu.Lock()
		fn := b.watch
		b.mu.Unlock()
		if fn != nil {
			fn(strings.TrimRight(line, "\n"), at)
		}
	}
}

// setWatch sets the function that sees every log line (nil: none).
func (b *broker) setWatch(fn func(line string, at time.Time)) {
	b.mu.Lock()
	b.watch = fn
	b.mu.Unlock()
}

// debug switches mosquitto's packet log on or off: the config file gets
// or loses "log_type debug" and a SIGHUP reloads it (log_type is
// "Reloaded on reload signal", mosquitto.conf(5)). It returns once the
// broker has logged the reload.
func (b *broker) debug(on bool) error {
	conf, err := os.ReadFile(b.m.Conf)
	if err != nil {
		return err
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(string(conf), "\n"), "\n") {
		if l != "log_type debug" {
			keep = append(keep, l)
		}
	}
	if on {
		keep = append(keep, "log_type debug")
	}
	if err := os.WriteFile(b.m.Conf, []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	for len(b.reloads) > 0 {
		<-b.reloads
	}
	// Pid is 0 once the broker is stopped (an interrupted bench stops it
	// under a running phase), and kill(0) would signal our whole process
	// group: the bench, its subjects and the shell that started it.
	pid := b.m.Pid()
	if pid <= 0 {
		return fmt.Errorf("SIGHUP mosquitto: it is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("SIGHUP mosquitto: %w", err)
	}
	select {
	case <-b.reloads:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("mosquitto did not log a reload within 5 s of SIGHUP")
	}
}

// pub connects a cloud-side publisher.
func (b *broker) pub(clientID string, window int) (*pubConn, error) {
	return dialPub(b.addr, b.tls, cloudUser, cloudPass, clientID, true, window)
}

// dropSession discards the persistent session of clientID at the broker (a
// clean-session connect does, §3.1.2.4), so that a finished subject's queue
// does not grow with later runs' traffic.
func (b *broker) dropSession(clientID, user, pass string) error {
	c, err := dialPub(b.addr, b.tls, user, pass, clientID, true, 1)
	if err != nil {
		return err
	}
	c.close()
	return nil
}

func (b *broker) stop() {
	if b.m != nil {
		_ = b.m.Stop()
	}
	b.fifo.Close()
}
