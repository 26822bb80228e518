package proxy

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

func testLogger() *slog.Logger {
	if os.Getenv("SKIFF_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type svcOpt func(*corev1.Service)

func service(ns, name, clusterIP string, port int32, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(port)}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withNodePort(np int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = np
	}
}

func withLB(np int32, ingress ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = np
		for _, ip := range ingress {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func withAffinity(seconds int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
}

type ep struct {
	ip                          string
	node                        string
	notReady, serving, terminal bool
}

func slice(ns, svc, name string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: knftables.PtrTo("http"), Protocol: knftables.PtrTo(corev1.ProtocolTCP), Port: knftables.PtrTo(port)}},
	}
	for _, e := range eps {
		var cond discoveryv1.EndpointConditions
		if e.notReady {
			cond = discoveryv1.EndpointConditions{Ready: knftables.PtrTo(false), Serving: knftables.PtrTo(e.serving), Terminating: knftables.PtrTo(e.terminal)}
		} else {
			cond.Ready = knftables.PtrTo(true)
		}
		end := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: cond}
		if e.node != "" {
			end.NodeName = knftables.PtrTo(e.node)
		}
		s.Endpoints = append(s.Endpoints, end)
	}
	return s
}

// fakeProxy is a proxier on a fake clientset and either a fake or the real nftables.
type fakeProxy struct {
	*Proxier
	cs      *fake.Clientset
	factory informers.SharedInformerFactory
	reg     *prometheus.Registry
}

func newFakeProxy(t *testing.T, cfg Config, objs ...runtime.Object) *fakeProxy {
	t.Helper()
	cs := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(cs, 0)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.Logger = testLogger()
	cfg.SkipSysctls = true
	p, err := New(cfg, cs, f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), p.hasSynced...) {
		t.Fatal("caches not synced")
	}
	return &fakeProxy{Proxier: p, cs: cs, factory: f, reg: reg}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
