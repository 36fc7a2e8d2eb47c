package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edge-agent/edge-agent/agent/config"
)

// With [metrics] absent the daemon has no metrics part (no goroutine) and
// no listening socket; each key adds exactly its part.
func TestMetricsOffAddsNothing(t *testing.T) {
	for _, tc := range []struct {
		extra  string
		parts  []string
		scrape bool
	}{
		{"", nil, false},
		{"[metrics]\ntextfile = \"m.prom\"\n", []string{"metrics"}, false},
		{"[metrics]\ntelemetry_topic = \"t/{device_id}\"\n", []string{"metrics"}, false},
		{"[metrics]\nlisten = \"127.0.0.1:0\"\n", []string{"metrics-http"}, true},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "config.toml")
		doc := fmt.Sprintf("device_id = \"gw\"\ndata_dir = %q\n[mqtt]\nbroker = \"tls://127.0.0.1:1\"\nusername = \"u\"\npassword = \"p\"\n[hw]\nbackend = \"sim\"\n%s",
			filepath.Join(dir, "data"), tc.extra)
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(cfg, Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range d.parts {
			if p.name == "metrics" || p.name == "metrics-http" {
				got = append(got, p.name)
			}
		}
		if !slices.Equal(got, tc.parts) || (d.scrape != nil) != tc.scrape {
			t.Errorf("%q: metrics parts %v, listening %v; want %v, %v", tc.extra, got, d.scrape != nil, tc.parts, tc.scrape)
		}
		if len(d.parts) != 7+len(tc.parts) {
			t.Errorf("%q: %d parts, want the 7 of every daemon plus %d", tc.extra, len(d.parts), len(tc.parts))
		}
		d.close()
	}
}
