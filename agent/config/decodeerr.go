package config

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

const exampleHint = "the accepted keys are listed in scripts/edge-agent.example.toml"

// unknownKey turns one strict-mode error into a Problem with a suggestion.
func (l *loader) unknownKey(e *toml.DecodeError) Problem {
	line, _ := e.Position()
	key := l.keys.find(line, e.Key())
	what := "unknown key"
	if strings.Contains(e.Error(), "table") {
		what = "unknown table"
	}
	return Problem{Path: l.path, Line: line, Key: key, Msg: what, Fix: suggest(stripIndexes(key))}
}

// suggest proposes the accepted key an unknown one was probably meant as.
func suggest(key string) string {
	parent, name := parentKey(key), key[strings.LastIndexByte(key, '.')+1:]
	// A known key under the wrong header: [bootstrap] … allow_plaintext = true.
	var homes []string
	for k := range schema {
		if parentKey(k) != parent && k[strings.LastIndexByte(k, '.')+1:] == name {
			homes = append(homes, k)
		}
	}
	if len(homes) > 0 {
		sort.Strings(homes)
		return fmt.Sprintf("%s is accepted as %s: move it under that section's header", name, strings.Join(homes, " or "))
	}
	best, bestDist := "", 0
	for k := range schema {
		if parentKey(k) != parent {
			continue
		}
		cand := k[strings.LastIndexByte(k, '.')+1:]
		d := editDistance(name, cand)
		if d <= 2 && d < len(cand)/2+1 && (best == "" || d < bestDist || (d == bestDist && cand < best)) {
			best, bestDist = cand, d
		}
	}
	if best != "" {
		if e := schema[join(parent, best)]; e.kind == kindArrayTable {
			return fmt.Sprintf("did you mean [[%s]]?", join(parent, best))
		}
		return fmt.Sprintf("did you mean %q?", best)
	}
	return "remove it or fix its spelling; " + exampleHint
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeError turns a syntax or type error into a Problem. go-toml's own
// wording is kept for syntax errors, except on a line that sets a password,
// where it may quote a character of the secret.
func (l *loader) decodeError(e *toml.DecodeError) Problem {
	line, col := e.Position()
	msg := strings.TrimPrefix(e.Error(), "toml: ")
	key := ""
	if len(e.Key()) > 0 {
		key = l.keys.find(line, e.Key())
	}
	if k := l.keys.atValue(line, col); k != "" {
		key = k // inline tables: go-toml names only the table
	}
	p := Problem{Path: l.path, Line: line, Key: key}
	if found, ok := strings.CutPrefix(msg, "cannot decode TOML "); ok {
		found, _, _ = strings.Cut(found, " into ")
		if entry, ok := schema[stripIndexes(key)]; ok {
			p.Msg, p.Fix = typeMismatch(key, entry.kind, found)
			return p
		}
		if key != "" {
			p.Msg = "cannot be " + article(found)
			return p
		}
	}
	if secretLine(l.data, line) {
		p.Msg = "syntax error in a password value (not shown, it is a secret)"
		p.Fix = "write it as a quoted string: password = \"…\", or better use password_file"
		return p
	}
	// go-toml quotes the offending character; say where it is instead, so
	// that no character of a value ever reaches a log.
	p.Msg = fmt.Sprintf("%s (column %d)", replaceQuotedChars(msg, "another character"), col)
	switch {
	case strings.Contains(msg, "already exists") || strings.Contains(msg, "already defined"):
		p.Fix = "each key and [table] may appear once; merge the duplicates"
	case strings.Contains(msg, "cannot store a table in a slice"):
		p.Fix = "write [[" + key + "]] (double brackets): each entry is one element of an array"
	default:
		p.Fix = "fix the TOML syntax (strings need double quotes, one key = value per line)"
	}
	return p
}

// typeMismatch explains a value of the wrong type, and how to write it.
func typeMismatch(key string, kind valueKind, found string) (msg, fix string) {
	name := key[strings.LastIndexByte(key, '.')+1:]
	switch kind {
	case kindBool:
		return "expected true or false, found " + article(found),
			fmt.Sprintf("write %s = true or %s = false, without quotes", name, name)
	case kindInt:
		return "expected a whole number, found " + article(found),
			fmt.Sprintf("write it without quotes, like %s = %d", name, DefaultRetainRecords)
	case kindDuration:
		return "expected a duration string, found " + article(found),
			fmt.Sprintf("write it quoted with a unit, like %s = \"30s\"", name)
	case kindSize:
		return "expected a size string, found " + article(found),
			fmt.Sprintf("write it quoted with a unit, like %s = \"64MiB\"", name)
	case kindTable:
		return "expected a table, found " + article(found),
			fmt.Sprintf("write it as a [%s] section", key)
	case kindArrayTable:
		return "expected an array of tables, found " + article(found),
			fmt.Sprintf("write each entry as a [[%s]] section", key)
	case kindArray:
		return "expected an array of strings, found " + article(found),
			fmt.Sprintf("write it in brackets, each string quoted: %s = [\"…\", \"…\"]", name)
	default:
		return "expected a string, found " + article(found),
			fmt.Sprintf("put the value in double quotes: %s = \"…\"", name)
	}
}

func article(tomlType string) string {
	if tomlType == "" {
		return "another type"
	}
	if strings.ContainsRune("aeiou", rune(tomlType[0])) {
		return "an " + tomlType
	}
	return "a " + tomlType
}

// secretLine reports whether line n of data sets a password, so that a
// syntax error on it must not be quoted.
func secretLine(data []byte, n int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if n < 1 || n > len(lines) {
		return false
	}
	lhs, _, _ := bytes.Cut(lines[n-1], []byte("="))
	return bytes.Contains(bytes.ToLower(lhs), []byte("password"))
}

// isTypeError reports whether e is a value of the wrong type (as opposed to
// a syntax error, after which nothing more of the file can be trusted).
func isTypeError(e *toml.DecodeError) bool {
	return strings.HasPrefix(e.Error(), "toml: cannot decode TOML ")
}

// blankKeyValue returns a copy of data with the innermost key = value that
// holds e's position replaced by spaces (line breaks kept, so every other
// key keeps its line and column), and the comma after it when it is in an
// inline table. It returns false when no key = value holds the position (a
// [table] header of the wrong type).
func blankKeyValue(data []byte, e *toml.DecodeError) ([]byte, bool) {
	line, col := e.Position()
	off := offsetOf(data, line, col)
	if off < 0 {
		return nil, false
	}
	var p unstable.Parser
	p.Reset(data)
	var best unstable.Range
	found := false
	var visit func(n *unstable.Node)
	visit = func(n *unstable.Node) {
		if n.Kind == unstable.KeyValue {
			r := n.Raw
			if int(r.Offset) <= off && off < int(r.Offset+r.Length) && (!found || r.Length < best.Length) {
				best, found = r, true
			}
			n = n.Value()
		}
		if n.Kind == unstable.InlineTable || n.Kind == unstable.Array {
			it := n.Children()
			for it.Next() {
				visit(it.Node())
			}
		}
	}
	for p.NextExpression() {
		visit(p.Expression())
	}
	if !found {
		return nil, false
	}
	out := bytes.Clone(data)
	end := int(best.Offset + best.Length)
	if i := end + len(out[end:]) - len(bytes.TrimLeft(out[end:], " \t\r\n")); i < len(out) && out[i] == ',' {
		end = i + 1 // the element's comma inside { … }
	}
	for i := int(best.Offset); i < end; i++ {
		if out[i] != '\n' && out[i] != '\r' {
			out[i] = ' '
		}
	}
	return out, true
}

// offsetOf turns a 1-based line and byte column into an offset, or -1.
func offsetOf(data []byte, line, col int) int {
	start := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return -1
		}
		start += i + 1
	}
	off := start + col - 1
	if col < 1 || off >= len(data) {
		return -1
	}
	return off
}
