// Package metrics writes the Prometheus text exposition format (version
// 0.0.4) by hand, and hands it out: a file rewritten atomically for
// node_exporter's textfile collector, and GET /metrics on a TCP listener.
// No client library: the exposition is a few hundred lines of text, and the
// armv6 binary has no room for one (docs/design.md#metrics).
package metrics

import (
	"math"
	"strconv"
	"strings"
)

// Text builds an exposition. Families are written in the order they are
// added; each family's samples follow its HELP and TYPE lines.
type Text struct{ b []byte }

// Types of a family.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Head starts a family: its HELP and TYPE lines.
func (t *Text) Head(name, typ, help string) {
	t.b = append(t.b, "# HELP "...)
	t.b = append(t.b, name...)
	t.b = append(t.b, ' ')
	t.b = append(t.b, helpEscaper.Replace(help)...)
	t.b = append(t.b, "\n# TYPE "...)
	t.b = append(t.b, name...)
	t.b = append(t.b, ' ')
	t.b = append(t.b, typ...)
	t.b = append(t.b, '\n')
}

// Sample adds one sample; labels are name, value pairs.
func (t *Text) Sample(name string, v float64, labels ...string) {
	t.b = append(t.b, name...)
	for i := 0; i+1 < len(labels); i += 2 {
		if i == 0 {
			t.b = append(t.b, '{')
		} else {
			t.b = append(t.b, ',')
		}
		t.b = append(t.b, labels[i]...)
		t.b = append(t.b, `="`...)
		t.b = append(t.b, labelEscaper.Replace(labels[i+1])...)
		t.b = append(t.b, '"')
	}
	if len(labels) > 1 {
		t.b = append(t.b, '}')
	}
	t.b = append(t.b, ' ')
	switch {
	case math.IsInf(v, 1):
		t.b = append(t.b, "+Inf"...)
	case math.IsInf(v, -1):
		t.b = append(t.b, "-Inf"...)
	case math.IsNaN(v):
		t.b = append(t.b, "NaN"...)
	default:
		t.b = strconv.AppendFloat(t.b, v, 'g', -1, 64)
	}
	t.b = append(t.b, '\n')
}

// One is a family of one sample without labels.
func (t *Text) One(name, typ, help string, v float64) {
	t.Head(name, typ, help)
	t.Sample(name, v)
}

// Bytes is the exposition so far.
func (t *Text) Bytes() []byte { return t.b }

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)
