package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/agent/sinks"
	"github.com/edge-agent/edge-agent/store"
)

func TestSinks(t *testing.T) {
	c := mustParse(t, lines(
		`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`,
		`[[sink]]`, `name = "log"`, `type = "file"`, `path = "log/notify.log"`,
		`[[sink]]`, `name = "mine"`, `type = "file"`, `path = "/var/log/mine"`, `topics = ["/sys/{device_id}/thing/#", "other/+"]`,
		`format = "{seq} {received_at} {device_id} {payload}"`, `max_size = "1MiB"`, `keep = 0`,
		`[[sink]]`, `name = "handler"`, `type = "exec"`, `command = ["bin/handle", "--quiet"]`, `timeout = "5s"`,
		`[[sink]]`, `name = "path-cmd"`, `type = "exec"`, `command = ["logger"]`,
		`[[sink]]`, `name = "post"`, `type = "http"`, `url = "http://127.0.0.1:8080/in"`,
		`[[sink]]`, `name = "bus"`, `type = "mqtt"`, `broker = "tcp://localhost"`, `topic = "local/{device_id}/{seq}{topic}"`,
		// The example's block style: another type's keys empty or at their defaults.
		`[[sink]]`, `name = "tls-bus"`, `type = "mqtt"`, `broker = "tls://broker.lan"`, `path = ""`, `keep = 3`,
		`format = "Received `+"`{payload}`"+` from `+"`{topic}`"+` topic"`, `command = []`, `url = ""`, `max_size = "10MiB"`,
	))
	dir, _ := filepath.Abs(".")
	want := []sinks.Config{
		{Name: "log", Type: "file", Topics: []string{"#"}, Path: filepath.Join(dir, "log/notify.log"),
			Format: sinks.DefaultFormat, MaxSize: 10 << 20, Keep: 3},
		{Name: "mine", Type: "file", Topics: []string{"/sys/gw/thing/#", "other/+"}, Path: "/var/log/mine",
			Format: "{seq} {received_at} gw {payload}", MaxSize: 1 << 20, Keep: 0},
		{Name: "handler", Type: "exec", Topics: []string{"#"}, Command: []string{filepath.Join(dir, "bin/handle"), "--quiet"}, Timeout: 5 * time.Second},
		{Name: "path-cmd", Type: "exec", Topics: []string{"#"}, Command: []string{"logger"}, Timeout: 30 * time.Second},
		{Name: "post", Type: "http", Topics: []string{"#"}, URL: "http://127.0.0.1:8080/in", Timeout: 30 * time.Second},
		{Name: "bus", Type: "mqtt", Topics: []string{"#"}, Broker: "tcp://localhost:1883", Topic: "local/gw/{seq}{topic}", Timeout: 30 * time.Second},
		{Name: "tls-bus", Type: "mqtt", Topics: []string{"#"}, Broker: "tls://broker.lan:8883", Topic: "{topic}", Timeout: 30 * time.Second},
	}
	if !reflect.DeepEqual(c.Sinks, want) {
		t.Errorf("sinks:\n got %+v\nwant %+v", c.Sinks, want)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	// What config accepts, the sinks package takes.
	if _, err := sinks.New(c.Sinks, emptyStore{}, nil); err != nil {
		t.Errorf("sinks.New: %v", err)
	}
}

// emptyStore is a store with nothing in it.
type emptyStore struct{}

func (emptyStore) Scan(uint64, func(store.Record) error) error { return nil }
func (emptyStore) Stats() (store.Stats, error)                 { return store.Stats{}, nil }
func (emptyStore) SinkCursors() (map[string]uint64, error)     { return nil, nil }
func (emptyStore) SetSinkCursors(map[string]uint64) error      { return nil }

// An http sink may post anywhere, with a warning when it leaves this
// machine; the warning never quotes the URL (it may carry a password).
func TestSinkURLWarnings(t *testing.T) {
	for url, want := range map[string]string{
		"http://127.0.0.1:8080/x":          "",
		"http://[::1]/x":                   "",
		"https://localhost/x":              "",
		"https://hooks.example.com/x":      "sends every payload to hooks.example.com, off this machine",
		"http://user:s3cret@10.1.2.3:80/x": "off this machine and unencrypted",
	} {
		c := mustParse(t, lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[[sink]]`, `name = "h"`, `type = "http"`, `url = "`+url+`"`))
		w := strings.Join(c.Warnings(), "\n")
		switch {
		case want == "" && w != "":
			t.Errorf("%s: warnings %q, want none", url, w)
		case want != "" && !strings.Contains(w, want):
			t.Errorf("%s: warnings %q, want %q", url, w, want)
		case strings.Contains(w, "s3cret"):
			t.Errorf("%s: the warning quotes the password: %q", url, w)
		}
		if want != "" && !strings.Contains(w, "line 7") {
			t.Errorf("%s: warning %q does not name line 7", url, w)
		}
	}
}
