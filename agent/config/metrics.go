package config

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/edge-agent/edge-agent/agent/sinks"
)

// Metrics is the [metrics] section: where the daemon's counters go besides
// `edge-agent metrics` (docs/design.md#metrics). All off by default.
type Metrics struct {
	_              noEq          // never compared: no equality function in the binary
	Textfile       string        // rewritten every Interval; "" = off
	Interval       time.Duration // textfile and telemetry pace
	Listen         string        // host:port serving GET /metrics; "" = off
	TelemetryTopic string        // JSON summary every Interval; "" = off
}

type metricsSection struct {
	_              noEq   // never compared: no equality function in the binary
	Textfile       string `toml:"textfile"`
	Interval       string `toml:"interval"`
	Listen         string `toml:"listen"`
	AllowRemote    bool   `toml:"allow_remote"`
	TelemetryTopic string `toml:"telemetry_topic"`
}

// DefaultMetricsInterval is metrics.interval when it is absent.
const DefaultMetricsInterval = "60s"

// checkMetrics reads [metrics] into c.
func (l *loader) checkMetrics(c *Config) {
	m := &l.doc.Metrics
	if m.Textfile != "" {
		c.Metrics.Textfile = l.resolve(m.Textfile)
		if !strings.HasSuffix(m.Textfile, ".prom") {
			l.warn("metrics.textfile", "does not end in .prom", "node_exporter's textfile collector reads only *.prom files")
		}
	}
	if d, ok := l.duration("metrics.interval", m.Interval); ok {
		if d < time.Second {
			l.problem("metrics.interval", m.Interval+" is shorter than 1s", `use "60s" or more: each interval rewrites the textfile and publishes telemetry`)
		}
		c.Metrics.Interval = d
	}
	if c.Metrics.Listen = m.Listen; m.Listen != "" {
		host, _, err := net.SplitHostPort(m.Listen)
		if err != nil {
			l.problem("metrics.listen", strconv.Quote(m.Listen)+" is not host:port", `write an address like "127.0.0.1:9101"`)
		} else if !m.AllowRemote && !sinks.Loopback(host) {
			l.problem("metrics.listen", strconv.Quote(m.Listen)+" is not a loopback address: anyone who reaches it could read the counters",
				`use "127.0.0.1:9101" (scrape through your own tunnel), or set metrics.allow_remote = true`)
		}
	}
	if c.Metrics.TelemetryTopic = l.substitute("metrics.telemetry_topic", m.TelemetryTopic, l.doc.DeviceID); c.Metrics.TelemetryTopic != "" {
		if msg := badTopicName(c.Metrics.TelemetryTopic); msg != "" {
			l.problem("metrics.telemetry_topic", msg, `fix the topic, or set it to "" to turn telemetry off`)
		}
	}
}

// noEq makes a struct not comparable, so the linker keeps no equality
// function for it (a few hundred bytes of ARM code each).
type noEq [0]func()
