package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Path string // the file as given to Load or Parse; "" when unnamed
	Line int    // 1-based line in the file; 0 when no line applies (a missing key)
	Key  string // dotted key such as "mqtt.broker" or "relay[1].pin"; "" for syntax errors
	Msg  string // what is wrong; never contains a secret
	Fix  string // what to do about it
}

// String formats the problem as one line:
//
//	config.toml:12: mqtt.broker: plaintext broker "tcp://h:1883" refused; use …
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Path != "" && p.Line > 0:
		b.WriteString(p.Path + ":" + strconv.Itoa(p.Line) + ": ")
	case p.Path != "":
		b.WriteString(p.Path + ": ")
	case p.Line > 0:
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	if p.Fix != "" {
		b.WriteString("; " + p.Fix)
	}
	return b.String()
}

// Errors is every problem found in one configuration file, unknown keys
// first, then the others in line order. Load and Parse return it as *Errors.
type Errors []Problem

// Error returns one line per problem.
func (e *Errors) Error() string {
	lines := make([]string, len(*e))
	for i, p := range *e {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
