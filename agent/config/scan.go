package config

import (
	"strings"
	"unicode/utf8"
)

// Two small scanners instead of package regexp: these were its only users in
// the agent, and regexp with its parser cost the ARM binary ~100 KB of the
// 8 MB budget (docs/testing.md#make-bench). scan_test.go checks both against the
// regular expressions they replace.

// findPlaceholder returns the first {name} in s, name being one or more of
// [A-Za-z0-9_] (the regexp `\{[A-Za-z0-9_]+\}`), or "".
func findPlaceholder(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '{' {
			continue
		}
		j := i + 1
		for j < len(s) && isNameByte(s[j]) {
			j++
		}
		if j > i+1 && j < len(s) && s[j] == '}' {
			return s[i : j+1]
		}
	}
	return ""
}

func isNameByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// replaceQuotedChars replaces each character go-toml renders with %#U
// ("U+0041 'A'", or "U+0000" alone for one it cannot print) by repl: the
// regexp `U\+[0-9A-F]{4,}(?: '.{1,4}?')?`.
func replaceQuotedChars(s, repl string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "U+")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + 2
		for j < len(s) && isUpperHex(s[j]) {
			j++
		}
		if j-(i+2) < 4 {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s = s[j+quotedLen(s[j:]):]
	}
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// quotedLen is the length of a " 'x'" that follows the code point, x being
// one to four characters other than newline (the shortest that closes), or 0.
func quotedLen(s string) int {
	if !strings.HasPrefix(s, " '") {
		return 0
	}
	j := 2
	for n := 1; n <= 4 && j < len(s); n++ {
		r, size := utf8.DecodeRuneInString(s[j:])
		if r == '\n' {
			return 0
		}
		j += size
		if j < len(s) && s[j] == '\'' {
			return j + 1
		}
	}
	return 0
}
