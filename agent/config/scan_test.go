package config

import (
	"regexp"
	"testing"
)

// The regular expressions the scanners replace: the scanners must agree
// with them on every input.
var (
	placeholderRE = regexp.MustCompile(`\{[A-Za-z0-9_]+\}`)
	quotedCharRE  = regexp.MustCompile(`U\+[0-9A-F]{4,}(?: '.{1,4}?')?`)
)

var scanSeeds = []string{
	"", "{", "}", "{}", "{device_id}", "/sys/{device}/x", "a{b{c}d}", "{a-b}{ok_1}", "{{x}}",
	"U+0041 'A'", "U+0041", "U+041 'A'", "U+00410 'A'x", "bad char U+000A '\\n' in value",
	"U+1F600 '😀'", "U+0041 ''", "U+0041 'abcde'", "U+0041 'ab'c'", "U+0041 '\n'", "U+U+0041",
	"x U+0041 'A' and U+0042 'B' end", "U+00e9 'é'", "U+0041 'A", "U+FFFD '\xff'",
}

func TestScannersMatchTheirRegexps(t *testing.T) {
	for _, s := range scanSeeds {
		checkScanners(t, s)
	}
}

func FuzzScanners(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add(s)
	}
	f.Fuzz(checkScanners)
}

func checkScanners(t *testing.T, s string) {
	if got, want := findPlaceholder(s), placeholderRE.FindString(s); got != want {
		t.Errorf("findPlaceholder(%q) = %q, regexp finds %q", s, got, want)
	}
	if got, want := replaceQuotedChars(s, "X"), quotedCharRE.ReplaceAllString(s, "X"); got != want {
		t.Errorf("replaceQuotedChars(%q) = %q, regexp gives %q", s, got, want)
	}
}
