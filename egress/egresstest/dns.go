// Package egresstest is a DNS server for tests of outbound calls: it
// answers A and AAAA queries from a table the test controls and can
// change mid-test, so that a test can make a name resolve to any address
// (a forbidden one, or one that changes between two connections) and see
// what the guarded dialer does with it.
package egresstest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// queryBytesMax bounds a query read; answers stay under 512 bytes for the
// handful of records a test sets.
const queryBytesMax = 1232

// DNS answers for the names it was given and NXDOMAIN for every other.
type DNS struct {
	conn net.PacketConn
	mu   sync.Mutex
	recs map[string][]netip.Addr
	done chan struct{}
}

// NewDNS starts a server on 127.0.0.1 and stops it when the test ends.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{conn: conn, recs: map[string][]netip.Addr{}, done: make(chan struct{})}
	go d.serve()
	t.Cleanup(func() {
		conn.Close()
		<-d.done
	})
	return d
}

// Set makes name resolve to addrs (none: NXDOMAIN), replacing what it
// resolved to before.
func (d *DNS) Set(name string, addrs ...string) {
	var list []netip.Addr
	for _, s := range addrs {
		list = append(list, netip.MustParseAddr(s))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs[canonicalName(name)] = list
}

// Resolver returns a resolver that asks only this server.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

func canonicalName(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

func (d *DNS) serve() {
	defer close(d.done)
	buf := make([]byte, queryBytesMax)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, err := d.answer(buf[:n]); err == nil {
			d.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query: the question echoed, and the
// records of its type.
func (d *DNS) answer(q []byte) ([]byte, error) {
	const headerLen = 12
	if len(q) < headerLen || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil, errors.New("want one question")
	}
	var labels []string
	i := headerLen
	for {
		if i >= len(q) {
			return nil, errors.New("short name")
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil, errors.New("bad label")
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil, errors.New("short question")
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	question := q[headerLen : i+4]

	d.mu.Lock()
	addrs, known := d.recs[canonicalName(strings.Join(labels, "."))]
	d.mu.Unlock()
	var answers [][]byte
	for _, a := range addrs {
		switch {
		case qtype == 1 && a.Is4():
			b := a.As4()
			answers = append(answers, b[:])
		case qtype == 28 && a.Is6():
			b := a.As16()
			answers = append(answers, b[:])
		}
	}
	rcode := uint16(0)
	if !known || len(addrs) == 0 {
		rcode = 3 // NXDOMAIN
	}
	out := make([]byte, headerLen, 512)
	copy(out[0:2], q[0:2])                                                            // id
	binary.BigEndian.PutUint16(out[2:], 0x8000|0x0400|uint16(q[2]&1)<<8|0x0080|rcode) // QR, AA, RD copied, RA
	binary.BigEndian.PutUint16(out[4:], 1)
	binary.BigEndian.PutUint16(out[6:], uint16(len(answers)))
	out = append(out, question...)
	for _, rdata := range answers {
		out = append(out, 0xc0, headerLen) // the name: a pointer to the question's
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // class IN
		out = binary.BigEndian.AppendUint32(out, 0) // TTL: never cache
		out = binary.BigEndian.AppendUint16(out, uint16(len(rdata)))
		out = append(out, rdata...)
	}
	return out, nil
}
