package scripts

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The scripts, and the POSIX sh programs deploy.sh runs on the targets,
// are shellcheck-clean.
func TestShellcheck(t *testing.T) {
	need(t, "shellcheck", "shellcheck")
	scripts := []string{
		filepath.Join(repoRoot, "scripts", "deploy.sh"),
		filepath.Join(repoRoot, "scripts", "install-image.sh"),
	}
	if out, err := shErr("shellcheck", scripts...); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}

	deploy := readText(t, scripts[0])
	dir := t.TempDir()
	for _, name := range []string{"probe_script", "apply_script"} {
		m := regexp.MustCompile(`(?s)\n` + name + `='\n(.*?)\n'\n`).FindStringSubmatch(deploy)
		if m == nil {
			t.Errorf("no %s in deploy.sh", name)
			continue
		}
		p := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+m[1]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := shErr("shellcheck", "-s", "sh", p); err != nil {
			t.Errorf("shellcheck of deploy.sh's %s (runs on the target under sh): %v\n%s", name, err, out)
		}
	}
}
