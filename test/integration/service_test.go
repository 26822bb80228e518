package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

func svc(name string, typ corev1.ServiceType, nodePort int32) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: typ,
		Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}
}

func TestServiceAllocation(t *testing.T) {
	c := skifftest.Start(t, skifftest.Options{Controllers: []controlplane.ComponentFactory{}})
	ctx := context.Background()
	svcs := c.Client.CoreV1().Services("default")
	k, err := svcs.Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.43.0.1" {
		t.Fatalf("kubernetes service: %v %+v", err, k)
	}
	// Concurrent creates get distinct addresses and ports.
	var mu sync.Mutex
	ips, ports := map[string]bool{}, map[int32]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := svcs.Create(ctx, svc(fmt.Sprintf("s%d", i), corev1.ServiceTypeNodePort, 0), metav1.CreateOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ips[s.Spec.ClusterIP] || ports[s.Spec.Ports[0].NodePort] {
				t.Errorf("duplicate allocation %s %d", s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
			}
			ips[s.Spec.ClusterIP], ports[s.Spec.Ports[0].NodePort] = true, true
			if !strings.HasPrefix(s.Spec.ClusterIP, "10.43.") || s.Spec.Ports[0].NodePort < 30000 || s.Spec.Ports[0].NodePort > 32767 {
				t.Errorf("out of range: %s %d", s.Spec.ClusterIP, s.Spec.Ports[0].NodePort)
			}
		}(i)
	}
	wg.Wait()
	// A taken port is refused with Kubernetes' message; after delete it can be taken again.
	if _, err := svcs.Create(ctx, svc("fixed", corev1.ServiceTypeNodePort, 30500), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = svcs.Create(ctx, svc("clash", corev1.ServiceTypeNodePort, 30500), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is already allocated") {
		t.Fatalf("taken node port: %v", err)
	}
	if err := svcs.Delete(ctx, "fixed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, svc("clash", corev1.ServiceTypeNodePort, 30500), metav1.CreateOptions{}); err != nil {
		t.Fatalf("freed node port: %v", err)
	}
	// Out of range, and clusterIP immutable.
	bad := svc("bad", corev1.ServiceTypeClusterIP, 0)
	bad.Spec.ClusterIP = "192.168.0.1"
	if _, err := svcs.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("clusterIP outside the range: %v", err)
	}
	s0, _ := svcs.Get(ctx, "s0", metav1.GetOptions{})
	s0.Spec.ClusterIP = "10.43.0.99"
	s0.Spec.ClusterIPs = []string{"10.43.0.99"}
	if _, err := svcs.Update(ctx, s0, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("changing clusterIP: %v", err)
	}
	// Headless services get no address.
	h := svc("headless", corev1.ServiceTypeClusterIP, 0)
	h.Spec.ClusterIP = corev1.ClusterIPNone
	if got, err := svcs.Create(ctx, h, metav1.CreateOptions{}); err != nil || got.Spec.ClusterIP != "None" {
		t.Fatalf("headless: %v %v", err, got.Spec.ClusterIP)
	}
}
