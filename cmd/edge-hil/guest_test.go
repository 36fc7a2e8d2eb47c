package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestParseModinfo(t *testing.T) {
	sec := []byte("license=GPL\x00softdep=pre: crypto-crc32c\x00depends=jbd2,mbcache,crc16\x00name=ext4\x00vermagic=6.12.117+deb12-arm64 SMP\x00")
	if got, want := parseModinfo(sec), []string{"jbd2", "mbcache", "crc16"}; !slices.Equal(got, want) {
		t.Errorf("parseModinfo = %v, want %v", got, want)
	}
	if got := parseModinfo([]byte("depends=\x00name=virtio_blk\x00")); len(got) != 0 {
		t.Errorf("empty depends = %v", got)
	}
	if got := parseModinfo([]byte("depends=gpio-sim\x00")); !slices.Equal(got, []string{"gpio_sim"}) {
		t.Errorf("dashes = %v, want gpio_sim", got)
	}
}

func TestLoadOrder(t *testing.T) {
	// The dependencies of Debian 6.12's modules the guest loads.
	deps := map[string][]string{
		"virtio_net": {"net_failover"}, "net_failover": {"failover"}, "failover": nil,
		"virtio_blk": nil, "crc32c_generic": nil,
		"ext4": {"jbd2", "mbcache", "crc16"}, "jbd2": nil, "mbcache": nil, "crc16": nil,
	}
	got, err := loadOrder(guestModules, deps)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"failover", "net_failover", "virtio_net", "virtio_blk", "crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"}
	if !slices.Equal(got, want) {
		t.Errorf("loadOrder = %v, want %v", got, want)
	}
	pos := map[string]int{}
	for i, m := range got {
		pos[m] = i
	}
	for m, ds := range deps {
		for _, d := range ds {
			if pos[d] > pos[m] {
				t.Errorf("%s loads before its dependency %s", m, d)
			}
		}
	}
	if _, err := loadOrder([]string{"ext4"}, map[string][]string{"ext4": {"jbd2"}}); err == nil || !strings.Contains(err.Error(), "jbd2 (needed by ext4) not found") {
		t.Errorf("missing dependency: err = %v", err)
	}
	if _, err := loadOrder([]string{"a"}, map[string][]string{"a": {"b"}, "b": {"a"}}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/ext4/ext4.ko.xz":        "ext4",
		"kernel/drivers/gpio/gpio-sim.ko":  "gpio_sim",
		"crc32c_generic.ko.zst":            "crc32c_generic",
		"kernel/net/core/failover.ko.gz":   "failover",
		"/x/virtio_blk.ko.xz":              "virtio_blk",
		"kernel/arch/arm64/crypto/sha1-ce": "sha1_ce",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKernelCandidates(t *testing.T) {
	names := strings.Split(`linux-image-6.12.100+deb12-arm64
linux-image-6.12.117+deb12-arm64-16k
linux-image-6.12.117+deb12-arm64-dbg
linux-image-6.12.117+deb12-arm64-unsigned
linux-image-6.12.117+deb12-cloud-arm64
linux-image-6.12.117+deb12-rt-arm64
linux-image-6.12.117+deb12-arm64
linux-image-6.12.9+deb12-arm64-unsigned
linux-image-6.12.117+deb12-amd64
linux-image-6.12-arm64
linux-image-6.12.117+deb12-arm64`, "\n")
	want := []string{
		"linux-image-6.12.117+deb12-arm64",
		"linux-image-6.12.117+deb12-arm64-unsigned",
		"linux-image-6.12.100+deb12-arm64",
		"linux-image-6.12.9+deb12-arm64-unsigned",
	}
	if got := kernelCandidates(names); !slices.Equal(got, want) {
		t.Errorf("kernelCandidates = %v, want %v", got, want)
	}
}

func TestParseDebugGPIO(t *testing.T) {
	text := `gpiochip1: GPIOs 600-607, parent: platform/other, other:
 gpio-600 (                    |someone             ) out hi
gpiochip0: GPIOs 512-519, parent: amba/9030000.pl061, 9030000.pl061:
 gpio-512 (                    |edge-agent@97       ) out lo
 gpio-513 (                    |edge-agent@97       ) out hi
 gpio-517 (                    |edge-agent@97       ) in  lo IRQ 
`
	got, err := parseDebugGPIO(text, "pl061")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]debugLine{
		0: {consumer: "edge-agent@97", out: true, level: 0},
		1: {consumer: "edge-agent@97", out: true, level: 1},
		5: {consumer: "edge-agent@97", out: false, level: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("parseDebugGPIO = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("line %d = %+v, want %+v", k, got[k], w)
		}
	}
	if _, err := parseDebugGPIO("gpiochip0: GPIOs 0-7, parent: x, y:\n", "pl061"); err == nil {
		t.Error("no PL061 chip: no error")
	}
	if _, err := parseDebugGPIO("gpiochip0: GPIOs 512-519, 9030000.pl061:\n gpio-512 (|x) sideways\n", "pl061"); err == nil {
		t.Error("bad line: no error")
	}
}

// The board must fit the PL061 (8 lines), leave the power button's line
// alone and give each line to one output; the config must be valid TOML
// with the pins as "gpiochip@CHIP@:N".
func TestBoardAndConfig(t *testing.T) {
	seen := map[int]string{}
	for _, p := range board {
		if p.offset < 0 || p.offset > 7 || p.offset == powerButtonLine {
			t.Errorf("%s on line %d", p.name, p.offset)
		}
		if o, dup := seen[p.offset]; dup {
			t.Errorf("%s and %s share line %d", p.name, o, p.offset)
		}
		seen[p.offset] = p.name
	}
	var lowOff, highOff bool
	for _, p := range relays() {
		if p.level(false) == 1 {
			lowOff = true // active low: off is a high line
		} else {
			highOff = true
		}
		if p.level(true) == p.level(false) {
			t.Errorf("%s: on and off are the same level", p.name)
		}
	}
	if !lowOff || !highOff {
		t.Error("the board needs an active-high and an active-low relay")
	}
	cfg := agentConfig("hil-arm64", 34567)
	var doc struct {
		Device string `toml:"device_id"`
		MQTT   struct {
			Broker     string `toml:"broker"`
			ServerName string `toml:"server_name"`
		} `toml:"mqtt"`
		LEDs  map[string]any `toml:"leds"`
		Relay []struct {
			Name      string `toml:"name"`
			Pin       string `toml:"pin"`
			PowerOn   string `toml:"power_on"`
			ActiveLow bool   `toml:"active_low"`
		} `toml:"relay"`
	}
	if err := toml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatalf("config is not TOML: %v\n%s", err, cfg)
	}
	if doc.MQTT.Broker != "tls://10.0.2.2:34567" || doc.MQTT.ServerName != "localhost" {
		t.Errorf("broker %q server_name %q", doc.MQTT.Broker, doc.MQTT.ServerName)
	}
	if doc.LEDs["status"] != "gpiochip@CHIP@:5" || len(doc.Relay) != 4 {
		t.Errorf("leds %v, %d relays:\n%s", doc.LEDs, len(doc.Relay), cfg)
	}
	for i, p := range relays() {
		r := doc.Relay[i]
		if r.Name != p.name || r.Pin != fmt.Sprintf("gpiochip@CHIP@:%d", p.offset) || r.PowerOn != p.powerOn || r.ActiveLow != p.activeLow {
			t.Errorf("relay %d in the config = %+v, want %+v", i, r, p)
		}
	}
}
