package proxy

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/knftables"
)

const testTable = "skiff-proxy"

// synced builds a proxy on a fake nftables, syncs once and returns both.
func synced(t *testing.T, cfg Config, objs ...runtime.Object) (*fakeProxy, *knftables.Fake) {
	t.Helper()
	nft := knftables.NewFake(knftables.IPv4Family, testTable)
	cfg.NFT = nft
	p := newFakeProxy(t, cfg, objs...)
	if err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, nft
}

// rules returns a chain's rules (nil when the chain does not exist).
func rules(nft *knftables.Fake, chain string) []string {
	nft.RLock()
	defer nft.RUnlock()
	c := nft.Table.Chains[chain]
	if c == nil {
		return nil
	}
	out := []string{}
	for _, r := range c.Rules {
		out = append(out, r.Rule)
	}
	return out
}

// mapValue returns the value of a map element ("" when absent).
func mapValue(nft *knftables.Fake, m string, key ...string) string {
	nft.RLock()
	defer nft.RUnlock()
	if e := nft.Table.Maps[m].FindElement(key...); e != nil {
		return strings.Join(e.Value, " ")
	}
	return ""
}

func chainNames(nft *knftables.Fake, prefix string) []string {
	nft.RLock()
	defer nft.RUnlock()
	var out []string
	for n := range nft.Table.Chains {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func wantRules(t *testing.T, nft *knftables.Fake, chain string, want ...string) {
	t.Helper()
	if got := rules(nft, chain); !reflect.DeepEqual(got, want) {
		t.Errorf("chain %s:\n got %q\nwant %q", chain, got, want)
	}
}

func wantElement(t *testing.T, nft *knftables.Fake, m, value string, key ...string) {
	t.Helper()
	if got := mapValue(nft, m, key...); got != value {
		t.Errorf("map %s[%s] = %q, want %q", m, strings.Join(key, " . "), got, value)
	}
}

func TestClusterIPWithEndpoints(t *testing.T) {
	_, nft := synced(t, Config{},
		service("ns", "web", "10.43.0.10", 80),
		slice("ns", "web", "web-a", 8080, ep{ip: "10.42.0.5"}),
		slice("ns", "web", "web-b", 8080, ep{ip: "10.42.1.5"}, ep{ip: "10.42.0.5"})) // duplicate across slices
	wantElement(t, nft, mapServiceIPs, "goto svc/ns/web/tcp/80", "10.43.0.10", "tcp", "80")
	wantRules(t, nft, "svc/ns/web/tcp/80",
		"ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
		"numgen random mod 2 vmap { 0 : goto ep/ns/web/tcp/80/10.42.0.5/8080 , 1 : goto ep/ns/web/tcp/80/10.42.1.5/8080 }")
	wantRules(t, nft, "ep/ns/web/tcp/80/10.42.0.5/8080",
		"ip saddr 10.42.0.5 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.42.0.5:8080")
	wantRules(t, nft, "ep/ns/web/tcp/80/10.42.1.5/8080",
		"ip saddr 10.42.1.5 jump mark-for-masquerade", "meta l4proto tcp dnat to 10.42.1.5:8080")
	if got := chainNames(nft, "ext/"); len(got) != 0 {
		t.Errorf("a ClusterIP service got external chains %v", got)
	}
	// The static plumbing: hooks, masquerading.
	wantRules(t, nft, chainNATOutput, "jump services")
	wantRules(t, nft, chainNATPrerouting, "jump services")
	wantRules(t, nft, chainMasquerading, "meta mark & 0x4000 == 0 return", "meta mark set meta mark ^ 0x4000", "masquerade fully-random")
	nft.RLock()
	defer nft.RUnlock()
	if nft.Table.Sets[setClusterIPs].FindElement("10.43.0.10") == nil {
		t.Error("cluster IP not in cluster-ips")
	}
	if c := nft.Table.Chains[chainNATOutput]; *c.Hook != knftables.OutputHook || *c.Type != knftables.NATType {
		t.Errorf("nat-output chain: %+v", c.Chain)
	}
}

func TestNodePort(t *testing.T) {
	_, nft := synced(t, Config{NodeIPs: []string{"192.0.2.1"}},
		service("ns", "np", "10.43.0.11", 80, withNodePort(30080)),
		slice("ns", "np", "np-1", 8080, ep{ip: "10.42.0.6"}))
	wantElement(t, nft, mapServiceNodePorts, "goto ext/ns/np/tcp/80", "tcp", "30080")
	wantElement(t, nft, mapServiceIPs, "goto svc/ns/np/tcp/80", "10.43.0.11", "tcp", "80")
	wantRules(t, nft, "ext/ns/np/tcp/80", "jump mark-for-masquerade", "goto svc/ns/np/tcp/80")
	wantRules(t, nft, chainServices,
		"ip daddr . meta l4proto . th dport vmap @service-ips",
		"ip daddr @node-ips meta l4proto . th dport vmap @service-nodeports",
		"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports")
	nft.RLock()
	defer nft.RUnlock()
	if nft.Table.Sets[setNodeIPs].FindElement("192.0.2.1") == nil {
		t.Error("node IP not in node-ips")
	}
}

func TestSessionAffinity(t *testing.T) {
	p, nft := synced(t, Config{},
		service("ns", "sticky", "10.43.0.12", 80, withAffinity(600)),
		slice("ns", "sticky", "s-1", 8080, ep{ip: "10.42.0.7"}, ep{ip: "10.42.0.8"}))
	wantRules(t, nft, "svc/ns/sticky/tcp/80",
		"ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
		"ip saddr @aff-600/ns/sticky/tcp/80/10.42.0.7/8080 goto ep/ns/sticky/tcp/80/10.42.0.7/8080",
		"ip saddr @aff-600/ns/sticky/tcp/80/10.42.0.8/8080 goto ep/ns/sticky/tcp/80/10.42.0.8/8080",
		"numgen random mod 2 vmap { 0 : goto ep/ns/sticky/tcp/80/10.42.0.7/8080 , 1 : goto ep/ns/sticky/tcp/80/10.42.0.8/8080 }")
	wantRules(t, nft, "ep/ns/sticky/tcp/80/10.42.0.7/8080",
		"ip saddr 10.42.0.7 jump mark-for-masquerade",
		"update @aff-600/ns/sticky/tcp/80/10.42.0.7/8080 { ip saddr }",
		"meta l4proto tcp dnat to 10.42.0.7:8080")
	nft.RLock()
	set := nft.Table.Sets["aff-600/ns/sticky/tcp/80/10.42.0.7/8080"]
	nft.RUnlock()
	if set == nil || set.Timeout == nil || *set.Timeout != 600*time.Second {
		t.Fatalf("affinity set: %+v", set)
	}
	// Dropping affinity removes the sets.
	svc := service("ns", "sticky", "10.43.0.12", 80)
	updateAndSync(t, p, func(ctx context.Context) error {
		_, err := p.cs.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{})
		return err
	}, func() bool { s, _ := p.services.Services("ns").Get("sticky"); return s.Spec.SessionAffinity == "" })
	nft.RLock()
	defer nft.RUnlock()
	for name := range nft.Table.Sets {
		if strings.HasPrefix(name, "aff-") {
			t.Errorf("affinity set %s left", name)
		}
	}
}

func TestNoEndpointsRejects(t *testing.T) {
	_, nft := synced(t, Config{},
		service("ns", "empty", "10.43.0.13", 80, withNodePort(30081)),
		slice("ns", "empty", "e-1", 8080, ep{ip: "10.42.0.9", notReady: true}))
	wantElement(t, nft, mapNoEndpointServices, "goto reject-service", "10.43.0.13", "tcp", "80")
	wantElement(t, nft, mapNoEndpointNodePort, "goto reject-service", "tcp", "30081")
	wantElement(t, nft, mapServiceIPs, "", "10.43.0.13", "tcp", "80")
	if got := chainNames(nft, "svc/"); len(got) != 0 {
		t.Errorf("chains for a service without endpoints: %v", got)
	}
	wantRules(t, nft, chainReject, "meta l4proto tcp reject with tcp reset", "reject")
	wantRules(t, nft, chainFilterOutput, "ct state new jump endpoint-checks")
}

func TestLoadBalancerAndExternalIPs(t *testing.T) {
	svc := service("ns", "lb", "10.43.0.14", 443, withLB(30443, "192.0.2.10", "192.0.2.11"))
	svc.Status.LoadBalancer.Ingress[1].IPMode = knftables.PtrTo(corev1.LoadBalancerIPModeProxy)
	svc.Spec.ExternalIPs = []string{"198.51.100.7"}
	_, nft := synced(t, Config{}, svc, slice("ns", "lb", "lb-1", 8443, ep{ip: "10.42.0.10"}))
	wantElement(t, nft, mapServiceIPs, "goto ext/ns/lb/tcp/443", "192.0.2.10", "tcp", "443")
	wantElement(t, nft, mapServiceIPs, "", "192.0.2.11", "tcp", "443") // ipMode Proxy
	wantElement(t, nft, mapServiceIPs, "goto ext/ns/lb/tcp/443", "198.51.100.7", "tcp", "443")
	wantElement(t, nft, mapServiceIPs, "goto svc/ns/lb/tcp/443", "10.43.0.14", "tcp", "443")
	wantElement(t, nft, mapServiceNodePorts, "goto ext/ns/lb/tcp/443", "tcp", "30443")
	wantRules(t, nft, "ext/ns/lb/tcp/443", "jump mark-for-masquerade", "goto svc/ns/lb/tcp/443")
}

func TestTrafficPolicyLocal(t *testing.T) {
	local := func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.InternalTrafficPolicy = knftables.PtrTo(corev1.ServiceInternalTrafficPolicyLocal)
	}
	_, nft := synced(t, Config{NodeName: "n1"},
		service("ns", "here", "10.43.0.15", 80, withNodePort(30082), local),
		slice("ns", "here", "h-1", 8080, ep{ip: "10.42.0.11", node: "n1"}, ep{ip: "10.42.1.11", node: "n2"}),
		service("ns", "elsewhere", "10.43.0.16", 80, withNodePort(30083), local),
		slice("ns", "elsewhere", "e-1", 8080, ep{ip: "10.42.1.12", node: "n2"}))
	// Internal Local: the cluster IP balances over this node's endpoints only...
	wantElement(t, nft, mapServiceIPs, "goto local/ns/here/tcp/80", "10.43.0.15", "tcp", "80")
	wantRules(t, nft, "local/ns/here/tcp/80", "numgen random mod 1 vmap { 0 : goto ep/ns/here/tcp/80/10.42.0.11/8080 }")
	// ...and drops without one.
	wantElement(t, nft, mapNoEndpointServices, "drop", "10.43.0.16", "tcp", "80")
	// External Local: pods and the node use every endpoint, outside clients the local ones
	// without masquerade, or are dropped when there is none.
	wantRules(t, nft, "ext/ns/here/tcp/80",
		"ip saddr 10.42.0.0/16 goto svc/ns/here/tcp/80",
		"fib saddr type local jump mark-for-masquerade",
		"fib saddr type local goto svc/ns/here/tcp/80",
		"goto local/ns/here/tcp/80")
	wantRules(t, nft, "ext/ns/elsewhere/tcp/80",
		"ip saddr 10.42.0.0/16 goto svc/ns/elsewhere/tcp/80",
		"fib saddr type local jump mark-for-masquerade",
		"fib saddr type local goto svc/ns/elsewhere/tcp/80",
		"drop")
}

// updateAndSync changes the fake API, waits until the informers saw it, and syncs.
func updateAndSync(t *testing.T, p *fakeProxy, change func(context.Context) error, seen func() bool) {
	t.Helper()
	ctx := context.Background()
	if err := change(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "informers", seen)
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRemovedServiceGoesAway(t *testing.T) {
	p, nft := synced(t, Config{},
		service("ns", "keep", "10.43.0.20", 80),
		slice("ns", "keep", "k-1", 8080, ep{ip: "10.42.0.20"}),
		service("ns", "gone", "10.43.0.21", 80, withNodePort(30090), withAffinity(30)),
		slice("ns", "gone", "g-1", 8080, ep{ip: "10.42.0.21"}))
	if len(chainNames(nft, "ep/ns/gone/")) != 1 {
		t.Fatal("service not programmed")
	}
	updateAndSync(t, p, func(ctx context.Context) error {
		return p.cs.CoreV1().Services("ns").Delete(ctx, "gone", metav1.DeleteOptions{})
	}, func() bool { _, err := p.services.Services("ns").Get("gone"); return err != nil })
	dump := nft.Dump()
	for _, s := range []string{"ns/gone", "10.43.0.21", "30090"} {
		if strings.Contains(dump, s) {
			t.Errorf("%q still in the table:\n%s", s, dump)
		}
	}
	wantElement(t, nft, mapServiceIPs, "goto svc/ns/keep/tcp/80", "10.43.0.20", "tcp", "80")
	// The sync was partial: it did not rewrite the unchanged service.
	nft.RLock()
	tx := nft.LastTransaction.String()
	nft.RUnlock()
	if strings.Contains(tx, "ns/keep") {
		t.Errorf("partial sync touched an unchanged service:\n%s", tx)
	}
	if got := gaugeValue(t, p.metrics.services); got != 1 {
		t.Errorf("programmed services gauge = %v, want 1", got)
	}
}

func TestEndpointChangeIsPartial(t *testing.T) {
	p, nft := synced(t, Config{},
		service("ns", "web", "10.43.0.30", 80),
		slice("ns", "web", "w-1", 8080, ep{ip: "10.42.0.30"}, ep{ip: "10.42.0.31"}))
	updateAndSync(t, p, func(ctx context.Context) error {
		_, err := p.cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice("ns", "web", "w-1", 8080, ep{ip: "10.42.0.31"}, ep{ip: "10.42.0.32"}), metav1.UpdateOptions{})
		return err
	}, func() bool {
		s, _ := p.slices.EndpointSlices("ns").Get("w-1")
		return s.Endpoints[1].Addresses[0] == "10.42.0.32"
	})
	wantRules(t, nft, "svc/ns/web/tcp/80",
		"ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
		"numgen random mod 2 vmap { 0 : goto ep/ns/web/tcp/80/10.42.0.31/8080 , 1 : goto ep/ns/web/tcp/80/10.42.0.32/8080 }")
	if rules(nft, "ep/ns/web/tcp/80/10.42.0.30/8080") != nil {
		t.Error("old endpoint chain left")
	}
	nft.RLock()
	tx := nft.LastTransaction.String()
	nft.RUnlock()
	if strings.Contains(tx, "10.42.0.31/8080 {") || strings.Contains(tx, chainServices) {
		t.Errorf("partial sync rewrote unchanged chains:\n%s", tx)
	}
}

func TestFullResyncRemovesLeftovers(t *testing.T) {
	nft := knftables.NewFake(knftables.IPv4Family, testTable)
	// A table left by an earlier run.
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "svc/old/one/tcp/80"})
	tx.Add(&knftables.Rule{Chain: "svc/old/one/tcp/80", Rule: "drop"})
	tx.Add(&knftables.Set{Name: "aff-5/old/one/tcp/80/10.0.0.1/80", Type: "ipv4_addr"})
	if err := nft.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	p := newFakeProxy(t, Config{NFT: nft}, service("ns", "web", "10.43.0.40", 80), slice("ns", "web", "w", 80, ep{ip: "10.42.0.40"}))
	if err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dump := nft.Dump(); strings.Contains(dump, "old/one") || !strings.Contains(dump, "svc/ns/web/tcp/80") {
		t.Fatalf("after full sync:\n%s", dump)
	}
}

func TestRunSyncsChangesQuickly(t *testing.T) {
	nft := knftables.NewFake(knftables.IPv4Family, testTable)
	p := newFakeProxy(t, Config{NFT: nft})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	start := time.Now()
	if _, err := p.cs.CoreV1().Services("ns").Create(ctx, service("ns", "web", "10.43.0.50", 80), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.cs.DiscoveryV1().EndpointSlices("ns").Create(ctx, slice("ns", "web", "w", 80, ep{ip: "10.42.0.50"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "service programmed", func() bool {
		return mapValue(nft, mapServiceIPs, "10.43.0.50", "tcp", "80") == "goto svc/ns/web/tcp/80"
	})
	t.Logf("programmed after %v", time.Since(start))
	mfs, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var syncs uint64
	for _, mf := range mfs {
		if mf.GetName() == "skiff_proxy_sync_duration_seconds" {
			for _, m := range mf.GetMetric() {
				syncs += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if syncs < 2 {
		t.Errorf("sync duration histogram has %d samples, want >= 2", syncs)
	}
	if v := gaugeValue(t, p.metrics.lastSync); v == 0 {
		t.Error("last sync timestamp not set")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	nft.RLock()
	defer nft.RUnlock()
	if nft.Table != nil {
		t.Error("table not removed on stop")
	}
}

func TestEndpointSelection(t *testing.T) {
	port := corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}
	ips := func(eps []endpoint) []string {
		out := []string{}
		for _, e := range eps {
			out = append(out, e.String())
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		eps        []ep
		all, local []string
	}{
		{"ready only", []ep{{ip: "10.0.0.2", node: "n1"}, {ip: "10.0.0.1", node: "n2"}, {ip: "10.0.0.3", notReady: true}},
			[]string{"10.0.0.1:80", "10.0.0.2:80"}, []string{"10.0.0.2:80"}},
		{"terminating fallback", []ep{{ip: "10.0.0.1", notReady: true, serving: true, terminal: true, node: "n1"}, {ip: "10.0.0.2", notReady: true}},
			[]string{"10.0.0.1:80"}, []string{"10.0.0.1:80"}},
		{"ready beats terminating", []ep{{ip: "10.0.0.1", notReady: true, serving: true, terminal: true}, {ip: "10.0.0.2"}},
			[]string{"10.0.0.2:80"}, []string{}},
		{"none", []ep{{ip: "10.0.0.1", notReady: true}}, []string{}, []string{}},
		{"ipv6 ignored", []ep{{ip: "fd00::1"}}, []string{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all, local := endpointsFor(
				[]*discoveryv1.EndpointSlice{slice("ns", "s", "s-1", 80, tc.eps...)}, port, "n1")
			if got := ips(all); !reflect.DeepEqual(got, tc.all) {
				t.Errorf("all = %v, want %v", got, tc.all)
			}
			if got := ips(local); !reflect.DeepEqual(got, tc.local) {
				t.Errorf("local = %v, want %v", got, tc.local)
			}
		})
	}
}

func TestSysctls(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &Proxier{cfg: Config{ProcSys: dir}, log: testLogger()}
	p.setSysctls()
	for _, f := range []string{"net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); strings.TrimSpace(string(b)) != "1" {
			t.Errorf("%s = %q", f, b)
		}
	}
	// Without the bridge module: no complaint, forwarding still set.
	_ = os.RemoveAll(filepath.Join(dir, "net/bridge"))
	p.setSysctls()
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func udp(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }

func udpSlice(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	s.Ports[0].Protocol = knftables.PtrTo(corev1.ProtocolUDP)
	return s
}

func TestRemovedUDPEndpointsClearConntrack(t *testing.T) {
	p, nft := synced(t, Config{},
		service("ns", "dns", "10.43.0.60", 53, udp),
		udpSlice(slice("ns", "dns", "d-1", 5353, ep{ip: "10.42.0.60"}, ep{ip: "10.42.0.61"})),
		service("ns", "tcp", "10.43.0.61", 53),
		slice("ns", "tcp", "t-1", 5353, ep{ip: "10.42.0.70"}))
	wantElement(t, nft, mapServiceIPs, "goto svc/ns/dns/udp/53", "10.43.0.60", "udp", "53")
	wantRules(t, nft, "ep/ns/dns/udp/53/10.42.0.60/5353", "ip saddr 10.42.0.60 jump mark-for-masquerade", "meta l4proto udp dnat to 10.42.0.60:5353")
	var cleared []string
	p.clearUDP = func(e endpoint) { cleared = append(cleared, e.String()) }
	updateAndSync(t, p, func(ctx context.Context) error {
		if _, err := p.cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, udpSlice(slice("ns", "dns", "d-1", 5353, ep{ip: "10.42.0.61"})), metav1.UpdateOptions{}); err != nil {
			return err
		}
		_, err := p.cs.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice("ns", "tcp", "t-1", 5353), metav1.UpdateOptions{})
		return err
	}, func() bool {
		d, _ := p.slices.EndpointSlices("ns").Get("d-1")
		tc, _ := p.slices.EndpointSlices("ns").Get("t-1")
		return len(d.Endpoints) == 1 && len(tc.Endpoints) == 0
	})
	if !reflect.DeepEqual(cleared, []string{"10.42.0.60:5353"}) {
		t.Fatalf("cleared %v, want only the removed UDP endpoint", cleared)
	}
}
