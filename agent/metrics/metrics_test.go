package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

// parse is the Prometheus text parser's reading of b.
func parse(t *testing.T, b []byte) map[string]string {
	t.Helper()
	fams, err := new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses the exposition: %v\n%s", err, b)
	}
	out := map[string]string{}
	for n, f := range fams {
		out[n] = f.GetType().String() + " " + f.GetHelp() + " " + fmt.Sprint(len(f.Metric))
	}
	return out
}

func TestTextParses(t *testing.T) {
	var x Text
	x.Head("a_total", Counter, "What a counts.")
	x.Sample("a_total", 3)
	x.Head("b", Gauge, "Per relay.")
	x.Sample("b", 1, "relay", `we"ird\name`+"\n", "cause", "for")
	x.Sample("b", 0.25, "relay", "pump", "", "ignored")
	x.Head("h_seconds", Histogram, "Latency.")
	x.Sample("h_seconds_bucket", 1, "le", "0.001")
	x.Sample("h_seconds_bucket", 2, "le", "+Inf")
	x.Sample("h_seconds_sum", 0.0035)
	x.Sample("h_seconds_count", 2)
	got := parse(t, x.Bytes())
	want := map[string]string{"a_total": "COUNTER What a counts. 1", "b": "GAUGE Per relay. 2", "h_seconds": "HISTOGRAM Latency. 1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	fams, _ := new(expfmt.TextParser).TextToMetricFamilies(bytes.NewReader(x.Bytes()))
	for _, l := range fams["b"].Metric[0].Label {
		if l.GetName() == "relay" && l.GetValue() != `we"ird\name`+"\n" {
			t.Errorf("label value read back as %q", l.GetValue())
		}
	}
	if len(fams["b"].Metric[1].Label) != 1 {
		t.Errorf("a label without a name was written: %v", fams["b"].Metric[1].Label)
	}
}

// A reader never sees a half-written file, however the rewrites and the
// reads interleave.
func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge-agent.prom")
	texts := make([][]byte, 4)
	for i := range texts {
		var x Text
		x.Head("n", Gauge, "Which version.")
		for j := 0; j < 200*(i+1); j++ { // each a different length
			x.Sample("n", float64(i), "j", fmt.Sprint(j))
		}
		texts[i] = x.Bytes()
	}
	if err := WriteFile(path, texts[0]); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := os.ReadFile(path)
				if err != nil {
					bad.Add(1)
					t.Errorf("read: %v", err)
					return
				}
				reads.Add(1)
				whole := false
				for _, x := range texts {
					whole = whole || bytes.Equal(b, x)
				}
				if !whole {
					bad.Add(1)
					t.Errorf("read %d bytes that are none of the texts written", len(b))
					return
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		if err := WriteFile(path, texts[i%len(texts)]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads during 2000 rewrites", reads.Load())
	if reads.Load() == 0 {
		t.Fatal("the readers read nothing")
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (node_exporter reads it as another user)", fi.Mode().Perm())
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var x Text
	x.Head("up", Gauge, "Up.")
	x.Sample("up", 1)
	done := make(chan struct{})
	go func() { defer close(done); Serve(ln, x.Bytes) }()
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		path string
		code int
	}{{"/metrics", 200}, {"/metrics?x=1", 200}, {"/", 404}, {"/metricsx", 404}} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.code)
		}
		if tc.code == 200 {
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("content type %q", ct)
			}
			parse(t, b)
			if !bytes.Equal(b, x.Bytes()) {
				t.Errorf("body %q", b)
			}
		}
	}
	if resp, err := http.Post(base+"/metrics", "text/plain", strings.NewReader("x")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("POST /metrics answered 200")
		}
	}
	// A client that connects and sends nothing holds the server for at
	// most the deadline; the next scrape is answered after it.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET after an idle client: %v", err)
	}
	resp.Body.Close()
	t.Logf("answered %v after an idle client connected", time.Since(start).Round(time.Millisecond))
	ln.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return once its listener closed")
	}
}

func TestRSS(t *testing.T) {
	if n := RSS(); n < 1<<20 || n > 1<<32 {
		t.Fatalf("RSS %d bytes; a Go test process holds a few MB", n)
	}
}
