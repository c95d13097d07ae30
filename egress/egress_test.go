package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/egress"
	"zhifu/egress/egresstest"
)

// addrCase is one address and the reason it is refused ("" admitted) with
// no allow-list.
type addrCase struct {
	addr   string
	reason string
}

// addrCases covers every class, in each of the forms an address can take.
var addrCases = []addrCase{
	// Always refused.
	{"169.254.169.254", egress.ReasonLinkLocal},
	{"169.254.0.23", egress.ReasonLinkLocal},
	{"169.254.255.255", egress.ReasonLinkLocal},
	{"fe80::1", egress.ReasonLinkLocal},
	{"fe80::1%eth0", egress.ReasonLinkLocal},
	{"febf:ffff::1", egress.ReasonLinkLocal},
	{"::ffff:169.254.169.254", egress.ReasonLinkLocal},
	{"::ffff:0:169.254.169.254", egress.ReasonLinkLocal},
	{"64:ff9b::169.254.169.254", egress.ReasonLinkLocal},
	{"::169.254.169.254", egress.ReasonLinkLocal},
	{"fd00:ec2::254", egress.ReasonMetadata},
	{"fd00:ec2::23", egress.ReasonMetadata},
	{"100.100.100.200", egress.ReasonMetadata},
	{"::ffff:100.100.100.200", egress.ReasonMetadata},
	{"0.0.0.0", egress.ReasonUnspecified},
	{"0.1.2.3", egress.ReasonUnspecified},
	{"::", egress.ReasonUnspecified},
	{"::ffff:0.0.0.0", egress.ReasonUnspecified},
	{"224.0.0.1", egress.ReasonMulticast},
	{"239.255.255.250", egress.ReasonMulticast},
	{"ff02::1", egress.ReasonMulticast},
	{"ff05::1:3", egress.ReasonMulticast},
	{"64:ff9b::224.0.0.251", egress.ReasonMulticast},
	{"255.255.255.255", egress.ReasonBroadcast},
	// Refused unless allowed.
	{"127.0.0.1", egress.ReasonLoopback},
	{"127.255.0.9", egress.ReasonLoopback},
	{"::1", egress.ReasonLoopback},
	{"::ffff:127.0.0.1", egress.ReasonLoopback},
	{"64:ff9b::127.0.0.1", egress.ReasonLoopback},
	{"10.0.0.1", egress.ReasonPrivate},
	{"10.255.255.255", egress.ReasonPrivate},
	{"172.16.0.1", egress.ReasonPrivate},
	{"172.31.255.254", egress.ReasonPrivate},
	{"192.168.0.1", egress.ReasonPrivate},
	{"::ffff:192.168.0.1", egress.ReasonPrivate},
	{"64:ff9b::10.1.2.3", egress.ReasonPrivate},
	{"fc00::1", egress.ReasonPrivate},
	{"fd12:3456:789a::1", egress.ReasonPrivate},
	{"100.64.0.1", egress.ReasonShared},
	{"100.127.255.254", egress.ReasonShared},
	{"192.0.0.170", egress.ReasonReserved},
	{"192.0.2.1", egress.ReasonReserved},
	{"198.18.0.1", egress.ReasonReserved},
	{"198.51.100.7", egress.ReasonReserved},
	{"203.0.113.9", egress.ReasonReserved},
	{"240.0.0.1", egress.ReasonReserved},
	{"2001:db8::1", egress.ReasonReserved},
	{"2001::1", egress.ReasonReserved},
	{"2002:a00:1::1", egress.ReasonReserved},
	{"fec0::1", egress.ReasonReserved},
	{"100::1", egress.ReasonReserved},
	{"64:ff9b:1::a00:1", egress.ReasonReserved},
	// Admitted: the internet.
	{"8.8.8.8", ""},
	{"1.1.1.1", ""},
	{"172.32.0.1", ""},
	{"100.128.0.1", ""},
	{"169.253.255.255", ""},
	{"223.255.255.255", ""},
	{"::ffff:8.8.8.8", ""},
	{"64:ff9b::8.8.8.8", ""},
	{"2001:4860:4860::8888", ""},
	{"2400:3200::1", ""},
}

func checkReason(err error) string {
	if err == nil {
		return ""
	}
	if r, ok := egress.IsRefusal(err); ok {
		return r.Reason
	}
	return "error: " + err.Error()
}

func TestCheckClasses(t *testing.T) {
	g := egress.New(egress.Config{})
	for _, c := range addrCases {
		a := netip.MustParseAddr(c.addr)
		if got := checkReason(g.Check(netip.AddrPortFrom(a, 80))); got != c.reason {
			t.Errorf("Check(%s) = %q, want %q", c.addr, got, c.reason)
		}
	}
}

// Literal URLs are judged at once, in every way a host can be written.
func TestCheckURL(t *testing.T) {
	g := egress.New(egress.Config{})
	for _, c := range addrCases {
		a := netip.MustParseAddr(c.addr)
		host := c.addr
		if a.Is6() {
			host = "[" + strings.Replace(c.addr, "%", "%25", 1) + "]"
		}
		u := "http://" + host + ":8080/notify"
		if got := checkReason(g.CheckURL(mustURL(t, u))); got != c.reason {
			t.Errorf("CheckURL(%s) = %q, want %q", u, got, c.reason)
		}
	}
	for u, want := range map[string]string{
		"http://localhost/":                egress.ReasonLoopback,
		"http://LOCALHOST.:9000/":          egress.ReasonLoopback,
		"https://a.b.localhost/x":          egress.ReasonLoopback,
		"http://2130706433/":               egress.ReasonLoopback, // 127.0.0.1
		"http://0x7f000001/":               egress.ReasonLoopback,
		"http://0x7f.1/":                   egress.ReasonLoopback,
		"http://0177.0.0.1/":               egress.ReasonLoopback,
		"http://127.1/":                    egress.ReasonLoopback,
		"http://127.0.1/":                  egress.ReasonLoopback,
		"http://2852039166/":               egress.ReasonLinkLocal, // 169.254.169.254
		"http://0xa9.0xfe.0xa9.0xfe/":      egress.ReasonLinkLocal,
		"http://0251.0376.0251.0376/":      egress.ReasonLinkLocal,
		"http://0/":                        egress.ReasonUnspecified,
		"http://10.0.0.1./":                egress.ReasonPrivate,
		"http://[::ffff:a9fe:a9fe]/":       egress.ReasonLinkLocal,
		"http://[64:ff9b::a9fe:a9fe]/":     egress.ReasonLinkLocal,
		"http://shop.example.com/":         "",
		"http://localhost.example.com/":    "",
		"http://0x7f.example/":             "",
		"http://1.2.3.4.5/":                "",
		"http://08.0.0.1/":                 "", // not octal: a name, resolved when connecting
		"http://127.0.0.1.nip.example/":    "",
		"https://[2001:4860:4860::8888]/n": "",
	} {
		if got := checkReason(g.CheckURL(mustURL(t, u))); got != want {
			t.Errorf("CheckURL(%s) = %q, want %q", u, got, want)
		}
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return u
}

// An allow-list admits exactly what it lists, and never what is always
// refused.
func TestAllowList(t *testing.T) {
	g := egress.New(egress.Config{Allow: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("::ffff:192.168.5.0/120"), netip.MustParsePrefix("fd12::/16"),
		netip.MustParsePrefix("169.254.0.0/16"),
	}})
	for addr, want := range map[string]string{
		"10.1.0.1":          "",
		"10.1.255.255":      "",
		"::ffff:10.1.2.3":   "",
		"64:ff9b::10.1.2.3": "",
		"10.2.0.1":          egress.ReasonPrivate,
		"127.0.0.1":         "",
		"127.0.0.2":         egress.ReasonLoopback,
		"::1":               egress.ReasonLoopback,
		"192.168.5.77":      "",
		"192.168.6.1":       egress.ReasonPrivate,
		"fd12::1":           "",
		"fd13::1":           egress.ReasonPrivate,
		"169.254.169.254":   egress.ReasonLinkLocal,
		"8.8.8.8":           "",
	} {
		if got := checkReason(g.Check(netip.AddrPortFrom(netip.MustParseAddr(addr), 443))); got != want {
			t.Errorf("Check(%s) = %q, want %q", addr, got, want)
		}
	}
	everything := egress.New(egress.Config{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}})
	for _, c := range addrCases {
		got := checkReason(everything.Check(netip.AddrPortFrom(netip.MustParseAddr(c.addr), 80)))
		switch c.reason {
		case egress.ReasonLinkLocal, egress.ReasonMetadata, egress.ReasonUnspecified, egress.ReasonMulticast, egress.ReasonBroadcast:
			if got != c.reason {
				t.Errorf("allow everything: Check(%s) = %q, want %q (always refused)", c.addr, got, c.reason)
			}
		default:
			if got != "" {
				t.Errorf("allow everything: Check(%s) = %q, want admitted", c.addr, got)
			}
		}
	}
}

// The platform's own listen addresses are refused even where loopback is
// allowed; a listener on an unspecified address owns its port everywhere
// on the machine.
func TestOwnAddresses(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	g := egress.New(egress.Config{Allow: loop})
	g.SetOwn(netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("[::]:9443"))
	for ap, want := range map[string]string{
		"127.0.0.1:8080":          egress.ReasonOwn,
		"[::ffff:127.0.0.1]:8080": egress.ReasonOwn,
		"[64:ff9b::7f00:1]:8080":  egress.ReasonOwn,
		"127.0.0.1:8081":          "",
		"127.0.0.2:8080":          "",
		"127.0.0.1:9443":          egress.ReasonOwn,
		"127.8.9.1:9443":          egress.ReasonOwn,
		"[::1]:9443":              egress.ReasonOwn,
		"[::1]:8080":              "",
	} {
		if got := checkReason(g.Check(netip.MustParseAddrPort(ap))); got != want {
			t.Errorf("Check(%s) = %q, want %q", ap, got, want)
		}
	}
	if got := checkReason(g.CheckURL(mustURL(t, "http://localhost:8080/v1/admin"))); got != egress.ReasonOwn {
		t.Errorf("CheckURL(localhost:8080) = %q, want %q", got, egress.ReasonOwn)
	}
	g.SetOwn()
	if err := g.Check(netip.MustParseAddrPort("127.0.0.1:8080")); err != nil {
		t.Errorf("after SetOwn(): %v", err)
	}
}

// counter is a TCP listener on 127.0.0.1 that counts the connections it
// accepts.
type counter struct {
	ln       net.Listener
	accepted atomic.Int64
	accepts  chan struct{}
}

func newCounter(t *testing.T) *counter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{ln: ln, accepts: make(chan struct{}, 64)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			conn.Close()
			c.accepts <- struct{}{}
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *counter) port() uint16 { return uint16(c.ln.Addr().(*net.TCPAddr).Port) }

// waitAccepted waits for n more accepted connections. A refused dial never
// connects, so it can never be among them: checking the count after the
// allowed dials' accepts arrived shows that no refused one got through.
func (c *counter) waitAccepted(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.accepts:
		case <-time.After(10 * time.Second):
			t.Fatalf("waited 10s for %d accepted connections; got %d so far", n, c.accepted.Load())
		}
	}
}

// Names are judged by what they resolve to, at the connection, every
// time: each class through the dialer, a rebinding name, and a name with
// a forbidden and an allowed address, which connects only to the allowed.
func TestDialResolved(t *testing.T) {
	dns := egresstest.NewDNS(t)
	cn := newCounter(t)
	port := strconv.Itoa(int(cn.port()))
	strict := egress.New(egress.Config{Resolver: dns.Resolver()})
	loopOK := egress.New(egress.Config{Resolver: dns.Resolver(), Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	ctx := context.Background()

	for i, c := range addrCases {
		if c.reason == "" {
			continue // the internet is not reachable from a test
		}
		name := "c" + strconv.Itoa(i) + ".shop.test"
		a := netip.MustParseAddr(c.addr)
		dns.Set(name, a.WithZone("").String())
		conn, err := strict.Dialer(time.Second).DialContext(ctx, "tcp", net.JoinHostPort(name, port))
		if conn != nil {
			conn.Close()
		}
		if got := checkReason(err); got != c.reason {
			t.Errorf("dial %s (%s): %q (%v), want %q", name, c.addr, got, err, c.reason)
		}
	}

	dial := func(g *egress.Guard, name string) error {
		conn, err := g.Dialer(time.Second).DialContext(ctx, "tcp", net.JoinHostPort(name, port))
		if err == nil {
			conn.Close()
		}
		return err
	}
	dns.Set("flip.shop.test", "127.0.0.1")
	if err := dial(loopOK, "flip.shop.test"); err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	cn.waitAccepted(t, 1)
	if n := cn.accepted.Load(); n != 1 {
		t.Fatalf("the listener accepted %d connections, want 1: refused dials connected", n)
	}
	dns.Set("flip.shop.test", "10.0.0.1")
	if got := checkReason(dial(loopOK, "flip.shop.test")); got != egress.ReasonPrivate {
		t.Errorf("after rebinding to 10.0.0.1: %q, want %q", got, egress.ReasonPrivate)
	}
	dns.Set("flip.shop.test", "169.254.169.254", "127.0.0.1")
	if err := dial(loopOK, "flip.shop.test"); err != nil {
		t.Errorf("forbidden and allowed addresses: %v, want the allowed one connected", err)
	}
	cn.waitAccepted(t, 1)
	if n := cn.accepted.Load(); n != 2 {
		t.Errorf("the listener accepted %d connections, want 2 (the allowed dials)", n)
	}
	loopOK.SetOwn(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), cn.port()))
	dns.Set("own.shop.test", "127.0.0.1")
	if got := checkReason(dial(loopOK, "own.shop.test")); got != egress.ReasonOwn {
		t.Errorf("a name for the platform's own address: %q, want %q", got, egress.ReasonOwn)
	}
	if got := checkReason(dial(loopOK, "127.0.0.1")); got != egress.ReasonOwn {
		t.Errorf("the platform's own address: %q, want %q", got, egress.ReasonOwn)
	}
	loopOK.SetOwn()
	if err := dial(loopOK, "own.shop.test"); err != nil {
		t.Errorf("no longer the platform's: %v", err)
	}
	cn.waitAccepted(t, 1)
	if n := cn.accepted.Load(); n != 3 {
		t.Errorf("the listener accepted %d connections, want 3: the platform's own address was connected to", n)
	}
	if _, err := strict.Dialer(time.Second).DialContext(ctx, "udp", "127.0.0.1:53"); checkReason(err) != egress.ReasonNetwork {
		t.Errorf("udp: %v, want refused", err)
	}
}

// The transport's connections go through the guard, and never through a
// proxy from the environment.
func TestTransport(t *testing.T) {
	dns := egresstest.NewDNS(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("success")) }))
	defer srv.Close()
	srvURL := mustURL(t, srv.URL)
	dns.Set("hook.shop.test", "127.0.0.1")
	g := egress.New(egress.Config{Resolver: dns.Resolver()})
	tr := g.Transport(time.Second)
	if tr.Proxy != nil {
		t.Fatal("the transport uses a proxy: a proxy connects where the guard cannot see")
	}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	_, err := c.Get("http://hook.shop.test:" + srvURL.Port() + "/")
	if got := checkReason(err); got != egress.ReasonLoopback {
		t.Fatalf("GET through a name for loopback: %v, want refused as %q", err, egress.ReasonLoopback)
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %T, want *url.Error", err)
	}
	allowed := egress.New(egress.Config{Resolver: dns.Resolver(), Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	c.Transport = allowed.Transport(time.Second)
	resp, err := c.Get("http://hook.shop.test:" + srvURL.Port() + "/")
	if err != nil {
		t.Fatalf("GET allowed: %v", err)
	}
	resp.Body.Close()
}

func TestDestination(t *testing.T) {
	for u, want := range map[string]string{
		"http://Shop.Example.com/notify":      "shop.example.com:80",
		"https://shop.example.com./n":         "shop.example.com:443",
		"https://shop.example.com:8443/n?x=1": "shop.example.com:8443",
		"http://[2001:db8::1]/":               "[2001:db8::1]:80",
		"http://10.0.0.1:81":                  "10.0.0.1:81",
	} {
		if got := egress.Destination(mustURL(t, u)); got != want {
			t.Errorf("Destination(%s) = %q, want %q", u, got, want)
		}
	}
}

func TestRefusalMessage(t *testing.T) {
	g := egress.New(egress.Config{})
	err := g.CheckURL(mustURL(t, "http://169.254.169.254/latest"))
	if err == nil || err.Error() != "points to a link-local address (169.254.169.254)" {
		t.Errorf("message %v", err)
	}
}
