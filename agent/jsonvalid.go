package agent

// validJSON reports what json.Valid reports: whether p is one JSON value
// with nothing but white space around it, nested at most jsonMaxDepth deep.
// It runs on every notification on the command topic (mayBeCommand), where
// json.Valid's scanner, an indirect call per byte, took 6% of the agent's
// CPU while draining a backlog; this is one pass of plain loops that
// allocates nothing below 32 levels. FuzzValidJSON holds it to json.Valid.
func validJSON(p []byte) bool {
	var buf [32]bool // the open containers: true = object
	open := buf[:0]
	i := 0
	for {
		// A value starts at i.
		i = skipJSONSpace(p, i)
		if i >= len(p) {
			return false
		}
		switch c := p[i]; c {
		case '{', '[':
			open = append(open, c == '{')
			if len(open) > jsonMaxDepth {
				return false
			}
			i = skipJSONSpace(p, i+1)
			if i < len(p) && p[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				i = jsonKey(p, i)
			}
			if i < 0 {
				return false
			}
			continue
		case '"':
			i = jsonString(p, i)
		case 't':
			i = jsonLiteral(p, i, "true")
		case 'f':
			i = jsonLiteral(p, i, "false")
		case 'n':
			i = jsonLiteral(p, i, "null")
		default:
			i = jsonNumber(p, i)
		}
		if i < 0 {
			return false
		}
		// After a value: close what it ends, or go on to the next element.
	after:
		for {
			i = skipJSONSpace(p, i)
			if len(open) == 0 {
				return i == len(p)
			}
			if i >= len(p) {
				return false
			}
			obj := open[len(open)-1]
			switch {
			case p[i] == ',':
				i++
				if obj {
					if i = jsonKey(p, skipJSONSpace(p, i)); i < 0 {
						return false
					}
				}
				break after
			case obj && p[i] == '}', !obj && p[i] == ']':
				open = open[:len(open)-1]
				i++
			default:
				return false
			}
		}
	}
}

// jsonMaxDepth is encoding/json's nesting bound (its scanner's
// maxNestingDepth): deeper input is not valid to json.Valid.
const jsonMaxDepth = 10000

func skipJSONSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonKey reads `"key" :` at i and returns where the value may start, or -1.
func jsonKey(p []byte, i int) int {
	if i >= len(p) || p[i] != '"' {
		return -1
	}
	if i = jsonString(p, i); i < 0 {
		return -1
	}
	if i = skipJSONSpace(p, i); i >= len(p) || p[i] != ':' {
		return -1
	}
	return i + 1
}

// jsonString reads the string starting with the quote at i and returns the
// index after its closing quote, or -1. As encoding/json, it takes any byte
// but control characters (invalid UTF-8 included).
func jsonString(p []byte, i int) int {
	for i++; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(p) {
				return -1
			}
			switch p[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(p) {
					return -1
				}
				for _, h := range p[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func jsonLiteral(p []byte, i int, lit string) int {
	if len(p)-i < len(lit) || string(p[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// jsonNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at i and
// returns the index after it, or -1.
func jsonNumber(p []byte, i int) int {
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i >= len(p):
		return -1
	case p[i] == '0':
		i++
	case '1' <= p[i] && p[i] <= '9':
		i = jsonDigits(p, i)
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if j := jsonDigits(p, i+1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if j := jsonDigits(p, i); j > i {
			i = j
		} else {
			return -1
		}
	}
	return i
}

func jsonDigits(p []byte, i int) int {
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	return i
}
