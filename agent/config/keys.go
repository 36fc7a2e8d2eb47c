package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyPos is where a key (or table header) sits in the file.
type keyPos struct {
	_       noEq // never compared: no equality function in the binary
	header  bool // a [table] header (not [[array]], not a key = value)
	line    int  // line of the key or header
	valLine int  // line and column of a scalar value; 0 otherwise
	valCol  int
}

// keyIndex maps every key written in the file to its position. Keys are
// dotted, and entries of arrays of tables carry their index:
// "mqtt.broker", "relay[1].pin". The decoder reports a key's line only for
// unknown keys and type errors; this index gives it for the semantic checks
// too, and tells which [[relay]] an error belongs to.
type keyIndex map[string]keyPos

// indexKeys walks the document with go-toml's AST parser. On a syntax error
// it returns what it saw up to there.
func indexKeys(data []byte) keyIndex {
	w := indexer{idx: keyIndex{}, arrays: map[string]int{}}
	w.p.Reset(data)
	prefix := ""
	for w.p.NextExpression() {
		e := w.p.Expression()
		switch e.Kind {
		case unstable.Table:
			parts, line := w.keyParts(e)
			prefix = w.resolve("", parts)
			w.add(prefix, keyPos{header: true, line: line})
		case unstable.ArrayTable:
			parts, line := w.keyParts(e)
			if len(parts) == 0 {
				continue
			}
			full := join(w.resolve("", parts[:len(parts)-1]), parts[len(parts)-1])
			n := w.arrays[full]
			w.arrays[full] = n + 1
			prefix = full + "[" + strconv.Itoa(n) + "]"
			w.add(full, keyPos{line: line})
			w.add(prefix, keyPos{line: line})
		case unstable.KeyValue:
			w.keyValue(prefix, e)
		}
	}
	return w.idx
}

type indexer struct {
	p      unstable.Parser
	idx    keyIndex
	arrays map[string]int // entries seen so far per array of tables
}

func (w *indexer) add(key string, pos keyPos) {
	if _, ok := w.idx[key]; !ok {
		w.idx[key] = pos
	}
}

// keyParts returns the parts of a table header's or key-value's key and the
// line its first part is on.
func (w *indexer) keyParts(n *unstable.Node) ([]string, int) {
	var parts []string
	line := 0
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = w.p.Shape(k.Raw).Start.Line
		}
		parts = append(parts, string(k.Data))
	}
	return parts, line
}

// resolve appends parts to prefix, stepping into the latest entry of every
// array of tables on the way, as TOML does for [relay.sub] after [[relay]].
func (w *indexer) resolve(prefix string, parts []string) string {
	path := prefix
	for _, part := range parts {
		path = join(path, part)
		if n := w.arrays[path]; n > 0 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

func (w *indexer) keyValue(prefix string, kv *unstable.Node) {
	parts, line := w.keyParts(kv)
	if len(parts) == 0 {
		return
	}
	path := w.resolve(prefix, parts)
	pos := keyPos{line: line}
	v := kv.Value()
	switch v.Kind {
	case unstable.InlineTable:
		w.add(path, pos)
		w.inlineTable(path, v)
		return
	case unstable.Array:
		w.add(path, pos)
		i := 0
		it := v.Children()
		for it.Next() {
			if el := it.Node(); el.Kind == unstable.InlineTable {
				elPath := path + "[" + strconv.Itoa(i) + "]"
				w.add(elPath, pos)
				w.inlineTable(elPath, el)
			}
			i++
		}
		return
	}
	s := w.p.Shape(v.Raw)
	pos.valLine, pos.valCol = s.Start.Line, s.Start.Column
	w.add(path, pos)
}

func (w *indexer) inlineTable(path string, t *unstable.Node) {
	it := t.Children()
	for it.Next() {
		if kv := it.Node(); kv.Kind == unstable.KeyValue {
			w.keyValue(path, kv)
		}
	}
}

func join(prefix, part string) string {
	if prefix == "" {
		return part
	}
	return prefix + "." + part
}

// line returns the line of key, or of the nearest enclosing table written
// in the file (a missing mqtt.broker points at [mqtt]), or 0.
func (ix keyIndex) line(key string) int {
	for key != "" {
		if p, ok := ix[key]; ok {
			return p.line
		}
		if i := strings.LastIndexByte(key, '['); i > 0 && !strings.Contains(key[i:], ".") {
			key = key[:i] // "relay[1]" → "relay"
			continue
		}
		key = parentKey(key)
	}
	return 0
}

// has reports whether key is written in the file.
func (ix keyIndex) has(key string) bool {
	_, ok := ix[key]
	return ok
}

// find returns the indexed spelling ("relay[1].colour") of a key the
// decoder reported without indexes (["relay", "colour"]) at line.
func (ix keyIndex) find(line int, key []string) string {
	want := strings.Join(key, ".")
	best := ""
	for k, p := range ix {
		if p.line == line && stripIndexes(k) == want && (best == "" || k < best) {
			best = k
		}
	}
	if best == "" {
		return want
	}
	return best
}

// atValue returns the key whose value starts at line:col, or "".
func (ix keyIndex) atValue(line, col int) string {
	best := ""
	for k, p := range ix {
		if p.valLine == line && p.valCol == col && len(k) > len(best) {
			best = k
		}
	}
	return best
}
