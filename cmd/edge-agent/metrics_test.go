package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/expfmt"

	"github.com/edge-agent/edge-agent/agent"
	"github.com/edge-agent/edge-agent/agent/agenttest"
)

// samples reads an exposition with the Prometheus text parser: every sample
// as name{label="value",…} (labels sorted) → value; a histogram gives its
// _count and _sum. families lists the families with HELP and TYPE.
func samples(t *testing.T, b []byte) (vals map[string]float64, families []string) {
	t.Helper()
	fams, err := new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses the output: %v\n%s", err, b)
	}
	vals = map[string]float64{}
	for name, f := range fams {
		if f.GetHelp() == "" || f.Type == nil {
			t.Errorf("%s has no HELP or TYPE", name)
		}
		families = append(families, name)
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := name
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				vals[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				vals[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				vals[key+"_count"] = float64(m.Histogram.GetSampleCount())
				vals[key+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	sort.Strings(families)
	return vals, families
}

// scrape is `edge-agent metrics`, parsed.
func (r *rig) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	code, out, errOut := cli("metrics", "-config", r.cfgPath)
	if code != 0 {
		t.Fatalf("edge-agent metrics: exit %d: %s", code, errOut)
	}
	v, _ := samples(t, []byte(out))
	return v
}

// waitMetric polls `edge-agent metrics` until ok accepts the value of key.
func (r *rig) waitMetric(t *testing.T, key string, ok func(float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v := r.scrape(t)
		if ok(v[key]) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present: %v) within 15s", key, v[key], hasKey(v, key))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasKey(m map[string]float64, k string) bool { _, ok := m[k]; return ok }

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The counters move as the real agent works: a publish is stored, a relay
// command switches a relay (and so does `relay set`), a failing sink
// fails; the same text comes from the socket, the textfile and /metrics,
// and a telemetry summary reaches the broker.
func TestMetricsMoveAsTheAgentWorks(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	t.Cleanup(down.Close)
	addr := freePort(t)
	textfile := filepath.Join(r.dir, "textfile", "edge-agent.prom")
	if err := os.MkdirAll(filepath.Dir(textfile), 0o755); err != nil {
		t.Fatal(err)
	}
	r.extra = fmt.Sprintf(`
[[relay]]
name = "pump"
pin = "GPIO17"

[[sink]]
name = "web"
type = "http"
url = %q

[metrics]
textfile = %q
interval = "1s"
listen = %q
telemetry_topic = "/sys/{device_id}/thing/telemetry"
`, down.URL, textfile, addr)
	r.writeConfig(nil)
	pub := r.publisher("cloud-metrics")
	summaries := make(chan []byte, 100)
	if tok := pub.Subscribe("/sys/"+r.device+"/thing/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) {
		summaries <- m.Payload()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	r.startAgent()
	r.waitConnected()
	// Connected, and the first telemetry summary (outbox, so backlog for a
	// moment) acknowledged.
	r.waitStatus(10*time.Second, func(s agent.Status) bool { return s.State == "ok" })

	before := r.scrape(t)
	if before[`edge_agent_state{state="ok"}`] != 1 || before["edge_agent_connected"] != 1 || before[`edge_agent_relay_on{relay="pump"}`] != 0 {
		t.Errorf("at start: state ok %v, connected %v, pump on %v", before[`edge_agent_state{state="ok"}`], before["edge_agent_connected"], before[`edge_agent_relay_on{relay="pump"}`])
	}
	if v := before[`edge_agent_build_info{version="`+version+`"}`]; v != 1 {
		t.Errorf("build_info for version %q: %v", version, v)
	}
	if rss := before["edge_agent_resident_memory_bytes"]; rss < 1<<20 {
		t.Errorf("resident memory %v bytes", rss)
	}
	if st := before["edge_agent_start_time_seconds"]; st < float64(time.Now().Add(-time.Minute).Unix()) || st > float64(time.Now().Unix()) {
		t.Errorf("start time %v", st)
	}
	if before["edge_agent_store_file_bytes"] <= 0 {
		t.Error("store file size 0")
	}

	// publish → stored, latency observed, the sink fails to deliver it.
	if err := agenttest.PublishQoS1(pub, r.notifyTopic(), []byte("hello metrics"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	v := r.waitMetric(t, "edge_agent_messages_stored_total", func(n float64) bool { return n >= before["edge_agent_messages_stored_total"]+1 })
	if v["edge_agent_stored_latency_seconds_count"] < before["edge_agent_stored_latency_seconds_count"]+1 ||
		v["edge_agent_commits_total"] <= before["edge_agent_commits_total"] ||
		v["edge_agent_stored_bytes_total"] < before["edge_agent_stored_bytes_total"]+float64(len("hello metrics")) ||
		v["edge_agent_inbox_records"] < 1 {
		t.Errorf("after a publish: %v", pick(v, "edge_agent_stored_latency_seconds_count", "edge_agent_commits_total", "edge_agent_stored_bytes_total", "edge_agent_inbox_records"))
	}
	r.waitMetric(t, `edge_agent_sink_failed_total{sink="web"}`, func(n float64) bool { return n >= 1 })

	// relay command → a command counted ok, a switch by cause command.
	cmd := `{"id":"metrics-1","method":"relay.set","params":{"relay":"pump","on":true}}`
	if err := agenttest.PublishQoS1(pub, r.notifyTopic(), []byte(cmd), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	v = r.waitMetric(t, `edge_agent_relay_switches_total{cause="command",relay="pump"}`, func(n float64) bool { return n == 1 })
	if v[`edge_agent_relay_on{relay="pump"}`] != 1 {
		t.Error("pump not on in the metrics after relay.set on")
	}
	r.waitMetric(t, `edge_agent_commands_total{method="relay.set",result="ok"}`, func(n float64) bool { return n == 1 })
	// A refused command is counted by its code.
	bad := `{"id":"metrics-2","method":"relay.set","params":{"relay":"nope","on":true}}`
	if err := agenttest.PublishQoS1(pub, r.notifyTopic(), []byte(bad), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.waitMetric(t, `edge_agent_commands_total{method="relay.set",result="unknown_relay"}`, func(n float64) bool { return n == 1 })
	// `edge-agent relay set` → a switch by cause local.
	if code, _, errOut := cli("relay", "set", "pump", "off", "-config", r.cfgPath); code != 0 {
		t.Fatalf("relay set: exit %d: %s", code, errOut)
	}
	v = r.waitMetric(t, `edge_agent_relay_switches_total{cause="local",relay="pump"}`, func(n float64) bool { return n == 1 })
	if v[`edge_agent_relay_switches_total{cause="command",relay="pump"}`] != 1 || v[`edge_agent_relay_on{relay="pump"}`] != 0 {
		t.Errorf("after relay set off: %v", pick(v, `edge_agent_relay_switches_total{cause="command",relay="pump"}`, `edge_agent_relay_on{relay="pump"}`))
	}

	// The same exposition over HTTP on loopback and in the textfile.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	h, families := samples(t, body)
	// Every family, once each has a sample (the parser lists no empty
	// one: no [[input]] here, so no input events; no [bootstrap]).
	want := []string{"",
		"edge_agent_build_info", "edge_agent_commands_total", "edge_agent_commits_total", "edge_agent_connected",
		"edge_agent_inbox_bytes", "edge_agent_inbox_pending", "edge_agent_inbox_records",
		"edge_agent_messages_per_commit", "edge_agent_messages_stored_total", "edge_agent_outbox_pending",
		"edge_agent_oversize_total", "edge_agent_reconnects_total", "edge_agent_refused_on_arrival_total",
		"edge_agent_relay_on", "edge_agent_relay_switches_total", "edge_agent_resident_memory_bytes",
		"edge_agent_rule_matches_total", "edge_agent_rule_unmatched_total", "edge_agent_sink_delivered_total",
		"edge_agent_sink_dropped_total", "edge_agent_sink_failed_total", "edge_agent_sink_lag",
		"edge_agent_start_time_seconds", "edge_agent_state", "edge_agent_store_file_bytes", "edge_agent_stored_bytes_total",
		"edge_agent_stored_latency_seconds", "edge_agent_watchdog_pings_total"}[1:]
	if strings.Join(families, " ") != strings.Join(want, " ") {
		t.Errorf("families:\n got %v\nwant %v", families, want)
	}
	if h[`edge_agent_relay_switches_total{cause="local",relay="pump"}`] != 1 {
		t.Errorf("/metrics: %v", pick(h, `edge_agent_relay_switches_total{cause="local",relay="pump"}`))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(textfile)
		if err == nil {
			if f, _ := samples(t, b); f[`edge_agent_relay_switches_total{cause="local",relay="pump"}`] == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("textfile not rewritten with the local switch within 5s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A telemetry summary arrived, QoS 1 through the outbox.
	select {
	case b := <-summaries:
		var s struct {
			Version string          `json:"version"`
			State   string          `json:"state"`
			Outbox  *int            `json:"outbox"`
			Relays  map[string]any  `json:"relays"`
			SinkLag map[string]uint `json:"sink_lag"`
		}
		if err := json.Unmarshal(b, &s); err != nil || s.Version != version || s.State == "" || s.Outbox == nil || s.Relays["pump"] == nil {
			t.Errorf("telemetry summary %s: %v", b, err)
		}
		if _, ok := s.SinkLag["web"]; !ok {
			t.Errorf("telemetry summary without the sink's lag: %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no telemetry summary within 10s")
	}
}

func pick(m map[string]float64, keys ...string) string {
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, m[k])
	}
	return b.String()
}

// With the broker down, the summaries are not queued up: each replaces the
// one before it in the outbox, so one waits, however long the outage; once
// the broker is back it is published and the outbox is empty.
func TestTelemetryUnsentIsReplaced(t *testing.T) {
	r := newRig(t, agenttest.MosquittoOptions{})
	r.extra = "\n[metrics]\ninterval = \"1s\"\ntelemetry_topic = \"/sys/{device_id}/thing/telemetry\"\n"
	r.writeConfig(nil)
	r.startAgent()
	r.waitConnected()
	if err := r.broker.Kill(); err != nil {
		t.Fatal(err)
	}
	r.waitStatus(15*time.Second, func(s agent.Status) bool { return !s.Connected })
	time.Sleep(4 * time.Second) // four intervals: four summaries made
	for i := 0; i < 3; i++ {
		st, err := r.status()
		if err != nil {
			t.Fatal(err)
		}
		if st.Outbox.Pending != 1 {
			t.Fatalf("outbox holds %d entries after 4+ intervals offline; want the one newest summary", st.Outbox.Pending)
		}
		time.Sleep(1100 * time.Millisecond)
	}
	// Back online: the waiting summary (or a newer one) is published.
	if err := r.broker.Restart(); err != nil {
		t.Fatal(err)
	}
	pub := r.publisher("cloud-telemetry")
	got := make(chan []byte, 10)
	if tok := pub.Subscribe("/sys/"+r.device+"/thing/telemetry", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case b := <-got:
		t.Logf("after the outage: %s", b)
	case <-time.After(20 * time.Second):
		t.Fatal("no telemetry summary within 20s of the broker's return")
	}
}

// A listen address off loopback without allow_remote is a configuration
// error naming the fix; `run` refuses it too.
func TestMetricsListenRefusesRemoteWithoutAllowRemote(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	doc := "device_id = \"gw\"\ndata_dir = \"data\"\n[mqtt]\nbroker = \"tls://127.0.0.1:1\"\nusername = \"u\"\npassword = \"p\"\n[hw]\nbackend = \"sim\"\n[metrics]\nlisten = \"0.0.0.0:9101\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, verb := range [][]string{{"config", "check", "-config", path}, {"run", "-config", path}} {
		code, out, errOut := cli(verb...)
		if code != exitFailure || !strings.Contains(out+errOut, "metrics.listen") || !strings.Contains(out+errOut, "metrics.allow_remote = true") {
			t.Errorf("%s: exit %d: %s%s", verb[0], code, out, errOut)
		}
	}
}
