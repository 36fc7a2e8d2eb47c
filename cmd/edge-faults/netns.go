package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The partition rig: the agent in one network namespace, mosquitto in
// another, a veth pair between them and nothing else. The addresses exist
// only inside these two namespaces, so no packet leaves this machine. The
// cloud side (publisher, reply watcher) reaches mosquitto through a unix
// socket listener, so the partition cuts only the agent's path.
const (
	brokerAddr = "10.231.0.1"
	agentAddr  = "10.231.0.2"
	nftTable   = "edgefaults"
)

var (
	netnsMu  sync.Mutex
	netnsAll []string
)

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// netnsPair creates the two namespaces and the veth between them.
func netnsPair() (agentNS, brokerNS string, err error) {
	id := os.Getpid() % 100000
	agentNS, brokerNS = fmt.Sprintf("ef-agent-%d", id), fmt.Sprintf("ef-broker-%d", id)
	va, vb := fmt.Sprintf("efa%d", id), fmt.Sprintf("efb%d", id)
	for _, ns := range []string{agentNS, brokerNS} {
		_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
		if err := sh("ip", "netns", "add", ns); err != nil {
			return "", "", err
		}
		netnsMu.Lock()
		netnsAll = append(netnsAll, ns)
		netnsMu.Unlock()
	}
	steps := [][]string{
		{"ip", "link", "add", va, "netns", agentNS, "type", "veth", "peer", "name", vb, "netns", brokerNS},
		{"ip", "-n", agentNS, "addr", "add", agentAddr + "/30", "dev", va},
		{"ip", "-n", brokerNS, "addr", "add", brokerAddr + "/30", "dev", vb},
		{"ip", "-n", agentNS, "link", "set", "lo", "up"},
		{"ip", "-n", brokerNS, "link", "set", "lo", "up"},
		{"ip", "-n", agentNS, "link", "set", va, "up"},
		{"ip", "-n", brokerNS, "link", "set", vb, "up"},
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return "", "", err
		}
	}
	return agentNS, brokerNS, nil
}

// cleanupNetns deletes every namespace this process made (the veth goes
// with them).
func cleanupNetns() {
	netnsMu.Lock()
	defer netnsMu.Unlock()
	for _, ns := range netnsAll {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	netnsAll = nil
}

// partition drops everything between the agent and the broker, both ways,
// in the agent's namespace: a cable pulled somewhere on the path, so
// neither side gets a RST.
func partition(agentNS string) error {
	rules := fmt.Sprintf(`table inet %s {
	chain in { type filter hook input priority 0; policy accept; ip saddr %s drop; }
	chain out { type filter hook output priority 0; policy accept; ip daddr %s drop; }
}
`, nftTable, brokerAddr, brokerAddr)
	cmd := exec.Command("ip", "netns", "exec", agentNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return nil
}

func heal(agentNS string) error {
	return sh("ip", "netns", "exec", agentNS, "nft", "delete", "table", "inet", nftTable)
}

// nsBroker is mosquitto running in the broker's namespace.
type nsBroker struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logFile string
	sock    string // unix socket listener for the cloud side
	url     string // what the agent connects to
}

func (e *env) startNSBroker(ns, dir string) (*nsBroker, error) {
	passwd := filepath.Join(dir, "passwd")
	for i, u := range [][2]string{{agentUser, agentPass}, {cloudUser, cloudPass}} {
		args := []string{"-b", passwd, u[0], u[1]}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if err := sh(append([]string{"mosquitto_passwd"}, args...)...); err != nil {
			return nil, err
		}
	}
	b := &nsBroker{done: make(chan struct{}), logFile: filepath.Join(dir, "mosquitto.log"),
		sock: filepath.Join(dir, "mq.sock"), url: "tls://" + brokerAddr + ":8883"}
	conf := fmt.Sprintf(`user root
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S
allow_anonymous false
password_file %s
max_queued_messages 1000000

listener 8883 %s
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.2

listener 0 %s
`, passwd, brokerAddr, e.pki.CAFile, e.pki.ServerCert, e.pki.ServerKey, b.sock)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(b.logFile)
	if err != nil {
		return nil, err
	}
	bin := "mosquitto"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/mosquitto"
	}
	// `ip netns exec` execs mosquitto: the pid is mosquitto's.
	b.cmd = exec.Command("ip", "netns", "exec", ns, bin, "-c", confPath)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { _ = b.cmd.Wait(); log.Close(); close(b.done) }()
	if !waitFor(5*time.Second, func() bool {
		_, err := os.Stat(b.sock)
		return err == nil
	}) {
		b.stop()
		return nil, fmt.Errorf("mosquitto in %s not ready: %s", ns, tail(b.log(), 10))
	}
	return b, nil
}

func (b *nsBroker) log() string {
	out, _ := os.ReadFile(b.logFile)
	return string(out)
}

func (b *nsBroker) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// runPartition: the agent streams through a partition. It must notice the
// half-open connection within its keepalive bound, and once the partition
// heals, reconnect and receive everything published during it.
func runPartition(e *env, p params, r *result) {
	if !needTools(r, true, "ip", "nft", "mosquitto", "mosquitto_passwd") {
		return
	}
	agentNS, brokerNS, err := netnsPair()
	if err != nil {
		r.fail("network namespaces: %v", err)
		return
	}
	defer cleanupNetns()
	dir := e.sub("partition")
	b, err := e.startNSBroker(brokerNS, dir)
	if err != nil {
		r.fail("%v", err)
		return
	}
	defer b.stop()
	const keepalive = 5 * time.Second
	cfg := newAgentConfig("faults-partition", b.url)
	cfg.mqtt["server_name"] = `"localhost"` // the certificate names localhost, not the namespace address
	cfg.mqtt["keepalive"] = fmt.Sprintf("%q", keepalive.String())
	_, a, _, ok := e.startConnected(r, dir, cfg, func(a *agentProc, err error) {
		r.fail("agent in %s: %v\n%s", agentNS, err, tail(a.Log(), 10))
	}, "ip", "netns", "exec", agentNS)
	if !ok {
		return
	}
	defer a.kill()
	notify := cfg.topic("notify")
	cloud := "unix://" + b.sock
	s := e.newStream(cloud, "faults-partition-pub", notify, "partition", 50*time.Millisecond).start(0)
	time.Sleep(2 * time.Second)

	if err := partition(agentNS); err != nil {
		r.fail("%v", err)
		s.finish()
		return
	}
	cut := time.Now()
	ackedAtCut := s.ackedLen()
	var agentDetect, brokerDetect time.Duration
	for time.Since(cut) < p.partition {
		if agentDetect == 0 {
			if st, err := getStatus(cfg.dataDir); err == nil && !st.Connected {
				agentDetect = st.Since.Sub(cut)
			}
		}
		if brokerDetect == 0 && strings.Contains(b.log(), "exceeded timeout") {
			brokerDetect = time.Since(cut)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := heal(agentNS); err != nil {
		r.fail("%v", err)
	}
	healed := time.Now()
	ackedDuring := s.ackedLen() - ackedAtCut
	st, err := waitStatus(cfg.dataDir, reconnectCap+20*time.Second, func(s status) bool { return s.Connected && s.Since.After(healed) })
	if err != nil {
		r.fail("not back after the partition healed: %v", err)
		s.finish()
		return
	}
	recov := st.Since.Sub(healed)
	time.Sleep(2 * time.Second)
	s.finish()
	rep, ok := allStored(r, cfg.dataDir, s.ackedCopy(), 60*time.Second)
	if !ok {
		return
	}
	if rep.lost > 0 {
		r.fail("%d of %d acknowledged messages lost across the partition (first %s)", rep.lost, rep.acked, rep.firstLost)
	}
	// paho checks every keepalive/4: it sends PINGREQ once nothing came for
	// keepalive, and gives up PingTimeout (the smaller of keepalive and
	// 10 s) after it, a check or two late; 1 s of slack on top.
	bound := keepalive + 3*keepalive/4 + min(keepalive, 10*time.Second) + time.Second
	switch {
	case agentDetect == 0:
		r.fail("the agent did not notice the partition within %v", p.partition)
	case agentDetect > bound:
		r.fail("the agent noticed the partition after %v, beyond its keepalive bound %v", agentDetect, bound)
	}
	if brokerDetect == 0 {
		r.fail("mosquitto did not drop the half-open connection within %v", p.partition)
	}
	r.fig("partition", "%v (keepalive %v), nftables drop both ways in %s", p.partition, keepalive, agentNS)
	r.fig("half-open detected by the agent", "%s (bound %v)", ms(agentDetect), bound)
	r.fig("half-open detected by mosquitto", "%s (1.5 × keepalive)", ms(brokerDetect))
	r.fig("recovery after heal (→ subscribed)", "%s", ms(recov))
	r.fig("messages acknowledged during the partition", "%d; total %d, %d lost, %d duplicates", ackedDuring, rep.acked, rep.lost, rep.dups)
	summarise("partition-detect", "%s by the agent (bound %v), %s by mosquitto", ms(agentDetect), bound, ms(brokerDetect))
	summarise("partition-heal", "%s after a %v partition; %d queued during it, 0 lost", ms(recov), p.partition, ackedDuring)
	if rep.lost > 0 {
		summarise("partition-heal", "%s; %d LOST", ms(recov), rep.lost)
	}
}
