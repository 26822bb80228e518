package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

var (
	errNoUpstream = errors.New("dns: no upstream resolver")
	errOverloaded = errors.New("dns: too many queries in flight to upstreams")
)

// maxConcurrentForwards bounds queries waiting on upstreams; more get SERVFAIL at once rather
// than piling up goroutines when upstreams are slow or dead.
const maxConcurrentForwards = 1000

// forwarder sends queries for names outside the cluster zone to upstream resolvers, in order,
// starting from the last one that answered, within one time budget per query.
type forwarder struct {
	upstreams []string
	budget    time.Duration
	preferred atomic.Int32
	inFlight  atomic.Int32
}

func (f *forwarder) exchange(ctx context.Context, req *dns.Msg, network string) (*dns.Msg, error) {
	n := len(f.upstreams)
	if n == 0 {
		return nil, errNoUpstream
	}
	if f.inFlight.Add(1) > maxConcurrentForwards {
		f.inFlight.Add(-1)
		return nil, errOverloaded
	}
	defer f.inFlight.Add(-1)
	deadline := time.Now().Add(f.budget)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	start := int(f.preferred.Load())
	var fallback *dns.Msg
	err := errNoUpstream
	for i := 0; i < n; i++ {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			break
		}
		idx := (start + i) % n
		actx, acancel := context.WithTimeout(ctx, remaining/time.Duration(n-i))
		resp, e := exchangeOne(actx, req, f.upstreams[idx], network)
		acancel()
		if e != nil {
			err = e
			continue
		}
		if (resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused) && i < n-1 {
			fallback = resp
			continue
		}
		f.preferred.Store(int32(idx))
		return resp, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, err
}

// exchangeOne asks one upstream over UDP first (some resolvers do not serve TCP at all); a
// truncated answer is asked again over TCP when the client came over TCP (a UDP client gets
// the truncated answer and retries over TCP itself).
func exchangeOne(ctx context.Context, req *dns.Msg, upstream, network string) (*dns.Msg, error) {
	resp, _, err := (&dns.Client{Net: "udp", UDPSize: 4096}).ExchangeContext(ctx, req, upstream)
	if err != nil || !resp.Truncated || network != "tcp" {
		return resp, err
	}
	if full, _, err := (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, req, upstream); err == nil {
		return full, nil
	}
	return resp, nil
}

// filterSelf drops upstreams that are this server: one of its bound addresses (an unspecified
// bind address matches every local address on that port) or the kube-dns service address.
func filterSelf(upstreams []string, bound []netip.AddrPort, serviceIP netip.Addr) (kept, dropped []string) {
	var local []netip.Addr
	for _, b := range bound {
		if b.Addr().IsUnspecified() {
			local = localAddrs()
			break
		}
	}
	for _, u := range upstreams {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			kept = append(kept, u) // a host name: cannot be us in any way we can tell
			continue
		}
		a := ap.Addr().Unmap().WithZone("")
		self := a == serviceIP && ap.Port() == 53
		for _, b := range bound {
			if b.Port() != ap.Port() {
				continue
			}
			if b.Addr().Unmap() == a {
				self = true
			}
			if b.Addr().IsUnspecified() {
				for _, l := range local {
					if l == a {
						self = true
					}
				}
			}
		}
		if self {
			dropped = append(dropped, u)
		} else {
			kept = append(kept, u)
		}
	}
	return kept, dropped
}

func localAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
