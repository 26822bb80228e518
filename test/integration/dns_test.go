package integration

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
	skiffdns "github.com/skiff-sh/skiff/internal/dns"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func dnsEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dnsQuery(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := (&dns.Client{Net: network, Timeout: 3 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return r
}

func dnsPort(t *testing.T, addr string) int32 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return int32(ap.Port())
}

func dnsAddrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func TestDNSOnControlPlane(t *testing.T) {
	var srv *skiffdns.Server
	cfg := skiffdns.Config{ListenAddresses: []string{"127.0.0.1:0"}, NodeName: "node-1", NodeIP: "192.0.2.10",
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
	factory := func(cc *controller.Context) (controller.Component, error) {
		c, err := skiffdns.NewFactory(cfg)(cc)
		if err == nil {
			srv = c.(*skiffdns.Server)
		}
		return c, err
	}
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{},
		NodeComponents: []controlplane.ComponentFactory{factory}})
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := srv.WaitReady(wctx); err != nil {
		t.Fatalf("dns not ready: %v", err)
	}
	addr := srv.Addr()

	// The component publishes itself: kube-dns with the well-known IP and this node's slice.
	var kubeDNS *corev1.Service
	dnsEventually(t, "kube-dns service", func() bool {
		s, err := c.Client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		kubeDNS = s
		return err == nil
	})
	if kubeDNS.Spec.ClusterIP != skiffdns.DefaultServiceIP || kubeDNS.Labels["k8s-app"] != "kube-dns" || len(kubeDNS.Spec.Selector) != 0 {
		t.Fatalf("kube-dns: clusterIP %s labels %v selector %v", kubeDNS.Spec.ClusterIP, kubeDNS.Labels, kubeDNS.Spec.Selector)
	}
	var es *discoveryv1.EndpointSlice
	dnsEventually(t, "kube-dns-node-1 endpoint slice", func() bool {
		s, err := c.Client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-node-1", metav1.GetOptions{})
		es = s
		return err == nil
	})
	if es.Labels[discoveryv1.LabelServiceName] != "kube-dns" || es.Endpoints[0].Addresses[0] != "192.0.2.10" ||
		len(es.Ports) != 2 || *es.Ports[0].Port != dnsPort(t, addr) {
		t.Fatalf("slice: labels %v endpoints %+v ports %+v", es.Labels, es.Endpoints, es.Ports)
	}
	dnsEventually(t, "kube-dns resolves", func() bool {
		got := dnsAddrs(dnsQuery(t, addr, "udp", "kube-dns.kube-system.svc.cluster.local", dns.TypeA))
		return len(got) == 1 && got[0] == skiffdns.DefaultServiceIP
	})

	// A service created through the API resolves, over UDP and TCP.
	svc, err := c.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "hello"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp", "tcp"} {
		dnsEventually(t, "hello resolves over "+network, func() bool {
			got := dnsAddrs(dnsQuery(t, addr, network, "hello.default.svc.cluster.local", dns.TypeA))
			return len(got) == 1 && got[0] == svc.Spec.ClusterIP
		})
	}
	r := dnsQuery(t, addr, "udp", "_http._tcp.hello.default.svc.cluster.local", dns.TypeSRV)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SRV).Port != 80 {
		t.Fatalf("SRV: %v", r)
	}

	// A headless service answers with its slice's ready addresses.
	if _, err := c.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "peers"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "p", Port: 7000}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "peers-1", Labels: map[string]string{discoveryv1.LabelServiceName: "peers"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.0.11"}, Hostname: ptr.To("peer-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"10.42.0.12"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(int32(7000)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dnsEventually(t, "peer-0 resolves", func() bool {
		got := dnsAddrs(dnsQuery(t, addr, "udp", "peer-0.peers.default.svc.cluster.local", dns.TypeA))
		return len(got) == 1 && got[0] == "10.42.0.11"
	})
	if got := dnsAddrs(dnsQuery(t, addr, "udp", "peers.default.svc.cluster.local", dns.TypeA)); len(got) != 1 {
		t.Fatalf("headless answers %v, want only the ready address", got)
	}
	if r := dnsQuery(t, addr, "udp", "nothing.default.svc.cluster.local", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown service: %v", r)
	}
}
