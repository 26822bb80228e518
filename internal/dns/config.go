// Package dns is skiff's cluster DNS: an authoritative server for the cluster domain
// (cluster.local by default) that answers from in-memory indexes built from Service,
// EndpointSlice and (optionally) Pod informers, following the Kubernetes DNS-based service
// discovery specification, and forwards every other name to the node's upstream resolvers.
//
// Records served (zone = the cluster domain, TTL 5 s):
//
//	<svc>.<ns>.svc.<zone>              A/AAAA  cluster IPs; headless: every ready endpoint address
//	                                           (NXDOMAIN for a headless service without any)
//	<host>.<svc>.<ns>.svc.<zone>       A/AAAA  a ready endpoint by hostname or dashed IP (10-1-2-3)
//	_<port>._<proto>.<svc>.<ns>.svc... SRV     named ports (headless: one per endpoint)
//	<svc>.<ns>.svc.<zone> (ExternalName) CNAME the external name, followed when resolvable
//	<a-b-c-d>.<ns>.pod.<zone>          A/AAAA  the address in the name (insecure) or a known pod IP (verified)
//	<d.c.b.a>.in-addr.arpa             PTR     cluster IPs and headless endpoints
//	dns-version.<zone>                 TXT     "1.1.0"
//	<zone>                             SOA, NS ns.dns.<zone>
//
// Unknown names in the zone get NXDOMAIN with the SOA in the authority section; existing names
// asked for a type they lack get NOERROR with no answer (NODATA). UDP answers too large for
// the client's buffer (512 bytes, or its EDNS0 size) are truncated with TC set.
//
// At start the component also makes itself reachable through the cluster: it ensures the
// kube-system/kube-dns Service (clusterIP ServiceIP, no selector) and keeps an EndpointSlice
// kube-dns-<node> listing NodeIP and the port it listens on, removed again on a clean stop.
package dns

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultDomain     = "cluster.local"
	DefaultResolvConf = "/etc/resolv.conf"
	DefaultServiceIP  = "10.43.0.10"
	DefaultTTL        = 5 * time.Second
	// DefaultForwardTimeout bounds the time spent on upstreams for one query, all of them
	// together; when it runs out the client gets SERVFAIL.
	DefaultForwardTimeout = 2 * time.Second
)

// PodMode selects how <ip>.<ns>.pod.<zone> names are answered, as CoreDNS's "pods" option.
type PodMode string

const (
	// PodsInsecure answers the address encoded in the name, without checking (the default).
	PodsInsecure PodMode = "insecure"
	// PodsVerified answers only when a pod with that IP exists in that namespace (watches Pods).
	PodsVerified PodMode = "verified"
	// PodsDisabled answers NXDOMAIN for pod names.
	PodsDisabled PodMode = "disabled"
)

// Config configures the DNS component. The zero value is usable apart from ListenAddresses,
// which defaults to NodeIP:53 (or 127.0.0.1:53 without a NodeIP).
type Config struct {
	// ListenAddresses are host:port pairs; each is served over UDP and TCP on the same port.
	// A port of 0 picks a free one (read it back with Addr/Addrs).
	ListenAddresses []string
	// Domain is the cluster domain (default cluster.local).
	Domain string
	// ResolvConf is read for upstream nameservers (default /etc/resolv.conf).
	ResolvConf string
	// Upstreams, when set, replaces the nameservers from ResolvConf (host or host:port).
	Upstreams []string
	// NodeName names this node's EndpointSlice kube-dns-<NodeName> (default: the hostname).
	NodeName string
	// NodeIP is the address published in the EndpointSlice; empty skips the slice.
	NodeIP string
	// ServiceIP is the kube-dns Service's cluster IP (default 10.43.0.10).
	ServiceIP string
	// TTL of every answer and of negative answers (default 5 s).
	TTL time.Duration
	// ForwardTimeout bounds upstream forwarding per query (default 2 s).
	ForwardTimeout time.Duration
	// PodRecords selects pod record behaviour (default insecure).
	PodRecords PodMode
	// DisableClusterIntegration skips creating kube-dns and the EndpointSlice (benchmarks).
	DisableClusterIntegration bool
	// Registry receives the metrics; nil creates a private one (see Server.Registry).
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	c.Domain = strings.ToLower(strings.Trim(c.Domain, "."))
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.ServiceIP == "" {
		c.ServiceIP = DefaultServiceIP
	}
	if _, err := netip.ParseAddr(c.ServiceIP); err != nil {
		return c, fmt.Errorf("dns: service IP %q: %w", c.ServiceIP, err)
	}
	if c.NodeIP != "" {
		if _, err := netip.ParseAddr(c.NodeIP); err != nil {
			return c, fmt.Errorf("dns: node IP %q: %w", c.NodeIP, err)
		}
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.ForwardTimeout <= 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	switch c.PodRecords {
	case "":
		c.PodRecords = PodsInsecure
	case PodsInsecure, PodsVerified, PodsDisabled:
	default:
		return c, fmt.Errorf("dns: unknown pod records mode %q", c.PodRecords)
	}
	if len(c.ListenAddresses) == 0 {
		host := "127.0.0.1"
		if c.NodeIP != "" {
			host = c.NodeIP
		}
		c.ListenAddresses = []string{net.JoinHostPort(host, "53")}
	}
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	c.NodeName = strings.ToLower(c.NodeName)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// ReadResolvConf returns the nameservers of a resolv.conf file as host:port (port 53).
func ReadResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if hp, ok := normalizeUpstream(fields[1]); ok {
				out = append(out, hp)
			}
		}
	}
	return out, sc.Err()
}

// normalizeUpstream turns "1.2.3.4", "1.2.3.4:5353", "fe80::1%eth0" or "[::1]:53" into host:port.
func normalizeUpstream(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), true
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), true
	}
	if host, port, err := net.SplitHostPort(s); err == nil && host != "" {
		return net.JoinHostPort(host, port), true
	}
	return "", false
}
