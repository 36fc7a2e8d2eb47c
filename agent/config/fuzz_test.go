package config

import (
	"os"
	"testing"
)

// FuzzParse: no input makes Parse panic, and a failure is always *Errors.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(examplePath); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"",
		`device_id = "gw"` + "\n[mqtt]\nbroker = \"tls://b\"\n",
		"device_id = \"gw\"\nmqtt = { broker = 5 }\n",
		"[[relay]]\nname = \"a\"\npin = \"GPIO1\"\n[relay.x]\ny = 1\n[[relay]]\n",
		"relay = [ { name = \"a\" }, { pin = 3 } ]\n",
		"[mqtt]\npassword = hunter2\n",
		"a.b.c = 1\n[a]\n",
		"[[relay]]\n[relay]\n",
		"[store]\nretain_bytes = \"99999999999999999999GiB\"\n",
		"device_id = \"\x00\xff\"\n",
		"[mqtt\n",
		"mqtt.broker = \"[::1\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.toml")
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		errs, ok := err.(*Errors)
		if !ok {
			t.Fatalf("error %T, want *Errors", err)
		}
		if len(*errs) == 0 || errs.Error() == "" {
			t.Fatal("empty *Errors")
		}
	})
}
