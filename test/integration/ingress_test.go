package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/ingress"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// ingressEventually polls f until it holds; on timeout it reports *last, if given.
func ingressEventually(t *testing.T, what string, f func() bool, last ...*string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(last) > 0 {
		t.Fatalf("timed out waiting for %s (last: %s)", what, *last[0])
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestIngressClassAndStatus runs the ingress controller against the real API: it creates
// the default IngressClass, proxies an Ingress without class to an endpoint listed in an
// EndpointSlice, and reports the node's address in the Ingress status.
func TestIngressClassAndStatus(t *testing.T) {
	got := make(chan *ingress.Controller, 1)
	factory := ingress.NewFactory(ingress.Config{ListenHTTP: []string{"127.0.0.1:0"}, ListenHTTPS: []string{},
		NodeIP: "192.0.2.10"})
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}, NodeComponents: []controlplane.ComponentFactory{
		func(cc *controller.Context) (controller.Component, error) {
			comp, err := factory(cc)
			if err == nil {
				got <- comp.(*ingress.Controller)
			}
			return comp, err
		},
	}})
	ctx := context.Background()
	ic := <-got
	select {
	case <-ic.Ready():
	case <-time.After(15 * time.Second):
		t.Fatal("ingress controller not ready")
	}
	httpAddrs, _ := ic.Addrs()

	var class *networkingv1.IngressClass
	ingressEventually(t, "IngressClass skiff", func() bool {
		var err error
		class, err = c.Client.NetworkingV1().IngressClasses().Get(ctx, "skiff", metav1.GetOptions{})
		return err == nil
	})
	if class.Spec.Controller != "skiff.sh/ingress" || class.Annotations["ingressclass.kubernetes.io/is-default-class"] != "true" {
		t.Fatalf("IngressClass: controller %q annotations %v", class.Spec.Controller, class.Annotations)
	}

	// The API refuses loopback endpoint addresses: the backend listens on the machine's own
	// address, as a pod would on its IP.
	ip := hostIPv4(t)
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	backend := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s%s", r.Host, r.URL.Path)
	})}}
	backend.Start()
	defer backend.Close()
	_, portStr, _ := net.SplitHostPort(backend.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	if _, err := c.Client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "hello-1", Labels: map[string]string{discoveryv1.LabelServiceName: "hello"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(port))}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pt := networkingv1.PathTypePrefix
	if _, err := c.Client.NetworkingV1().Ingresses("default").Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: "hello.example.com",
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/app", PathType: &pt,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "hello",
					Port: networkingv1.ServiceBackendPort{Name: "http"}}},
			}}}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ingressEventually(t, "Ingress status address", func() bool {
		ing, err := c.Client.NetworkingV1().Ingresses("default").Get(ctx, "hello", metav1.GetOptions{})
		return err == nil && len(ing.Status.LoadBalancer.Ingress) == 1 && ing.Status.LoadBalancer.Ingress[0].IP == "192.0.2.10"
	})

	var last string
	ingressEventually(t, "proxied request", func() bool {
		req, _ := http.NewRequest("GET", "http://"+httpAddrs[0]+"/app/index", nil)
		req.Host = "hello.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == 200 && string(b) == "hello from hello.example.com/app/index"
	}, &last)
	req, _ := http.NewRequest("GET", "http://"+httpAddrs[0]+"/other", nil)
	req.Host = "hello.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unmatched path: %d, want 404", resp.StatusCode)
	}
}

// hostIPv4 is a non-loopback IPv4 address of this machine (the test is skipped without one).
func hostIPv4(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to put in an EndpointSlice")
	return ""
}
