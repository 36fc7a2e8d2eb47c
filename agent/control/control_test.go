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
