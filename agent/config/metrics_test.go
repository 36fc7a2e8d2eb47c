package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetricsSection(t *testing.T) {
	base := lines(`device_id = "gw1"`, `[mqtt]`, `broker = "tls://b"`, `[metrics]`)
	for _, tc := range []struct {
		name, body string
		fail       string // "" = valid; else key and words the error names
		check      func(*Config) string
	}{
		{"off by default", "", "", func(c *Config) string {
			if !reflect.DeepEqual(c.Metrics, Metrics{Interval: time.Minute}) {
				return "metrics not off by default"
			}
			return ""
		}},
		{"loopback v4", `listen = "127.0.0.1:9101"`, "", func(c *Config) string {
			if c.Metrics.Listen != "127.0.0.1:9101" {
				return "listen = " + c.Metrics.Listen
			}
			return ""
		}},
		{"loopback v6", `listen = "[::1]:9101"`, "", nil},
		{"localhost", `listen = "localhost:9101"`, "", nil},
		{"all interfaces refused", `listen = ":9101"`, "metrics.listen: \":9101\" is not a loopback address", nil},
		{"lan refused, fix named", `listen = "192.168.1.10:9101"`, "metrics.allow_remote = true", nil},
		{"lan allowed", "listen = \"0.0.0.0:9101\"\nallow_remote = true", "", nil},
		{"not host:port", `listen = "9101"`, "metrics.listen: \"9101\" is not host:port", nil},
		{"interval", `interval = "15s"`, "", func(c *Config) string {
			if c.Metrics.Interval != 15*time.Second {
				return "interval " + c.Metrics.Interval.String()
			}
			return ""
		}},
		{"interval too short", `interval = "100ms"`, "metrics.interval: 100ms is shorter than 1s", nil},
		{"interval not a duration", `interval = "often"`, "metrics.interval", nil},
		{"telemetry topic", `telemetry_topic = "/sys/{device_id}/thing/telemetry"`, "", func(c *Config) string {
			if c.Metrics.TelemetryTopic != "/sys/gw1/thing/telemetry" {
				return "topic " + c.Metrics.TelemetryTopic
			}
			return ""
		}},
		{"telemetry wildcard", `telemetry_topic = "t/#"`, "metrics.telemetry_topic", nil},
		{"textfile relative", `textfile = "m/edge-agent.prom"`, "", func(c *Config) string {
			if !filepath.IsAbs(c.Metrics.Textfile) || !strings.HasSuffix(c.Metrics.Textfile, "m/edge-agent.prom") || len(c.Warnings()) != 0 {
				return "textfile " + c.Metrics.Textfile
			}
			return ""
		}},
		{"textfile not .prom warns", `textfile = "/run/m.txt"`, "", func(c *Config) string {
			if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], ".prom") {
				return "warnings " + strings.Join(w, "; ")
			}
			return ""
		}},
	} {
		c, err := Parse([]byte(lines(base, tc.body)), "c.toml")
		if tc.fail != "" {
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%s: err = %v, want …%s…", tc.name, err, tc.fail)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.check != nil {
			if msg := tc.check(c); msg != "" {
				t.Errorf("%s: %s", tc.name, msg)
			}
		}
	}
}
