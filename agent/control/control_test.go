package control

import "testing"

func TestPayloadPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{[]byte("hello"), `"hello"`},
		{[]byte{0, 1, 0xff}, `"\x00\x01\xff"`},
		{[]byte("line\nbrk"), `"line\nbrk"`},
		{[]byte("0123456789abcdef"), `"01234567"…`},
	} {
		if got := PayloadPrefix(tc.in, 8); got != tc.want {
			t.Errorf("PayloadPrefix(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in, want, line string
	}{
		{"plain é ✓", "plain é ✓", "plain é ✓"},
		{"a\nb\tc", "a\nb\tc", `a\x0ab\x09c`},
		{"\x1b[2J\x1b]0;t\x07\r", `\x1b[2J\x1b]0;t\x07\x0d`, `\x1b[2J\x1b]0;t\x07\x0d`},
		{"\x00\x7f", `\x00\x7f`, `\x00\x7f`},
		{"\u0085\u009b31m\u00a0", `\u0085\u009b31m` + "\u00a0", `\u0085\u009b31m` + "\u00a0"},
		{"bad \xff\xc2 utf8 \ufffd", `bad \xff\xc2 utf8 ` + "\ufffd", `bad \xff\xc2 utf8 ` + "\ufffd"},
		{`back\slash`, `back\slash`, `back\slash`},
	} {
		if got := Printable([]byte(tc.in)); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := PrintableLine(tc.in); got != tc.line {
			t.Errorf("PrintableLine(%q) = %q, want %q", tc.in, got, tc.line)
		}
	}
}
