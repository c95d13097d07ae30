// Package egress makes outbound calls to addresses that callers supply,
// such as a merchant's notify_url, without letting a caller turn the
// platform against the network it runs in: cloud metadata endpoints,
// private services, the databases on loopback, or the platform itself.
//
// A Guard decides which addresses may be connected to. Its rule is applied
// where it cannot be evaded: in the net.Dialer's Control function, to the
// address actually being connected to after DNS resolution, at every
// connection. A name that resolves to a forbidden address is refused even
// if it resolved elsewhere when the URL was saved (DNS rebinding), and the
// refused connection is never made. CheckURL applies the same rule early,
// when a URL is saved, to what can be decided without DNS: literal
// addresses and localhost.
//
// Always refused, whatever the configuration: link-local addresses (cloud
// metadata among them), the known cloud metadata addresses outside that
// range, unspecified, multicast and broadcast addresses, and the
// platform's own listen addresses. IPv4 addresses written as IPv6
// (IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64 64:ff9b::/96) are
// judged as the IPv4 address they carry. Loopback, private, shared
// (100.64.0.0/10) and other special-purpose addresses are refused unless
// Config.Allow lists them. Everything else, the public internet, is
// allowed.
//
// The HTTP transport of Transport uses no proxy: a proxy would make the
// connection on our behalf, to an address the guard never sees.
//
// Every outbound call whose address comes from a caller (a merchant, a
// user, a request parameter) must be made through a Guard: today merchant
// notifications; any future caller-supplied URL (a return URL fetched, a
// webhook of another kind) as well. Addresses of the platform's own
// configuration (the banks, the database) do not need one.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// keepAlive is the TCP keep-alive period of guarded connections.
const keepAlive = 30 * time.Second

// Reasons a destination is refused, as Refusal.Reason gives them. They
// complete the sentence "points to …".
const (
	ReasonLinkLocal   = "a link-local address"
	ReasonMetadata    = "a cloud metadata address"
	ReasonUnspecified = "an unspecified address"
	ReasonMulticast   = "a multicast address"
	ReasonBroadcast   = "a broadcast address"
	ReasonOwn         = "the platform's own address"
	ReasonLoopback    = "a loopback address"
	ReasonPrivate     = "a private address"
	ReasonShared      = "a shared address"
	ReasonReserved    = "a reserved address"
	// ReasonNetwork refuses a connection that is not TCP.
	ReasonNetwork = "a network other than TCP"
)

// Refusal is the error of a destination the guard refuses.
type Refusal struct {
	Reason string // one of the Reason constants
	Addr   string // the address as dialled or written, for the operator
}

func (r *Refusal) Error() string {
	if r.Addr == "" {
		return "points to " + r.Reason
	}
	return "points to " + r.Reason + " (" + r.Addr + ")"
}

// IsRefusal reports whether err is, or wraps, a Refusal, and returns it.
func IsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// Config configures a Guard.
type Config struct {
	// Allow lists networks admitted although they are loopback, private,
	// shared or reserved. It cannot admit what is always refused.
	Allow []netip.Prefix
	// Resolver resolves names when connecting; nil is net.DefaultResolver.
	// Tests point it at their own DNS server.
	Resolver *net.Resolver
}

// Guard applies the rule. It is safe for concurrent use.
type Guard struct {
	allow    []netip.Prefix
	resolver *net.Resolver
	own      atomic.Pointer[ownAddrs]
}

// New returns a guard with cfg's allow-list.
func New(cfg Config) *Guard {
	g := &Guard{resolver: cfg.Resolver}
	for _, p := range cfg.Allow {
		g.allow = append(g.allow, canonicalPrefix(p))
	}
	g.own.Store(&ownAddrs{})
	return g
}

// Allowed returns the allow-list as given to New, in canonical form.
func (g *Guard) Allowed() []netip.Prefix { return append([]netip.Prefix(nil), g.allow...) }

// ownAddrs are the platform's listen addresses. A listener on an
// unspecified address (0.0.0.0:8080, [::]:8080) is reachable at its port on
// every address of the machine: anyPort holds such ports, local the
// machine's addresses when they were set.
type ownAddrs struct {
	exact   map[netip.AddrPort]bool
	anyPort map[uint16]bool
	local   map[netip.Addr]bool
}

// SetOwn records the platform's listen addresses, replacing those set
// before; connections to them are refused from then on. An unspecified
// address stands for its port on every address of this machine.
func (g *Guard) SetOwn(addrs ...netip.AddrPort) {
	o := &ownAddrs{exact: map[netip.AddrPort]bool{}, anyPort: map[uint16]bool{}, local: map[netip.Addr]bool{}}
	for _, ap := range addrs {
		a := Canonical(ap.Addr())
		if a.IsUnspecified() {
			o.anyPort[ap.Port()] = true
			continue
		}
		o.exact[netip.AddrPortFrom(a, ap.Port())] = true
	}
	if len(o.anyPort) > 0 {
		if ifs, err := net.InterfaceAddrs(); err == nil {
			for _, ia := range ifs {
				if n, ok := ia.(*net.IPNet); ok {
					if a, ok := netip.AddrFromSlice(n.IP); ok {
						o.local[Canonical(a)] = true
					}
				}
			}
		}
	}
	g.own.Store(o)
}

func (g *Guard) isOwn(a netip.Addr, port uint16) bool {
	o := g.own.Load()
	if o.exact[netip.AddrPortFrom(a, port)] {
		return true
	}
	return o.anyPort[port] && (a.IsLoopback() || o.local[a])
}

// Check applies the rule to one address and port.
func (g *Guard) Check(ap netip.AddrPort) error {
	a := Canonical(ap.Addr())
	shown := ap.Addr().WithZone("").String()
	if r := alwaysRefused(a); r != "" {
		return &Refusal{Reason: r, Addr: shown}
	}
	if g.isOwn(a, ap.Port()) {
		return &Refusal{Reason: ReasonOwn, Addr: netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()).String()}
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	if r := specialPurpose(a); r != "" {
		return &Refusal{Reason: r, Addr: shown}
	}
	return nil
}

// CheckURL applies the rule to what a URL's host says without DNS: a
// literal address (in any form the platform's resolvers would take as
// one), or localhost and its subdomains, which name loopback. Any other
// name passes here; the connection is checked when it is made.
func (g *Guard) CheckURL(u *url.URL) error {
	port, err := urlPort(u)
	if err != nil {
		return err
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		for _, a := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
			if err := g.Check(netip.AddrPortFrom(a, port)); err != nil {
				return err
			}
		}
		return nil
	}
	if a, ok := ParseHostAddr(host); ok {
		return g.Check(netip.AddrPortFrom(a, port))
	}
	return nil
}

// urlPort is u's port, or its scheme's.
func urlPort(u *url.URL) (uint16, error) {
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return 0, errors.New("has an invalid port")
		}
		return uint16(n), nil
	}
	switch u.Scheme {
	case "https":
		return 443, nil
	default:
		return 80, nil
	}
}

// Destination is the host and port a URL connects to, lowercase, with the
// scheme's port when none is written: the key by which callers bound
// concurrent calls to one place.
func Destination(u *url.URL) string {
	port, err := urlPort(u)
	if err != nil {
		port = 0
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), strconv.Itoa(int(port)))
}

// Dialer returns a dialer that resolves with the guard's resolver and
// refuses, before connecting, every address the rule refuses.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: keepAlive, Resolver: g.resolver, ControlContext: g.control}
}

// control runs after the socket is made and before it connects, with the
// address chosen from the resolved ones: the one place a check cannot be
// raced by a second resolution.
func (g *Guard) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return &Refusal{Reason: ReasonNetwork, Addr: network}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: unexpected address %q", address)
	}
	return g.Check(ap)
}

// Transport returns an HTTP transport whose connections all go through the
// guard's dialer, and that never uses a proxy. Callers set its other
// limits.
func (g *Guard) Transport(dialTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:             nil,
		DialContext:       g.Dialer(dialTimeout).DialContext,
		ForceAttemptHTTP2: true,
	}
}
