package servicelb

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

func node(name, ip string, ready bool) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
	}}
}

func svc(name string, typ corev1.ServiceType, class *string, ingress ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{Type: typ, LoadBalancerClass: class}}
	for _, ip := range ingress {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func TestSync(t *testing.T) {
	other := "example.com/lb"
	nodes := []runtime.Object{node("n1", "192.0.2.2", true), node("n2", "192.0.2.1", true), node("n3", "192.0.2.3", false)}
	for _, tc := range []struct {
		name    string
		svc     *corev1.Service
		want    []string
		updates int
	}{
		{"new load balancer gets ready nodes", svc("a", corev1.ServiceTypeLoadBalancer, nil), []string{"192.0.2.1", "192.0.2.2"}, 1},
		{"up to date: no write", svc("b", corev1.ServiceTypeLoadBalancer, nil, "192.0.2.1", "192.0.2.2"), []string{"192.0.2.1", "192.0.2.2"}, 0},
		{"stale node replaced", svc("c", corev1.ServiceTypeLoadBalancer, nil, "192.0.2.3"), []string{"192.0.2.1", "192.0.2.2"}, 1},
		{"other class untouched", svc("d", corev1.ServiceTypeLoadBalancer, &other, "203.0.113.9"), []string{"203.0.113.9"}, 0},
		{"type changed: cleared", svc("e", corev1.ServiceTypeClusterIP, nil, "192.0.2.1"), nil, 1},
		{"cluster IP: nothing", svc("f", corev1.ServiceTypeNodePort, nil), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(append(nodes, tc.svc)...)
			f := informers.NewSharedInformerFactory(cs, 0)
			c := NewController(slog.New(slog.NewTextHandler(io.Discard, nil)), cs, f.Core().V1().Services(), f.Core().V1().Nodes(), 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f.Start(ctx.Done())
			if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
				t.Fatal("not synced")
			}
			cs.ClearActions()
			if err := c.sync(ctx, "ns/"+tc.svc.Name); err != nil {
				t.Fatal(err)
			}
			updates := 0
			for _, a := range cs.Actions() {
				if a.GetVerb() == "update" && a.GetSubresource() == "status" {
					updates++
				}
			}
			if updates != tc.updates {
				t.Errorf("%d status updates, want %d", updates, tc.updates)
			}
			got, _ := cs.CoreV1().Services("ns").Get(ctx, tc.svc.Name, metav1.GetOptions{})
			var ips []string
			for _, ing := range got.Status.LoadBalancer.Ingress {
				ips = append(ips, ing.IP)
			}
			if !reflect.DeepEqual(ips, tc.want) {
				t.Errorf("ingress %v, want %v", ips, tc.want)
			}
		})
	}
}
