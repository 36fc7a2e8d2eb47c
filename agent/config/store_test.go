package config

import (
	"strings"
	"testing"
	"time"
)

func TestCommitWindow(t *testing.T) {
	for _, tc := range []struct {
		value string // "" = absent
		want  time.Duration
		fail  string
	}{
		{"", 100 * time.Millisecond, ""},
		{`"0s"`, 0, ""},
		{`"50ms"`, 50 * time.Millisecond, ""},
		{`"1s"`, time.Second, ""},
		{`"2s"`, 0, "more than 1s"},
		{`"-1ms"`, 0, "negative"},
		{`"soon"`, 0, "not a duration"},
	} {
		doc := lines(`device_id = "gw"`, `[mqtt]`, `broker = "tls://b"`, `[store]`)
		if tc.value != "" {
			doc = lines(doc, `commit_window = `+tc.value)
		}
		c, err := Parse([]byte(doc), "c.toml")
		switch {
		case tc.fail != "":
			if err == nil || !strings.Contains(err.Error(), "store.commit_window") || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%s: err = %v, want store.commit_window: …%s…", tc.value, err, tc.fail)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.value, err)
		case c.Store.CommitWindow != tc.want:
			t.Errorf("%s: commit window %v, want %v", tc.value, c.Store.CommitWindow, tc.want)
		}
	}
}
