package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseLenient(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	for _, c := range []struct {
		name, file string
		want       Lenient
	}{
		{"keys of the wrong type are skipped, the rest is read", `
device_id = 5219709
data_dir = "state"
brokr = "typo"
[mqtt]
broker = "tcp://plain:1883"
[hw]
backend = "sim"
[leds]
status = "GPIO22"
fault = 27
activity = "GPIO23"
active_low = true
`, Lenient{DataDir: filepath.Join(dir, "state"), Backend: BackendSim,
			LEDs: LEDs{Status: "GPIO22", Activity: "GPIO23", ActiveLow: true}}},
		{"defaults", `device_id = "d1"
[hw]
backend = "gpio"
[leds]
active_low = "yes"
`, Lenient{DataDir: DefaultDataDir, DeviceID: "d1", Backend: BackendPeriph}},
		{"an empty data_dir and tables of the wrong type", `data_dir = ""
leds = "GPIO22"
hw = 1
`, Lenient{DataDir: DefaultDataDir, Backend: BackendPeriph}},
		{"an absolute data_dir", `data_dir = "/srv/ea"`, Lenient{DataDir: "/srv/ea", Backend: BackendPeriph}},
	} {
		got, err := ParseLenient([]byte(c.file), path)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, *got, c.want)
		}
	}
	if _, err := ParseLenient([]byte("data_dir = \"/x\"\n[leds\n"), path); err == nil {
		t.Error("a file that is not TOML: no error")
	}
}
