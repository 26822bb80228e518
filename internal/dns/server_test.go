package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// --- fixtures ---

func clusterIPSvc(ns, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips, Ports: ports}}
}

func headlessSvc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return clusterIPSvc(ns, name, []string{"None"}, ports...)
}

func externalSvc(ns, name, target string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target}}
}

type ep struct {
	ip, host string
	ready    *bool
}

func slice(ns, svc, name string, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4, Ports: ports}
	for _, e := range eps {
		x := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.host != "" {
			x.Hostname = ptr.To(e.host)
		}
		es.Endpoints = append(es.Endpoints, x)
	}
	return es
}

func slicePort(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Protocol: ptr.To(proto), Port: ptr.To(port)}
}

func fixtures() []runtime.Object {
	pg := []discoveryv1.EndpointPort{slicePort("pg", corev1.ProtocolTCP, 5432)}
	objs := []runtime.Object{
		clusterIPSvc("default", "web", []string{"10.43.1.1"},
			corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			corev1.ServicePort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP},
			corev1.ServicePort{Name: "syslog", Port: 514, Protocol: corev1.ProtocolUDP}),
		clusterIPSvc("default", "dual", []string{"10.43.1.2", "fd00::2"}, corev1.ServicePort{Name: "http", Port: 80}),
		headlessSvc("default", "db", corev1.ServicePort{Name: "pg", Port: 5432}),
		slice("default", "db", "db-a", pg,
			ep{ip: "10.42.0.5", host: "db-0", ready: ptr.To(true)},
			ep{ip: "10.42.0.6", host: "db-1"}, // nil ready counts as ready
			ep{ip: "10.42.0.7", ready: ptr.To(true)},
			ep{ip: "10.42.0.8", host: "db-3", ready: ptr.To(false)}),
		slice("default", "db", "db-b", pg, ep{ip: "10.42.1.9", ready: ptr.To(true)}, ep{ip: "10.42.0.5", host: "db-0"}),
		slice("default", "web", "web-a", []discoveryv1.EndpointPort{slicePort("http", corev1.ProtocolTCP, 8080)},
			ep{ip: "10.42.5.5", ready: ptr.To(true)}, ep{ip: "10.42.5.6", host: "web-x", ready: ptr.To(true)}),
		externalSvc("default", "alias", "web.default.svc.cluster.local"),
		externalSvc("default", "ext", "example.org"),
		externalSvc("other", "far", "nowhere.invalid."),
		headlessSvc("default", "empty"),
	}
	var many []ep
	for i := 0; i < 100; i++ {
		many = append(many, ep{ip: fmt.Sprintf("10.42.2.%d", i+1)})
	}
	objs = append(objs, headlessSvc("default", "many"), slice("default", "many", "many-a", nil, many...))
	return objs
}

// --- harness ---

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type testServer struct {
	*Server
	client *fake.Clientset
	cancel context.CancelFunc
	done   chan struct{}
}

func startServer(t *testing.T, cfg Config, objs ...runtime.Object) *testServer {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	if cfg.ListenAddresses == nil {
		cfg.ListenAddresses = []string{"127.0.0.1:0"}
	}
	if cfg.ResolvConf == "" && cfg.Upstreams == nil {
		cfg.ResolvConf = filepath.Join(t.TempDir(), "missing-resolv.conf")
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
		if os.Getenv("SKIFF_TEST_VERBOSE") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	s, err := New(cfg, client, factory)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(ts.stop)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatalf("server not ready: %v", err)
	}
	return ts
}

func (ts *testServer) stop() {
	ts.cancel()
	<-ts.done
}

func exchange(t *testing.T, addr, network, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func query(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return exchange(t, addr, network, name, qtype, 0)
}

// rrs renders a section as sorted "name type value" strings, without TTL and class.
func rrs(section []dns.RR) []string {
	var out []string
	for _, rr := range section {
		h := rr.Header()
		v := strings.TrimPrefix(rr.String(), h.String())
		out = append(out, strings.ToLower(h.Name)+" "+dns.TypeToString[h.Rrtype]+" "+v)
	}
	sort.Strings(out)
	return out
}

func ttls(section []dns.RR) []uint32 {
	var out []uint32
	for _, rr := range section {
		out = append(out, rr.Header().Ttl)
	}
	return out
}

// --- tests ---

func TestRecords(t *testing.T) {
	ts := startServer(t, Config{}, fixtures()...)
	z := ".cluster.local."
	cases := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
	}{
		{"web.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"web.default.svc" + z + " A 10.43.1.1"}, nil},
		{"WEB.Default.svc.Cluster.Local", dns.TypeA, dns.RcodeSuccess, []string{"web.default.svc" + z + " A 10.43.1.1"}, nil},
		{"web.default.svc.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, nil, nil}, // NODATA
		{"web.default.svc.cluster.local", dns.TypeTXT, dns.RcodeSuccess, nil, nil},
		{"dual.default.svc.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, []string{"dual.default.svc" + z + " AAAA fd00::2"}, nil},
		{"dual.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"dual.default.svc" + z + " A 10.43.1.2"}, nil},
		{"nope.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"web.nope.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"www.example.com.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"nope.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"svc.cluster.local", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"cluster.local", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"bogus.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		// SRV for named ports of a ClusterIP service: the service name is the target.
		{"_http._tcp.web.default.svc.cluster.local", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_http._tcp.web.default.svc" + z + " SRV 0 100 80 web.default.svc" + z},
			[]string{"web.default.svc" + z + " A 10.43.1.1"}},
		{"_syslog._udp.web.default.svc.cluster.local", dns.TypeSRV, dns.RcodeSuccess,
			[]string{"_syslog._udp.web.default.svc" + z + " SRV 0 100 514 web.default.svc" + z}, nil},
		{"_syslog._tcp.web.default.svc.cluster.local", dns.TypeSRV, dns.RcodeNameError, nil, nil},
		{"_http._tcp.web.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, nil, nil},
		{"_tcp.web.default.svc.cluster.local", dns.TypeSRV, dns.RcodeSuccess, nil, nil},
		// Headless: ready endpoints only, each address once, across slices.
		{"db.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{
			"db.default.svc" + z + " A 10.42.0.5", "db.default.svc" + z + " A 10.42.0.6",
			"db.default.svc" + z + " A 10.42.0.7", "db.default.svc" + z + " A 10.42.1.9"}, nil},
		{"db-0.db.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"db-0.db.default.svc" + z + " A 10.42.0.5"}, nil},
		{"db-1.db.default.svc.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"db-3.db.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil}, // not ready
		{"10-42-0-7.db.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"10-42-0-7.db.default.svc" + z + " A 10.42.0.7"}, nil},
		{"web-0.web.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		// Pods behind a ClusterIP service answer by dashed address and hostname too; the service
		// name and its SRV records still give the cluster IP.
		{"10-42-5-5.web.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"10-42-5-5.web.default.svc" + z + " A 10.42.5.5"}, nil},
		{"web-x.web.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"web-x.web.default.svc" + z + " A 10.42.5.6"}, nil},
		{"_pg._tcp.db.default.svc.cluster.local", dns.TypeSRV, dns.RcodeSuccess, []string{
			"_pg._tcp.db.default.svc" + z + " SRV 0 25 5432 10-42-0-7.db.default.svc" + z,
			"_pg._tcp.db.default.svc" + z + " SRV 0 25 5432 10-42-1-9.db.default.svc" + z,
			"_pg._tcp.db.default.svc" + z + " SRV 0 25 5432 db-0.db.default.svc" + z,
			"_pg._tcp.db.default.svc" + z + " SRV 0 25 5432 db-1.db.default.svc" + z,
		}, []string{
			"10-42-0-7.db.default.svc" + z + " A 10.42.0.7", "10-42-1-9.db.default.svc" + z + " A 10.42.1.9",
			"db-0.db.default.svc" + z + " A 10.42.0.5", "db-1.db.default.svc" + z + " A 10.42.0.6",
		}},
		{"empty.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil}, // headless, no ready endpoints
		// ExternalName: CNAME, followed inside the zone.
		{"alias.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{
			"alias.default.svc" + z + " CNAME web.default.svc" + z, "web.default.svc" + z + " A 10.43.1.1"}, nil},
		{"alias.default.svc.cluster.local", dns.TypeCNAME, dns.RcodeSuccess, []string{
			"alias.default.svc" + z + " CNAME web.default.svc" + z}, nil},
		{"far.other.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{
			"far.other.svc" + z + " CNAME nowhere.invalid."}, nil}, // no upstream: the CNAME alone
		// Pods (insecure).
		{"10-42-0-99.default.pod.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"10-42-0-99.default.pod" + z + " A 10.42.0.99"}, nil},
		{"fd00--5.default.pod.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, []string{"fd00--5.default.pod" + z + " AAAA fd00::5"}, nil},
		{"10-42-0-99.default.pod.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, nil, nil},
		{"not-an-ip.default.pod.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		{"10-42-0-999.default.pod.cluster.local", dns.TypeA, dns.RcodeNameError, nil, nil},
		// Zone metadata.
		{"dns-version.cluster.local", dns.TypeTXT, dns.RcodeSuccess, []string{"dns-version" + z + ` TXT "1.1.0"`}, nil},
		{"ns.dns.cluster.local", dns.TypeA, dns.RcodeSuccess, []string{"ns.dns" + z + " A 10.43.0.10"}, nil},
		{"cluster.local", dns.TypeNS, dns.RcodeSuccess, []string{"cluster.local. NS ns.dns" + z}, []string{"ns.dns" + z + " A 10.43.0.10"}},
		// Reverse lookups of cluster IPs and headless endpoints.
		{"1.1.43.10.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, []string{"1.1.43.10.in-addr.arpa. PTR web.default.svc" + z}, nil},
		{"5.0.42.10.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, []string{"5.0.42.10.in-addr.arpa. PTR db-0.db.default.svc" + z}, nil},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", dns.TypePTR, dns.RcodeSuccess,
			[]string{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR dual.default.svc" + z}, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range cases {
			t.Run(network+"/"+c.name+"/"+dns.TypeToString[c.qtype], func(t *testing.T) {
				r := query(t, ts.Addr(), network, c.name, c.qtype)
				if r.Rcode != c.rcode {
					t.Fatalf("rcode %s, want %s: %v", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode], r)
				}
				if got := rrs(r.Answer); !slices.Equal(got, c.answer) {
					t.Errorf("answer\n got %q\nwant %q", got, c.answer)
				}
				if c.extra != nil {
					if got := rrs(r.Extra); !slices.Equal(got, c.extra) {
						t.Errorf("extra\n got %q\nwant %q", got, c.extra)
					}
				}
				for _, ttl := range ttls(r.Answer) {
					if ttl != 5 {
						t.Errorf("ttl %d, want 5", ttl)
					}
				}
				if !r.Authoritative {
					t.Errorf("answer not authoritative")
				}
				if len(r.Answer) == 0 {
					// NXDOMAIN and NODATA carry the zone's SOA in the authority section.
					if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Name != "cluster.local." {
						t.Errorf("authority %v, want the SOA of cluster.local.", r.Ns)
					}
				}
				if c.answer != nil && strings.ToLower(r.Answer[0].Header().Name) != strings.ToLower(dns.Fqdn(c.name)) {
					t.Errorf("first answer owner %s, want %s", r.Answer[0].Header().Name, c.name)
				}
			})
		}
	}
}

func TestTruncation(t *testing.T) {
	ts := startServer(t, Config{}, fixtures()...)
	name := "many.default.svc.cluster.local"
	r := query(t, ts.Addr(), "udp", name, dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Fatalf("UDP answer of 100 addresses: truncated=%v answers=%d, want TC and fewer", r.Truncated, len(r.Answer))
	}
	big := exchange(t, ts.Addr(), "udp", name, dns.TypeA, 4096)
	if big.Truncated || len(big.Answer) != 100 || big.IsEdns0() == nil {
		t.Fatalf("UDP answer with EDNS0 4096: truncated=%v answers=%d opt=%v", big.Truncated, len(big.Answer), big.IsEdns0())
	}
	r = query(t, ts.Addr(), "tcp", name, dns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("TCP answer: truncated=%v answers=%d, want all 100", r.Truncated, len(r.Answer))
	}
}

// fakeUpstream answers example.org A and AAAA over UDP and TCP; everything else NXDOMAIN.
func fakeUpstream(t *testing.T) string { return fakeUpstreamOpts(t, false) }

func fakeUpstreamOpts(t *testing.T, udpOnly bool) string {
	t.Helper()
	pc, l, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, "example.org.") && q.Qtype == dns.TypeA:
			rr, _ := dns.NewRR("example.org. 300 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		case strings.EqualFold(q.Name, "example.org."):
		case strings.EqualFold(q.Name, "big.example.org."):
			for i := 0; i < 60; i++ {
				rr, _ := dns.NewRR(fmt.Sprintf("big.example.org. 300 IN A 192.0.2.%d", i+1))
				m.Answer = append(m.Answer, rr)
			}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	us := &dns.Server{PacketConn: pc, Handler: h}
	go func() { _ = us.ActivateAndServe() }()
	t.Cleanup(func() { _ = us.Shutdown() })
	if udpOnly {
		l.Close()
		return pc.LocalAddr().String()
	}
	ts := &dns.Server{Listener: l, Handler: h}
	go func() { _ = ts.ActivateAndServe() }()
	t.Cleanup(func() { _ = ts.Shutdown() })
	return pc.LocalAddr().String()
}

func TestForwarding(t *testing.T) {
	up := fakeUpstream(t)
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	host, port, _ := net.SplitHostPort(up)
	_ = host
	// resolv.conf has no ports: use the override for the fake upstream, and check the file
	// reading separately (TestReadResolvConf).
	ts := startServer(t, Config{Upstreams: []string{up}, ResolvConf: rc}, fixtures()...)
	if got := ts.Upstreams(); !slices.Equal(got, []string{up}) {
		t.Fatalf("upstreams %v, want %v (port %s)", got, up, port)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := query(t, ts.Addr(), network, "example.org", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(rrs(r.Answer), []string{"example.org. A 192.0.2.7"}) {
			t.Fatalf("%s forwarded answer: %v", network, r)
		}
		r = query(t, ts.Addr(), network, "missing.example.org", dns.TypeA)
		if r.Rcode != dns.RcodeNameError {
			t.Fatalf("%s forwarded NXDOMAIN: %v", network, r)
		}
		// ExternalName outside the zone: CNAME, then the upstream's answer for the target.
		r = query(t, ts.Addr(), network, "ext.default.svc.cluster.local", dns.TypeA)
		want := []string{"example.org. A 192.0.2.7", "ext.default.svc.cluster.local. CNAME example.org."}
		if r.Rcode != dns.RcodeSuccess || !slices.Equal(rrs(r.Answer), want) {
			t.Fatalf("%s external name: %v", network, r)
		}
	}
	// A large upstream answer over UDP is truncated for the client; over TCP it is whole.
	r := query(t, ts.Addr(), "udp", "big.example.org", dns.TypeA)
	if !r.Truncated {
		t.Fatalf("big UDP answer not truncated: %d answers", len(r.Answer))
	}
	r = query(t, ts.Addr(), "tcp", "big.example.org", dns.TypeA)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("big TCP answer: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
	// PTR for an address the cluster does not know goes upstream (which says NXDOMAIN).
	r = query(t, ts.Addr(), "udp", "7.2.0.192.in-addr.arpa", dns.TypePTR)
	if r.Rcode != dns.RcodeNameError || r.Authoritative {
		t.Fatalf("unknown PTR: %v", r)
	}
}

func TestForwardingTCPClientUDPOnlyUpstream(t *testing.T) {
	up := fakeUpstreamOpts(t, true)
	ts := startServer(t, Config{Upstreams: []string{up}}, fixtures()...)
	r := query(t, ts.Addr(), "tcp", "example.org", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("TCP client, UDP-only upstream: %v", r)
	}
}

func TestForwardingDeadUpstream(t *testing.T) {
	// One upstream that never answers (a bound socket nobody reads) and one that refuses.
	black, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer black.Close()
	refused, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.LocalAddr().String()
	refused.Close()
	ts := startServer(t, Config{Upstreams: []string{black.LocalAddr().String(), refusedAddr}}, fixtures()...)
	start := time.Now()
	r := query(t, ts.Addr(), "udp", "example.org", dns.TypeA)
	took := time.Since(start)
	if r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("SERVFAIL took %v, want about 2s at most", took)
	}
	// No upstream at all: SERVFAIL at once.
	none := startServer(t, Config{}, fixtures()...)
	start = time.Now()
	r = query(t, none.Addr(), "tcp", "example.org", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("no upstream: %s after %v", dns.RcodeToString[r.Rcode], time.Since(start))
	}
	// Cluster names still answer.
	r = query(t, ts.Addr(), "udp", "web.default.svc.cluster.local", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("cluster name: %v", r)
	}
}

func TestUpdatesReflected(t *testing.T) {
	ts := startServer(t, Config{}, fixtures()...)
	ctx := context.Background()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	answers := func(name string, qtype uint16) []string { return rrs(query(t, ts.Addr(), "udp", name, qtype).Answer) }
	rcode := func(name string) int { return query(t, ts.Addr(), "udp", name, dns.TypeA).Rcode }

	svc := clusterIPSvc("default", "late", []string{"10.43.2.2"}, corev1.ServicePort{Name: "http", Port: 8080})
	if _, err := ts.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("new service resolves", func() bool {
		return slices.Equal(answers("late.default.svc.cluster.local", dns.TypeA), []string{"late.default.svc.cluster.local. A 10.43.2.2"})
	})
	svc.Spec.Ports[0].Port = 9000
	if _, err := ts.client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("SRV port follows the service", func() bool {
		got := answers("_http._tcp.late.default.svc.cluster.local", dns.TypeSRV)
		return len(got) == 1 && strings.Contains(got[0], " 9000 ")
	})
	// A headless endpoint becoming ready appears; a slice deleted takes its addresses away.
	es, err := ts.client.DiscoveryV1().EndpointSlices("default").Get(ctx, "db-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints[3].Conditions.Ready = ptr.To(true)
	if _, err := ts.client.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("db-3 resolves once ready", func() bool {
		return slices.Equal(answers("db-3.db.default.svc.cluster.local", dns.TypeA), []string{"db-3.db.default.svc.cluster.local. A 10.42.0.8"})
	})
	if err := ts.client.DiscoveryV1().EndpointSlices("default").Delete(ctx, "db-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("db-b's address gone", func() bool { return len(answers("db.default.svc.cluster.local", dns.TypeA)) == 4 })
	if rcode("10-42-1-9.db.default.svc.cluster.local") != dns.RcodeNameError {
		t.Fatal("endpoint of a deleted slice still resolves")
	}
	if err := ts.client.CoreV1().Services("default").Delete(ctx, "late", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("deleted service NXDOMAIN", func() bool { return rcode("late.default.svc.cluster.local") == dns.RcodeNameError })
	if r := query(t, ts.Addr(), "udp", "2.2.43.10.in-addr.arpa", dns.TypePTR); r.Authoritative {
		t.Fatalf("PTR of a deleted service still answered: %v", r)
	}
}

func TestPodModes(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"},
		Status: corev1.PodStatus{PodIP: "10.42.3.3", PodIPs: []corev1.PodIP{{IP: "10.42.3.3"}}}}
	v := startServer(t, Config{PodRecords: PodsVerified}, append(fixtures(), pod)...)
	if r := query(t, v.Addr(), "udp", "10-42-3-3.default.pod.cluster.local", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("verified known pod: %v", r)
	}
	for _, name := range []string{"10-42-3-4.default.pod.cluster.local", "10-42-3-3.other.pod.cluster.local"} {
		if r := query(t, v.Addr(), "udp", name, dns.TypeA); r.Rcode != dns.RcodeNameError {
			t.Fatalf("verified %s: %v", name, r)
		}
	}
	d := startServer(t, Config{PodRecords: PodsDisabled}, fixtures()...)
	if r := query(t, d.Addr(), "udp", "10-42-3-3.default.pod.cluster.local", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("disabled: %v", r)
	}
}

func TestOtherDomainAndMetrics(t *testing.T) {
	ts := startServer(t, Config{Domain: "Example.Internal."}, fixtures()...)
	r := query(t, ts.Addr(), "udp", "web.default.svc.example.internal", dns.TypeA)
	if !slices.Equal(rrs(r.Answer), []string{"web.default.svc.example.internal. A 10.43.1.1"}) {
		t.Fatalf("custom domain: %v", r)
	}
	r = query(t, ts.Addr(), "udp", "nope.default.svc.example.internal", dns.TypeA)
	if r.Rcode != dns.RcodeNameError {
		t.Fatalf("custom domain NXDOMAIN: %v", r)
	}
	// A query is counted just after its answer is sent: wait for the second one's.
	var counters map[string]float64
	var observed uint64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		counters, observed = map[string]float64{}, 0
		mfs, err := ts.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "skiff_dns_queries_total":
					counters[labels(m)] = m.GetCounter().GetValue()
				case "skiff_dns_request_duration_seconds":
					observed += m.GetHistogram().GetSampleCount()
				}
			}
		}
		if observed >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if counters["rcode=NXDOMAIN,type=A"] != 1 || counters["rcode=NOERROR,type=A"] != 1 || observed != 2 {
		t.Fatalf("metrics: counters %v, %d durations observed", counters, observed)
	}
}

func TestClusterIntegration(t *testing.T) {
	ts := startServer(t, Config{NodeName: "node-a", NodeIP: "192.0.2.10"}, fixtures()...)
	ctx := context.Background()
	_, port, _ := net.SplitHostPort(ts.Addr())
	deadline := time.Now().Add(10 * time.Second)
	var es *discoveryv1.EndpointSlice
	for {
		var err error
		es, err = ts.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Get(ctx, "kube-dns-node-a", metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slice not created: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	svc, err := ts.client.CoreV1().Services(ServiceNamespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != DefaultServiceIP || svc.Spec.Selector != nil || svc.Labels["k8s-app"] != "kube-dns" ||
		svc.Labels["kubernetes.io/name"] != "skiff-dns" || len(svc.Spec.Ports) != 2 {
		t.Fatalf("kube-dns service: %+v", svc)
	}
	if es.Labels[discoveryv1.LabelServiceName] != "kube-dns" || es.Labels[discoveryv1.LabelManagedBy] != "skiff-dns" ||
		len(es.Endpoints) != 1 || es.Endpoints[0].Addresses[0] != "192.0.2.10" || !*es.Endpoints[0].Conditions.Ready ||
		fmt.Sprint(*es.Ports[0].Port) != port || *es.Ports[0].Name != "dns" || *es.Ports[1].Protocol != corev1.ProtocolTCP {
		t.Fatalf("slice: %+v", es)
	}
	// Tampering is repaired.
	es.Endpoints[0].Addresses = []string{"192.0.2.99"}
	if _, err := ts.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		got, err := ts.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Get(ctx, "kube-dns-node-a", metav1.GetOptions{})
		if err == nil && got.Endpoints[0].Addresses[0] == "192.0.2.10" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slice not repaired: %+v %v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// kube-dns itself resolves.
	deadline = time.Now().Add(10 * time.Second)
	for {
		r := query(t, ts.Addr(), "udp", "kube-dns.kube-system.svc.cluster.local", dns.TypeA)
		if slices.Equal(rrs(r.Answer), []string{"kube-dns.kube-system.svc.cluster.local. A 10.43.0.10"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-dns does not resolve: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A clean stop removes the slice and leaves the service.
	ts.stop()
	if _, err := ts.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Get(ctx, "kube-dns-node-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("slice after stop: %v", err)
	}
	if _, err := ts.client.CoreV1().Services(ServiceNamespace).Get(ctx, ServiceName, metav1.GetOptions{}); err != nil {
		t.Fatalf("service after stop: %v", err)
	}
}

func TestClusterIntegrationExistingService(t *testing.T) {
	for _, nodeIP := range []string{"", "127.0.0.1"} { // no node IP, or one the API refuses: no slice
		t.Run("nodeIP="+nodeIP, func(t *testing.T) { testExistingService(t, nodeIP) })
	}
}

func testExistingService(t *testing.T, nodeIP string) {
	other := clusterIPSvc(ServiceNamespace, ServiceName, []string{"10.43.0.53"}, corev1.ServicePort{Name: "dns", Port: 53})
	ts := startServer(t, Config{NodeName: "node-b", NodeIP: nodeIP}, other)
	ctx := context.Background()
	// Wait until the cluster loop has looked at kube-dns, then stop it, so every write it would
	// have made is in the recorded actions.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(ts.client.Actions(), func(a k8stesting.Action) bool {
		return a.GetVerb() == "get" && a.GetResource().Resource == "services"
	}) {
		if time.Now().After(deadline) {
			t.Fatal("kube-dns never looked at")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.stop()
	for _, a := range ts.client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			t.Errorf("unexpected write: %s %s", v, a.GetResource().Resource)
		}
	}
	svc, err := ts.client.CoreV1().Services(ServiceNamespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "10.43.0.53" {
		t.Fatalf("existing kube-dns changed: %+v %v", svc, err)
	}
}

func TestFilterSelf(t *testing.T) {
	svcIP := netip.MustParseAddr("10.43.0.10")
	bound := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.5:53"), netip.MustParseAddrPort("127.0.0.1:5353")}
	kept, dropped := filterSelf([]string{"10.0.0.5:53", "10.0.0.6:53", "127.0.0.1:5353", "127.0.0.1:53", "10.43.0.10:53", "8.8.8.8:53"},
		bound, svcIP)
	if !slices.Equal(kept, []string{"10.0.0.6:53", "127.0.0.1:53", "8.8.8.8:53"}) ||
		!slices.Equal(dropped, []string{"10.0.0.5:53", "127.0.0.1:5353", "10.43.0.10:53"}) {
		t.Fatalf("kept %v dropped %v", kept, dropped)
	}
	// An unspecified bind address covers loopback on that port.
	kept, _ = filterSelf([]string{"127.0.0.1:53", "127.0.0.1:54"}, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:53")}, svcIP)
	if !slices.Equal(kept, []string{"127.0.0.1:54"}) {
		t.Fatalf("kept %v", kept)
	}
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver 2001:db8::1 # six\noptions ndots:5\nnameserver\n"
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResolvConf(p)
	want := []string{"10.0.0.2:53", "[fe80::1%eth0]:53", "[2001:db8::1]:53"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
}

func TestNameHelpers(t *testing.T) {
	for _, c := range []struct {
		label string
		ok    bool
		want  string
	}{
		{"10-1-2-3", true, "10.1.2.3"}, {"fd00--5", true, "fd00::5"}, {"2001-db8-0-0-0-0-0-1", true, "2001:db8::1"},
		{"10-1-2", false, ""}, {"300-1-2-3", false, ""}, {"web", false, ""}, {"--1", true, "::1"},
	} {
		a, ok := undash(c.label)
		if ok != c.ok || (ok && a.String() != c.want) {
			t.Errorf("undash(%q) = %v %v, want %v %v", c.label, a, ok, c.want, c.ok)
		}
		if ok && c.label != "2001-db8-0-0-0-0-0-1" {
			if d := dashed(a); d != c.label {
				t.Errorf("dashed(%v) = %q, want %q", a, d, c.label)
			}
		}
	}
	for _, c := range []struct {
		name string
		ok   bool
		want string
	}{
		{"4.3.2.1.in-addr.arpa.", true, "1.2.3.4"},
		{"3.2.1.in-addr.arpa.", false, ""},
		{"04.3.2.1.in-addr.arpa.", false, ""},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", true, "2001:db8::1"},
		{"example.org.", false, ""},
	} {
		a, ok := reverseAddr(c.name)
		if ok != c.ok || (ok && a.String() != c.want) {
			t.Errorf("reverseAddr(%q) = %v %v, want %v", c.name, a, ok, c.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	client := fake.NewClientset()
	f := informers.NewSharedInformerFactory(client, 0)
	for _, cfg := range []Config{{ServiceIP: "x"}, {NodeIP: "node"}, {PodRecords: "sometimes"}} {
		if _, err := New(cfg, client, f); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	s, err := New(Config{NodeIP: "192.0.2.1", Logger: quiet}, client, f)
	if err != nil || !slices.Equal(s.cfg.ListenAddresses, []string{"192.0.2.1:53"}) || s.cfg.Domain != "cluster.local" || s.ttl != 5 {
		t.Fatalf("defaults: %+v %v", s.cfg, err)
	}
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func TestForwarderLimits(t *testing.T) {
	f := &forwarder{upstreams: []string{"127.0.0.1:1"}, budget: time.Second}
	f.inFlight.Store(maxConcurrentForwards)
	m := new(dns.Msg)
	m.SetQuestion("example.org.", dns.TypeA)
	if _, err := f.exchange(context.Background(), m, "udp"); err != errOverloaded {
		t.Fatalf("over the limit: %v, want errOverloaded", err)
	}
	if f.inFlight.Load() != maxConcurrentForwards {
		t.Fatalf("in-flight count leaked: %d", f.inFlight.Load())
	}
	if _, err := (&forwarder{budget: time.Second}).exchange(context.Background(), m, "udp"); err != errNoUpstream {
		t.Fatalf("no upstream: %v", err)
	}
}

func TestOddNamesDoNotPanic(t *testing.T) {
	ts := startServer(t, Config{}, fixtures()...)
	names := []string{".", "cluster.local.", ".cluster.local.", "..svc.cluster.local.", "a\\.b.default.svc.cluster.local.",
		"_._.web.default.svc.cluster.local.", "_http.web.default.svc.cluster.local.", "-.default.pod.cluster.local.",
		"1-2-3-4-5.default.pod.cluster.local.", "x.y.z.w.v.u.default.svc.cluster.local.", "in-addr.arpa.", "1.in-addr.arpa.",
		"x.x.x.x.in-addr.arpa.", "256.1.1.1.in-addr.arpa.", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
		"dns.cluster.local.", "x.ns.dns.cluster.local.", "dns-version.x.cluster.local.", "ext.default.svc.cluster.local."}
	for _, n := range names {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeANY, dns.TypeCNAME, dns.TypeNS} {
			m := new(dns.Msg)
			m.SetQuestion(n, qt)
			resp, _ := ts.handle(m, "udp")
			if resp == nil || resp.Id != m.Id {
				t.Fatalf("%s %s: %v", n, dns.TypeToString[qt], resp)
			}
		}
	}
	// Not a query, no question, several questions, a zone transfer, another class.
	notify := new(dns.Msg)
	notify.SetNotify("cluster.local.")
	if r, _ := ts.handle(notify, "udp"); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("notify: %v", r)
	}
	if r, _ := ts.handle(&dns.Msg{}, "udp"); r.Rcode != dns.RcodeFormatError {
		t.Errorf("no question: %v", r)
	}
	axfr := new(dns.Msg)
	axfr.SetAxfr("cluster.local.")
	if r, _ := ts.handle(axfr, "tcp"); r.Rcode != dns.RcodeRefused {
		t.Errorf("axfr: %v", r)
	}
	chaos := new(dns.Msg)
	chaos.SetQuestion("web.default.svc.cluster.local.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	if r, _ := ts.handle(chaos, "udp"); r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("chaos class: %v", r)
	}
}
