package egress

import (
	"net/netip"
	"strconv"
	"strings"
)

// The address classes. Each list is checked in order; the first prefix
// that contains an address gives its reason.

// alwaysV4 and alwaysV6 are refused whatever the allow-list says.
var alwaysV4 = []class{
	{"0.0.0.0/8", ReasonUnspecified}, // "this network": 0.0.0.0 reaches the local machine
	{"169.254.0.0/16", ReasonLinkLocal},
	// Alibaba Cloud's instance metadata, inside the shared range.
	{"100.100.100.200/32", ReasonMetadata},
	{"224.0.0.0/4", ReasonMulticast},
	{"255.255.255.255/32", ReasonBroadcast},
}

var alwaysV6 = []class{
	{"::/128", ReasonUnspecified},
	{"fe80::/10", ReasonLinkLocal},
	// AWS's instance services (metadata at fd00:ec2::254), inside the
	// private range.
	{"fd00:ec2::/64", ReasonMetadata},
	{"ff00::/8", ReasonMulticast},
}

// specialV4 and specialV6 are refused unless allowed.
var specialV4 = []class{
	{"127.0.0.0/8", ReasonLoopback},
	{"10.0.0.0/8", ReasonPrivate},
	{"172.16.0.0/12", ReasonPrivate},
	{"192.168.0.0/16", ReasonPrivate},
	{"100.64.0.0/10", ReasonShared},
	{"192.0.0.0/24", ReasonReserved},   // IETF protocol assignments
	{"192.0.2.0/24", ReasonReserved},   // documentation
	{"192.88.99.0/24", ReasonReserved}, // 6to4 relay anycast
	{"198.18.0.0/15", ReasonReserved},  // benchmarking
	{"198.51.100.0/24", ReasonReserved},
	{"203.0.113.0/24", ReasonReserved},
	{"240.0.0.0/4", ReasonReserved},
}

var specialV6 = []class{
	{"::1/128", ReasonLoopback},
	{"fc00::/7", ReasonPrivate},
	{"2001::/23", ReasonReserved},     // IETF protocol assignments, Teredo among them
	{"2001:db8::/32", ReasonReserved}, // documentation
	{"2002::/16", ReasonReserved},     // 6to4, which carries any IPv4 address
	{"3fff::/20", ReasonReserved},     // documentation
}

// globalV6 is the only IPv6 unicast space allocated for the internet;
// anything outside it that no list names is reserved.
var globalV6 = netip.MustParsePrefix("2000::/3")

type class struct {
	prefix string
	reason string
}

type classes []struct {
	p      netip.Prefix
	reason string
}

func compile(list []class) classes {
	out := make(classes, len(list))
	for i, c := range list {
		out[i].p, out[i].reason = netip.MustParsePrefix(c.prefix), c.reason
	}
	return out
}

func (cs classes) reason(a netip.Addr) string {
	for _, c := range cs {
		if c.p.Contains(a) {
			return c.reason
		}
	}
	return ""
}

var (
	always4, always6   = compile(alwaysV4), compile(alwaysV6)
	special4, special6 = compile(specialV4), compile(specialV6)
)

// Prefixes of IPv6 addresses that carry an IPv4 address in their last 32
// bits. IPv4-mapped (::ffff:0:0/96) is netip's Unmap.
var (
	translatedV4 = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT, RFC 2765
	nat64V4      = netip.MustParsePrefix("64:ff9b::/96")    // NAT64 well-known prefix, RFC 6052
	compatV4     = netip.MustParsePrefix("::/96")           // IPv4-compatible, deprecated
)

// Canonical is the address a connection to a reaches, for judging it: the
// zone dropped, and an IPv4 address written as IPv6 turned back into
// IPv4.
func Canonical(a netip.Addr) netip.Addr {
	a = a.WithZone("").Unmap()
	if !a.Is6() {
		return a
	}
	if translatedV4.Contains(a) || nat64V4.Contains(a) ||
		(compatV4.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback()) {
		b := a.As16()
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	return a
}

// canonicalPrefix turns an allow-list entry written as IPv4-mapped IPv6
// into IPv4, so that it matches canonical addresses.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

func alwaysRefused(a netip.Addr) string {
	if a.Is4() {
		return always4.reason(a)
	}
	return always6.reason(a)
}

func specialPurpose(a netip.Addr) string {
	if a.Is4() {
		return special4.reason(a)
	}
	if r := special6.reason(a); r != "" {
		return r
	}
	if !globalV6.Contains(a) {
		return ReasonReserved
	}
	return ""
}

// ParseHostAddr reads a URL host (brackets removed, as url.URL.Hostname
// gives it) that is an IP address: standard IPv4 or IPv6 text, an IPv6
// zone allowed, or IPv4 in one of the older forms that C resolvers
// (inet_aton) still accept, such as 2130706433, 0x7f.1 or 0177.0.0.1.
// Those reach the same address when a system resolver dials them, so they
// are judged as the address they name.
func ParseHostAddr(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true
	}
	return parseLegacyIPv4(host)
}

// parseLegacyIPv4 is inet_aton: one to four parts separated by dots, each
// decimal, octal (leading 0) or hexadecimal (leading 0x); the last part
// fills the bytes the others leave.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base, digits := 10, p
		switch {
		case len(p) > 1 && (p[:2] == "0x" || p[:2] == "0X"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0" // inet_aton takes "0x" as 0
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" || strings.ContainsAny(digits, "+-_") {
			return netip.Addr{}, false
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	last := vals[len(vals)-1]
	for _, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
	}
	if last >= 1<<(8*(5-len(vals))) && len(vals) > 1 {
		return netip.Addr{}, false
	}
	var n uint32
	for i, v := range vals[:len(vals)-1] {
		n |= uint32(v) << (24 - 8*i)
	}
	n |= uint32(last)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
