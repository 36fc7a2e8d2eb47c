package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// The size bound on inbound messages acts below paho, on the byte stream:
// paho v1.5.1's packets.ReadPacket allocates a packet's whole declared
// remaining length (up to 256 MiB) before anything of ours sees it, and its
// queues may hold several such packets. sizeLimiter reads each packet's
// fixed header itself; a PUBLISH whose payload is over the limit reaches
// paho rewritten, with the same flags, topic and packet id (so its PUBACK
// acknowledges the original), and a short marker payload instead of the
// real one, which is read and thrown away in pieces. The handler recognises
// the marker and stores a marker record: the topic, the size, the first
// bytes. So the agent never holds more than the limit of any one message.
const (
	// oversizeHead is how much of an oversize payload the marker keeps.
	oversizeHead = 256
	// maxControlPacket bounds every packet other than PUBLISH (CONNACK,
	// SUBACK, PUBACK, PINGRESP are a few bytes; a SUBACK for a few
	// hundred topics is under a kilobyte).
	maxControlPacket = 64 << 10
	packetPublish    = 3
)

// oversizeMarker tells a rewritten PUBLISH from a real one: its payload
// starts with a random token drawn once per process, which no publisher can
// know. The zero value marks nothing (no limit).
type oversizeMarker struct {
	token [16]byte
	limit int64 // payload bytes; 0 = no limit
}

func newOversizeMarker(limit int64) *oversizeMarker {
	m := &oversizeMarker{limit: limit}
	if _, err := rand.Read(m.token[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return m
}

// encode is the marker payload: token, the size as a uvarint, the head.
func (m *oversizeMarker) encode(size int64, head []byte) []byte {
	b := make([]byte, 0, len(m.token)+binary.MaxVarintLen64+len(head))
	b = append(b, m.token[:]...)
	b = binary.AppendUvarint(b, uint64(size))
	return append(b, head...)
}

// decode says whether payload is a marker, and if so the original size and
// first bytes.
func (m *oversizeMarker) decode(payload []byte) (size int64, head []byte, ok bool) {
	if m == nil || m.limit <= 0 || !bytes.HasPrefix(payload, m.token[:]) {
		return 0, nil, false
	}
	rest := payload[len(m.token):]
	v, n := binary.Uvarint(rest)
	if n <= 0 || v == 0 {
		return 0, nil, false
	}
	return int64(v), rest[n:], true
}

// sizeLimiter is the reading side of the broker connection. It is used by
// paho's one reader goroutine only, so it needs no lock. It reads through a
// buffer: a packet's header comes in four or five small reads (and paho
// reads it again from us a byte at a time), each of which was a call into
// tls.Conn, with its lock, per message.
type sizeLimiter struct {
	net.Conn
	r      *bufio.Reader // of Conn
	marker *oversizeMarker

	out  []byte // bytes to hand to paho before reading on
	pass int64  // bytes of the current packet to pass through unchanged
	hdr  []byte // scratch for a packet's header
	err  error  // sticky: the stream cannot be followed any more
}

func newSizeLimiter(c net.Conn, m *oversizeMarker) *sizeLimiter {
	return &sizeLimiter{Conn: c, r: bufio.NewReader(c), marker: m}
}

func (l *sizeLimiter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case len(l.out) > 0:
			n := copy(p, l.out)
			l.out = l.out[n:]
			return n, nil
		case l.pass > 0:
			n, err := l.r.Read(p[:min(int64(len(p)), l.pass)])
			l.pass -= int64(n)
			return n, err
		case l.err != nil:
			return 0, l.err
		}
		if err := l.next(); err != nil {
			l.err = err
			if len(l.out) == 0 {
				return 0, err
			}
		}
	}
}

// next reads the following packet's header and decides what paho sees of
// it: l.out and l.pass are set.
func (l *sizeLimiter) next() error {
	first, err := l.r.ReadByte()
	if err != nil {
		return err
	}
	l.hdr = append(l.hdr[:0], first)
	remaining, err := l.readLength()
	if err != nil {
		return err
	}
	typ := first >> 4
	if typ != packetPublish {
		if remaining > maxControlPacket {
			return fmt.Errorf("the broker sent a packet of type %d with %d bytes (at most %d expected); closing the connection",
				typ, remaining, maxControlPacket)
		}
		l.out, l.pass = l.hdr, remaining
		return nil
	}
	// PUBLISH: topic length, topic, and the packet id at QoS 1 and 2.
	vh := 2
	if (first>>1)&3 > 0 {
		vh += 2
	}
	if remaining < int64(vh) {
		l.out, l.pass = l.hdr, remaining // malformed: paho reports it
		return nil
	}
	start := len(l.hdr)
	l.hdr = append(l.hdr, make([]byte, 2)...)
	if _, err := io.ReadFull(l.r, l.hdr[start:]); err != nil {
		return err
	}
	topicLen := int64(binary.BigEndian.Uint16(l.hdr[start:]))
	if remaining < int64(vh)+topicLen {
		l.out, l.pass = l.hdr, remaining-2
		return nil
	}
	varStart := start
	l.hdr = append(l.hdr, make([]byte, int(topicLen)+vh-2)...)
	if _, err := io.ReadFull(l.r, l.hdr[start+2:]); err != nil {
		return err
	}
	payload := remaining - int64(vh) - topicLen
	if l.marker == nil || l.marker.limit <= 0 || payload <= l.marker.limit {
		l.out, l.pass = l.hdr, payload
		return nil
	}
	head := make([]byte, min(payload, oversizeHead))
	if _, err := io.ReadFull(l.r, head); err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, l.r, payload-int64(len(head))); err != nil {
		return err
	}
	varHeader := l.hdr[varStart:]
	body := l.marker.encode(payload, head)
	pkt := []byte{first}
	pkt = appendLength(pkt, int64(len(varHeader)+len(body)))
	pkt = append(pkt, varHeader...)
	l.out = append(pkt, body...)
	return nil
}

// readLength reads the remaining-length varint (MQTT 3.1.1 §2.2.3), keeping
// its bytes in l.hdr.
func (l *sizeLimiter) readLength() (int64, error) {
	var v int64
	for i := 0; i < 4; i++ {
		b, err := l.r.ReadByte()
		if err != nil {
			return 0, err
		}
		l.hdr = append(l.hdr, b)
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errMalformedLength
}

var errMalformedLength = errors.New("the broker sent a packet with a malformed remaining length")

func appendLength(b []byte, n int64) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}
