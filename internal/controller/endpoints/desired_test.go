package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type podOpt func(*corev1.Pod)

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func deleting(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }
func phase(ph corev1.PodPhase) podOpt {
	return func(p *corev1.Pod) { p.Status.Phase = ph }
}
func noIP(p *corev1.Pod) { p.Status.PodIP, p.Status.PodIPs = "", nil }
func hostname(h, sub string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = h, sub }
}
func port(name string, n int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: corev1.ProtocolTCP})
	}
}

// testPod is a running, ready pod labelled app=web on node n1.
func testPod(name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func testService(mut ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.10",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
	}
	for _, m := range mut {
		m(s)
	}
	return s
}

func addr(p *corev1.Pod, host string) corev1.EndpointAddress {
	a := corev1.EndpointAddress{IP: p.Status.PodIP, Hostname: host, NodeName: new(p.Spec.NodeName),
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
	return a
}

func httpPort(n int32) []corev1.EndpointPort {
	return []corev1.EndpointPort{{Name: "http", Port: n, Protocol: corev1.ProtocolTCP}}
}

func TestDesired(t *testing.T) {
	a := testPod("a", "10.1.0.2")
	b := testPod("b", "10.1.0.3", notReady)
	term := testPod("t", "10.1.0.4", deleting)
	done := testPod("d", "10.1.0.5", phase(corev1.PodSucceeded))
	failed := testPod("f", "10.1.0.6", phase(corev1.PodFailed))
	pending := testPod("p", "", noIP)
	webA := testPod("wa", "10.1.0.7", port("web", 8000))
	webB := testPod("wb", "10.1.0.8", port("web", 9000))
	nameless := testPod("nn", "10.1.0.9")
	sts := testPod("web-0", "10.1.0.10", hostname("web-0", "web"))
	other := testPod("x-0", "10.1.0.11", hostname("x-0", "other"))

	tests := []struct {
		name string
		svc  *corev1.Service
		pods []*corev1.Pod
		want []corev1.EndpointSubset
	}{{
		name: "ready and not ready; terminal, deleting and IP-less pods left out",
		svc:  testService(),
		pods: []*corev1.Pod{b, a, term, done, failed, pending},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, "")}, NotReadyAddresses: []corev1.EndpointAddress{addr(b, "")}, Ports: httpPort(8080)}},
	}, {
		name: "publishNotReadyAddresses makes every pod ready, deleting ones included",
		svc:  testService(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }),
		pods: []*corev1.Pod{a, b, term, done},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, ""), addr(b, ""), addr(term, "")}, Ports: httpPort(8080)}},
	}, {
		name: "named target port resolves per pod; pods without it are left out",
		svc:  testService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("web") }),
		pods: []*corev1.Pod{webA, webB, nameless},
		want: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{addr(webA, "")}, Ports: httpPort(8000)},
			{Addresses: []corev1.EndpointAddress{addr(webB, "")}, Ports: httpPort(9000)},
		},
	}, {
		name: "default target port is the port",
		svc:  testService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.IntOrString{} }),
		pods: []*corev1.Pod{a},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, "")}, Ports: httpPort(80)}},
	}, {
		name: "multi-port: a pod lacking one named port keeps the other",
		svc: testService(func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "admin", Port: 81, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")})
		}),
		pods: []*corev1.Pod{webA, nameless},
		want: []corev1.EndpointSubset{
			{Addresses: []corev1.EndpointAddress{addr(webA, "")}, Ports: []corev1.EndpointPort{
				{Name: "admin", Port: 8000, Protocol: corev1.ProtocolTCP}, {Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}},
			{Addresses: []corev1.EndpointAddress{addr(nameless, "")}, Ports: httpPort(8080)},
		},
	}, {
		name: "headless without ports: hostname when the subdomain is the service",
		svc: testService(func(s *corev1.Service) {
			s.Spec.ClusterIP, s.Spec.Ports = corev1.ClusterIPNone, nil
		}),
		pods: []*corev1.Pod{sts, other},
		want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(sts, "web-0"), addr(other, "")}}},
	}, {
		name: "no pods",
		svc:  testService(),
		want: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := Desired(tt.svc, tt.pods, 0)
			if truncated {
				t.Error("truncated")
			}
			if !apiequality.Semantic.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
			// Canonical is stable over its own output and over shuffled input.
			if !apiequality.Semantic.DeepEqual(Canonical(got), got) {
				t.Fatalf("not canonical: %+v", Canonical(got))
			}
		})
	}
}

func TestDesiredTruncatesReadyFirst(t *testing.T) {
	var pods []*corev1.Pod
	for i := 0; i < 8; i++ {
		var opts []podOpt
		if i%2 == 0 {
			opts = append(opts, notReady)
		}
		pods = append(pods, testPod(fmt.Sprint("p", i), fmt.Sprintf("10.1.0.%d", 10+i), opts...))
	}
	got, truncated := Desired(testService(), pods, 5)
	if !truncated || len(got) != 1 || len(got[0].Addresses) != 4 || len(got[0].NotReadyAddresses) != 1 {
		t.Fatalf("truncated=%v %+v", truncated, got)
	}
}

func TestCanonicalRepacks(t *testing.T) {
	a, b := testPod("a", "10.1.0.2"), testPod("b", "10.1.0.3")
	in := []corev1.EndpointSubset{
		{Addresses: []corev1.EndpointAddress{addr(b, "")}, Ports: httpPort(8080)},
		{Addresses: []corev1.EndpointAddress{addr(a, "")}, Ports: []corev1.EndpointPort{{Name: "http", Port: 8080}}},
	}
	want := []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, ""), addr(b, "")}, Ports: httpPort(8080)}}
	if got := Canonical(in); !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

func TestPodChanged(t *testing.T) {
	base := testPod("a", "10.1.0.2")
	same := base.DeepCopy()
	same.ResourceVersion = "2"
	same.Status.Conditions = append(same.Status.Conditions, corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue})
	if PodChanged(base, same) {
		t.Error("irrelevant change counted")
	}
	for name, mut := range map[string]podOpt{
		"ready": notReady, "deleting": deleting, "ip": noIP, "terminal": phase(corev1.PodFailed),
		"hostname": hostname("h", "web"), "ports": port("x", 1),
		"labels": func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} },
	} {
		p := base.DeepCopy()
		mut(p)
		if !PodChanged(base, p) {
			t.Errorf("%s change not counted", name)
		}
	}
}

func TestServiceIndex(t *testing.T) {
	x := NewServiceIndex()
	x.Set(testService())
	x.Set(testService(func(s *corev1.Service) { s.Name, s.Spec.Selector = "none", nil }))
	x.Set(testService(func(s *corev1.Service) { s.Name, s.Spec.Type = "ext", corev1.ServiceTypeExternalName }))
	x.Set(testService(func(s *corev1.Service) { s.Name, s.Spec.Selector = "db", map[string]string{"app": "db"} }))
	if got := x.Matching("ns", map[string]string{"app": "web", "x": "y"}); len(got) != 1 || got[0] != "web" {
		t.Fatalf("matching %v", got)
	}
	if got := x.Matching("other", map[string]string{"app": "web"}); len(got) != 0 {
		t.Fatalf("other namespace %v", got)
	}
	x.Delete("ns", "web")
	if got := x.Matching("ns", map[string]string{"app": "web"}); len(got) != 0 {
		t.Fatalf("after delete %v", got)
	}
}
