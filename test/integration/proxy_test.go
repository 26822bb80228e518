package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/knftables"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/proxy"
	"github.com/skiff-sh/skiff/internal/proxy/servicelb"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func proxyEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("timed out after %v: %s", timeout, what)
	}
}

func proxyNode(t *testing.T, c *skifftest.Cluster, name, ip string, ready bool) {
	t.Helper()
	ctx := context.Background()
	n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		n, err = c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func lbIngress(c *skifftest.Cluster, name string) []string {
	s, err := c.Client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		out = append(out, ing.IP)
	}
	return out
}

// TestServiceLBSetsIngress runs the servicelb controller and the proxy (on knftables' fake)
// against the in-process control plane: a LoadBalancer service gets the Ready nodes'
// InternalIPs as ingress, which the proxy programs; the address goes when the type changes.
func TestServiceLBSetsIngress(t *testing.T) {
	nft := knftables.NewFake(knftables.IPv4Family, "skiff-proxy-it")
	c := skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{servicelb.New},
		NodeComponents: []controlplane.ComponentFactory{proxy.NewFactory(proxy.Config{
			NodeName: "node-a", NFT: nft, TableName: "skiff-proxy-it", Registerer: prometheus.NewRegistry(), SkipSysctls: true})},
	})
	ctx := context.Background()
	proxyNode(t, c, "node-a", "192.0.2.20", true)
	proxyNode(t, c, "node-b", "192.0.2.21", false)

	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web-lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 8088, Protocol: corev1.ProtocolTCP}}}}
	lb, err := c.Client.CoreV1().Services("default").Create(ctx, lb, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	proxyEventually(t, 10*time.Second, "ingress = the ready node's InternalIP", func() bool {
		return strings.Join(lbIngress(c, "web-lb"), ",") == "192.0.2.20"
	})
	// A second node becoming Ready is added.
	proxyNode(t, c, "node-b", "192.0.2.21", true)
	proxyEventually(t, 10*time.Second, "ingress = both nodes", func() bool {
		return strings.Join(lbIngress(c, "web-lb"), ",") == "192.0.2.20,192.0.2.21"
	})

	// The proxy programs the ingress address once the service has an endpoint.
	port := int32(80)
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-lb-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web-lb"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: knftables.PtrTo("http"), Port: &port, Protocol: knftables.PtrTo(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.77"}, Conditions: discoveryv1.EndpointConditions{Ready: knftables.PtrTo(true)}}},
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	id := "default/web-lb/tcp/8088"
	mapValue := func(key ...string) string {
		nft.RLock()
		defer nft.RUnlock()
		if nft.Table == nil || nft.Table.Maps["service-ips"] == nil {
			return ""
		}
		if e := nft.Table.Maps["service-ips"].FindElement(key...); e != nil {
			return strings.Join(e.Value, " ")
		}
		return ""
	}
	proxyEventually(t, 5*time.Second, "proxy programs the LB address", func() bool {
		return mapValue("192.0.2.20", "tcp", "8088") == "goto ext/"+id && mapValue(lb.Spec.ClusterIP, "tcp", "8088") == "goto svc/"+id
	})

	// Type LoadBalancer → ClusterIP: the addresses are cleared, and the proxy drops them.
	cur, err := c.Client.CoreV1().Services("default").Get(ctx, "web-lb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Type = corev1.ServiceTypeClusterIP
	for i := range cur.Spec.Ports {
		cur.Spec.Ports[i].NodePort = 0
	}
	cur.Spec.ExternalTrafficPolicy = ""
	cur.Spec.AllocateLoadBalancerNodePorts = nil
	if _, err := c.Client.CoreV1().Services("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	proxyEventually(t, 10*time.Second, "ingress cleared", func() bool { return len(lbIngress(c, "web-lb")) == 0 })
	proxyEventually(t, 5*time.Second, "proxy forgets the LB address", func() bool {
		return mapValue("192.0.2.20", "tcp", "8088") == "" && mapValue(lb.Spec.ClusterIP, "tcp", "8088") == "goto svc/"+id
	})

	// A service of another load balancer class is left alone.
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "other-lb"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: knftables.PtrTo("example.com/lb"),
		Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.Client.CoreV1().Services("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gcConsistently(t, time.Second, "other class has no ingress", func() bool { return len(lbIngress(c, "other-lb")) == 0 })
}
