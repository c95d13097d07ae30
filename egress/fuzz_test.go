package egress_test

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"zhifu/egress"
)

// FuzzCheckAddr: whatever the 16 bytes, an address the standard library
// calls loopback, private, link-local, multicast or unspecified is refused
// without an allow-list; and an IPv4 address is judged the same in each of
// its IPv6 forms.
func FuzzCheckAddr(f *testing.F) {
	for _, c := range addrCases {
		b := netip.MustParseAddr(c.addr).As16()
		f.Add(b[:], uint16(80))
	}
	g := egress.New(egress.Config{})
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		err := g.Check(netip.AddrPortFrom(a, port))
		ip := net.IP(b)
		if err == nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
			ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()) {
			t.Fatalf("Check(%s) admitted an address the standard library calls special", a)
		}
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		want := checkReason(g.Check(netip.AddrPortFrom(v4, port)))
		for _, form := range []string{"::ffff:", "::ffff:0:", "64:ff9b::"} {
			w := netip.MustParseAddr(form + v4.String())
			if got := checkReason(g.Check(netip.AddrPortFrom(w, port))); got != want {
				t.Fatalf("Check(%s) = %q, Check(%s) = %q: one address judged two ways", w, got, v4, want)
			}
		}
	})
}

// FuzzCheckURL: CheckURL never panics, and for any host that is an IP
// address as the standard library reads it, it decides as Check does on
// that address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"http://169.254.169.254/", "http://[::ffff:a9fe:a9fe]:80/", "http://2130706433/",
		"http://0x7f.1/", "https://localhost./", "http://[fe80::1%25eth0]/", "http://shop.example.com/",
		"http://0177.0.0.01/", "http://1.2.3/", "http://[64:ff9b::10.0.0.1]:99/"} {
		f.Add(s)
	}
	g := egress.New(egress.Config{})
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		got := g.CheckURL(u)
		host := u.Hostname()
		ip := net.ParseIP(host)
		if ip == nil || strings.Contains(host, "%") {
			return
		}
		a, _ := netip.AddrFromSlice(ip)
		port := uint16(80)
		if u.Scheme == "https" {
			port = 443
		}
		if p := u.Port(); p != "" {
			return // the port's own parsing is tested elsewhere
		}
		want := g.Check(netip.AddrPortFrom(a, port))
		if checkReason(got) != checkReason(want) {
			t.Fatalf("CheckURL(%q) = %v, Check(%s) = %v", s, got, a, want)
		}
	})
}
