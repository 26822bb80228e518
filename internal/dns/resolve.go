package dns

import (
	"context"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// DNSSchemaVersion is the version of the Kubernetes DNS specification served as TXT at
// dns-version.<zone>.
const DNSSchemaVersion = "1.1.0"

// zoneAnswer is the authoritative answer for one name in the cluster zone.
type zoneAnswer struct {
	rcode  int
	answer []dns.RR
	extra  []dns.RR
	// chase is an ExternalName target still to be resolved (the answer ends in a CNAME).
	chase string
}

func nodata() zoneAnswer   { return zoneAnswer{rcode: dns.RcodeSuccess} }
func nxdomain() zoneAnswer { return zoneAnswer{rcode: dns.RcodeNameError} }

func (s *Server) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
}

func (s *Server) addrRR(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		ip := a.As4()
		return &dns.A{Hdr: s.hdr(name, dns.TypeA), A: ip[:]}
	}
	ip := a.As16()
	return &dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: ip[:]}
}

// wantAddr reports whether an address of a's family answers qtype.
func wantAddr(qtype uint16, a netip.Addr) bool {
	switch qtype {
	case dns.TypeA:
		return a.Is4()
	case dns.TypeAAAA:
		return a.Is6()
	case dns.TypeANY:
		return true
	}
	return false
}

func (s *Server) soa() dns.RR {
	ttl := s.ttl
	return &dns.SOA{Hdr: s.hdr(s.zone, dns.TypeSOA), Ns: "ns.dns." + s.zone, Mbox: "hostmaster." + s.zone,
		Serial: s.serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: ttl}
}

// inZone reports whether the lower-case FQDN name is the zone or below it.
func (s *Server) inZone(name string) bool {
	return name == s.zone || strings.HasSuffix(name, "."+s.zone)
}

// answerZone answers qtype for qname (as asked) whose lower-case form lname is in the zone.
func (s *Server) answerZone(qname, lname string, qtype uint16) zoneAnswer {
	if lname == s.zone {
		switch qtype {
		case dns.TypeSOA:
			return zoneAnswer{answer: []dns.RR{s.soa()}}
		case dns.TypeNS:
			return zoneAnswer{answer: []dns.RR{&dns.NS{Hdr: s.hdr(qname, dns.TypeNS), Ns: "ns.dns." + s.zone}},
				extra: s.nsAddr("ns.dns." + s.zone)}
		}
		return nodata()
	}
	labels := strings.Split(lname[:len(lname)-len(s.zone)-1], ".")
	n := len(labels)
	switch labels[n-1] {
	case "svc":
		return s.answerSvc(qname, labels[:n-1], qtype)
	case "pod":
		return s.answerPod(qname, labels[:n-1], qtype)
	case "dns-version":
		if n != 1 {
			return nxdomain()
		}
		if qtype == dns.TypeTXT || qtype == dns.TypeANY {
			return zoneAnswer{answer: []dns.RR{&dns.TXT{Hdr: s.hdr(qname, dns.TypeTXT), Txt: []string{DNSSchemaVersion}}}}
		}
		return nodata()
	case "dns":
		switch {
		case n == 1:
			return nodata()
		case n == 2 && labels[0] == "ns":
			var ans []dns.RR
			for _, rr := range s.nsAddr(qname) {
				if wantAddr(qtype, addrOf(rr)) {
					ans = append(ans, rr)
				}
			}
			return zoneAnswer{answer: ans}
		}
	}
	return nxdomain()
}

func (s *Server) nsAddr(name string) []dns.RR {
	return []dns.RR{s.addrRR(name, s.serviceIP)}
}

func addrOf(rr dns.RR) netip.Addr {
	switch r := rr.(type) {
	case *dns.A:
		a, _ := netip.AddrFromSlice(r.A.To4())
		return a
	case *dns.AAAA:
		a, _ := netip.AddrFromSlice(r.AAAA)
		return a
	}
	return netip.Addr{}
}

// answerSvc answers names under svc.<zone>; labels are the ones left of "svc", in order.
func (s *Server) answerSvc(qname string, labels []string, qtype uint16) zoneAnswer {
	n := len(labels)
	switch n {
	case 0:
		return nodata()
	case 1:
		if s.idx.namespaceExists(labels[0]) {
			return nodata()
		}
		return nxdomain()
	}
	svc := s.idx.lookup(labels[n-1], labels[n-2])
	if svc == nil || (svc.headless && len(svc.endpoints) == 0) {
		// The specification: a headless service without ready endpoints is NXDOMAIN.
		return nxdomain()
	}
	switch n {
	case 2:
		return s.serviceAnswer(qname, svc, qtype)
	case 3:
		if svc.external != "" {
			return nxdomain()
		}
		first := labels[0]
		if strings.HasPrefix(first, "_") {
			// _<proto>.<svc>...: an empty non-terminal when the service has such ports.
			for _, p := range svc.allPorts() {
				if p.name != "" && "_"+p.proto == first {
					return nodata()
				}
			}
			return nxdomain()
		}
		eps := svc.byHost[first]
		if len(eps) == 0 {
			return nxdomain()
		}
		var ans []dns.RR
		for _, i := range eps {
			if a := svc.endpoints[i].addr; wantAddr(qtype, a) {
				ans = append(ans, s.addrRR(qname, a))
			}
		}
		return zoneAnswer{answer: ans}
	case 4:
		if svc.external != "" || !strings.HasPrefix(labels[0], "_") || !strings.HasPrefix(labels[1], "_") {
			return nxdomain()
		}
		srv, extra := s.srvRecords(qname, svc, labels[0][1:], labels[1][1:])
		if len(srv) == 0 {
			return nxdomain()
		}
		if qtype == dns.TypeSRV || qtype == dns.TypeANY {
			return zoneAnswer{answer: srv, extra: extra}
		}
		return nodata()
	}
	return nxdomain()
}

// allPorts lists the service's ports and, for headless services, its endpoints' ports.
func (svc *service) allPorts() []portInfo {
	if !svc.headless {
		return svc.ports
	}
	out := append([]portInfo(nil), svc.ports...)
	for _, e := range svc.endpoints {
		out = append(out, e.ports...)
	}
	return out
}

func (s *Server) serviceAnswer(qname string, svc *service, qtype uint16) zoneAnswer {
	if svc.external != "" {
		za := zoneAnswer{answer: []dns.RR{&dns.CNAME{Hdr: s.hdr(qname, dns.TypeCNAME), Target: svc.external}}}
		if qtype != dns.TypeCNAME {
			za.chase = svc.external
		}
		return za
	}
	var za zoneAnswer
	switch qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		if svc.headless {
			for _, e := range svc.endpoints {
				if wantAddr(qtype, e.addr) {
					za.answer = append(za.answer, s.addrRR(qname, e.addr))
				}
			}
		} else {
			for _, a := range svc.ips {
				if wantAddr(qtype, a) {
					za.answer = append(za.answer, s.addrRR(qname, a))
				}
			}
		}
	case dns.TypeSRV:
		za.answer, za.extra = s.srvRecords(qname, svc, "", "")
	}
	return za
}

// srvRecords builds the SRV records of the ports named port with protocol proto (both empty:
// every port) and the addresses of their targets.
func (s *Server) srvRecords(qname string, svc *service, port, proto string) (srv, extra []dns.RR) {
	match := func(p portInfo) bool {
		if port == "" && proto == "" {
			return true
		}
		return p.name != "" && p.name == port && p.proto == proto
	}
	type rec struct {
		port   uint16
		target string
		addrs  []netip.Addr
	}
	var recs []rec
	seen := map[string]bool{}
	if svc.headless {
		for _, e := range svc.endpoints {
			target := e.host + "." + svc.fqdn
			for _, p := range e.ports {
				if !match(p) {
					continue
				}
				k := target + "/" + strconv.Itoa(int(p.port))
				if seen[k] {
					continue
				}
				seen[k] = true
				recs = append(recs, rec{port: p.port, target: target, addrs: []netip.Addr{e.addr}})
			}
		}
	} else {
		for _, p := range svc.ports {
			if !match(p) {
				continue
			}
			k := strconv.Itoa(int(p.port))
			if seen[k] {
				continue
			}
			seen[k] = true
			recs = append(recs, rec{port: p.port, target: svc.fqdn, addrs: svc.ips})
		}
	}
	if len(recs) == 0 {
		return nil, nil
	}
	weight := uint16(100 / len(recs))
	if weight == 0 {
		weight = 1
	}
	extraSeen := map[string]bool{}
	for _, r := range recs {
		srv = append(srv, &dns.SRV{Hdr: s.hdr(qname, dns.TypeSRV), Priority: 0, Weight: weight, Port: r.port, Target: r.target})
		if extraSeen[r.target] {
			continue
		}
		extraSeen[r.target] = true
		for _, a := range r.addrs {
			extra = append(extra, s.addrRR(r.target, a))
		}
	}
	return srv, extra
}

// answerPod answers <ip>.<ns>.pod.<zone>; labels are the ones left of "pod".
func (s *Server) answerPod(qname string, labels []string, qtype uint16) zoneAnswer {
	if s.podMode == PodsDisabled {
		return nxdomain()
	}
	switch len(labels) {
	case 0:
		return nodata()
	case 1:
		if s.podMode == PodsInsecure || s.idx.namespaceExists(labels[0]) {
			return nodata()
		}
		return nxdomain()
	case 2:
		a, ok := undash(labels[0])
		if !ok {
			return nxdomain()
		}
		if s.podMode == PodsVerified && !s.idx.podIPExists(labels[1], a) {
			return nxdomain()
		}
		if wantAddr(qtype, a) {
			return zoneAnswer{answer: []dns.RR{s.addrRR(qname, a)}}
		}
		return nodata()
	}
	return nxdomain()
}

// reverseAddr parses a lower-case in-addr.arpa or ip6.arpa name.
func reverseAddr(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		parts := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 10, 8)
			if err != nil || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(v)
		}
		return netip.AddrFrom4(b), true
	case strings.HasSuffix(name, ".ip6.arpa."):
		parts := strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), ".")
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, p := range parts {
			v, err := strconv.ParseUint(p, 16, 4)
			if err != nil || len(p) != 1 {
				return netip.Addr{}, false
			}
			nib := 31 - i
			if nib%2 == 0 {
				b[nib/2] |= byte(v) << 4
			} else {
				b[nib/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// resolveQuestion answers one question authoritatively, following ExternalName CNAMEs (in the
// zone, or upstream). ok is false when the name is not ours (to be forwarded).
func (s *Server) resolveQuestion(ctx context.Context, q dns.Question, network string) (za zoneAnswer, ok bool) {
	lname := strings.ToLower(dns.Fqdn(q.Name))
	if !s.inZone(lname) {
		if q.Qtype == dns.TypePTR {
			if a, isRev := reverseAddr(lname); isRev {
				if names := s.idx.reverse(a); len(names) > 0 {
					for _, n := range names {
						za.answer = append(za.answer, &dns.PTR{Hdr: s.hdr(q.Name, dns.TypePTR), Ptr: n})
					}
					return za, true
				}
			}
		}
		return za, false
	}
	za = s.answerZone(q.Name, lname, q.Qtype)
	for depth := 0; za.chase != "" && depth < 8; depth++ {
		target := za.chase
		za.chase = ""
		if s.inZone(target) {
			sub := s.answerZone(target, target, q.Qtype)
			za.answer = append(za.answer, sub.answer...)
			za.extra = append(za.extra, sub.extra...)
			za.rcode, za.chase = sub.rcode, sub.chase
			continue
		}
		m := new(dns.Msg)
		m.SetQuestion(target, q.Qtype)
		if resp, err := s.fwd.exchange(ctx, m, network); err == nil &&
			(resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError) {
			za.answer = append(za.answer, resp.Answer...)
			za.rcode = resp.Rcode
		}
	}
	return za, true
}
