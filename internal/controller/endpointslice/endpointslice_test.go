package endpointslice

import (
	"fmt"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type podOpt func(*corev1.Pod)

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func deleting(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }
func webPort(n int32) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "web", ContainerPort: n})
	}
}

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
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.0.0.10", IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080), AppProtocol: new("http")}}},
	}
	for _, m := range mut {
		m(s)
	}
	return s
}

func conds(ready, serving, terminating bool) discoveryv1.EndpointConditions {
	return discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating}
}

func onlyGroup(t *testing.T, g map[string]*Group) *Group {
	t.Helper()
	if len(g) != 1 {
		t.Fatalf("%d groups", len(g))
	}
	for _, v := range g {
		return v
	}
	return nil
}

func TestDesiredConditions(t *testing.T) {
	pods := []*corev1.Pod{
		testPod("ready", "10.1.0.2"),
		testPod("notready", "10.1.0.3", notReady),
		testPod("term", "10.1.0.4", deleting),
		testPod("termnotready", "10.1.0.5", deleting, notReady),
		testPod("done", "10.1.0.6", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		testPod("noip", ""),
	}
	pods[5].Status.PodIPs = nil
	zone := func(n string) string { return "zone-" + n }
	for _, tt := range []struct {
		name    string
		publish bool
		want    map[string]discoveryv1.EndpointConditions
	}{
		{"default", false, map[string]discoveryv1.EndpointConditions{
			"ready": conds(true, true, false), "notready": conds(false, false, false),
			"term": conds(false, true, true), "termnotready": conds(false, false, true)}},
		{"publishNotReadyAddresses", true, map[string]discoveryv1.EndpointConditions{
			"ready": conds(true, true, false), "notready": conds(true, true, false),
			"term": conds(true, true, true), "termnotready": conds(true, true, true)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			svc := testService(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = tt.publish })
			g := onlyGroup(t, Desired(svc, pods, zone))
			if g.AddressType != discoveryv1.AddressTypeIPv4 || len(g.Ports) != 1 || *g.Ports[0].Name != "http" ||
				*g.Ports[0].Port != 8080 || *g.Ports[0].Protocol != corev1.ProtocolTCP || *g.Ports[0].AppProtocol != "http" {
				t.Fatalf("group %+v", g)
			}
			if len(g.Endpoints) != len(tt.want) {
				t.Fatalf("%d endpoints: %v", len(g.Endpoints), g.Endpoints)
			}
			for _, ep := range g.Endpoints {
				name := ep.TargetRef.Name
				if !apiequality.Semantic.DeepEqual(ep.Conditions, tt.want[name]) {
					t.Errorf("%s: %v/%v/%v", name, *ep.Conditions.Ready, *ep.Conditions.Serving, *ep.Conditions.Terminating)
				}
				if *ep.NodeName != "n1" || *ep.Zone != "zone-n1" || ep.TargetRef.Kind != "Pod" || ep.TargetRef.UID == "" || ep.Hostname != nil {
					t.Errorf("%s: %+v", name, ep)
				}
			}
		})
	}
}

func TestDesiredNamedPortsAndHostnames(t *testing.T) {
	svc := testService(func(s *corev1.Service) {
		s.Spec.ClusterIP = corev1.ClusterIPNone
		s.Spec.Ports[0].TargetPort = intstr.FromString("web")
	})
	a := testPod("web-0", "10.1.0.2", webPort(8000), func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "web" })
	b := testPod("b", "10.1.0.3", webPort(9000), func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "b", "elsewhere" })
	c := testPod("c", "10.1.0.4") // no port named web
	got := Desired(svc, []*corev1.Pod{a, b, c}, nil)
	if len(got) != 3 {
		t.Fatalf("%d groups, want 3 (8000, 9000, no ports)", len(got))
	}
	seen := map[string]string{}
	for _, g := range got {
		for _, ep := range g.Endpoints {
			port := "none"
			if len(g.Ports) == 1 {
				port = fmt.Sprint(*g.Ports[0].Port)
			}
			h := ""
			if ep.Hostname != nil {
				h = *ep.Hostname
			}
			seen[ep.TargetRef.Name] = port + " " + h
		}
	}
	want := map[string]string{"web-0": "8000 web-0", "b": "9000 ", "c": "none "}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", seen, want)
	}
}

func TestDesiredDualStack(t *testing.T) {
	svc := testService(func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
	})
	p := testPod("a", "10.1.0.2")
	p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: "fd00::2"})
	got := Desired(svc, []*corev1.Pod{p, testPod("v4only", "10.1.0.3")}, nil)
	n := map[discoveryv1.AddressType]int{}
	for _, g := range got {
		n[g.AddressType] += len(g.Endpoints)
	}
	if n[discoveryv1.AddressTypeIPv4] != 2 || n[discoveryv1.AddressTypeIPv6] != 1 {
		t.Fatalf("%v", n)
	}
}

// apply simulates the API server: it applies a plan to a set of slices.
func apply(t *testing.T, cur []*discoveryv1.EndpointSlice, p Plan, next *int) []*discoveryv1.EndpointSlice {
	t.Helper()
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range cur {
		byName[s.Name] = s
	}
	for _, s := range p.Delete {
		delete(byName, s.Name)
	}
	for _, s := range p.Update {
		if byName[s.Name] == nil {
			t.Fatalf("update of missing %s", s.Name)
		}
		byName[s.Name] = s
	}
	for _, s := range p.Create {
		s = s.DeepCopy()
		*next++
		s.Name = fmt.Sprintf("%s%05d", s.GenerateName, *next)
		byName[s.Name] = s
	}
	var out []*discoveryv1.EndpointSlice
	for _, s := range byName {
		if len(s.Endpoints) > MaxEndpointsPerSlice {
			t.Fatalf("%s has %d endpoints", s.Name, len(s.Endpoints))
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func manyPods(n int, opts ...podOpt) []*corev1.Pod {
	var pods []*corev1.Pod
	for i := 0; i < n; i++ {
		pods = append(pods, testPod(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), opts...))
	}
	return pods
}

func endpointsIn(slices []*discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			out[ep.TargetRef.Name] = *ep.Conditions.Ready
		}
	}
	return out
}

func TestReconcileSplitsAndConverges(t *testing.T) {
	svc := testService()
	pods := manyPods(250)
	next := 0
	plan := Reconcile(svc, nil, Desired(svc, pods, nil), 0)
	if len(plan.Create) != 3 || len(plan.Update)+len(plan.Delete) != 0 {
		t.Fatalf("plan %d/%d/%d", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	s := plan.Create[0]
	if s.GenerateName != "web-" || s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ControllerName ||
		s.Labels["team"] != "a" || s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Fatalf("slice meta %+v", s.ObjectMeta)
	}
	if ref := metav1.GetControllerOf(s); ref == nil || ref.Kind != "Service" || ref.UID != svc.UID || ref.APIVersion != "v1" ||
		ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("owner %+v", s.OwnerReferences)
	}
	slices := apply(t, nil, plan, &next)
	if len(endpointsIn(slices)) != 250 {
		t.Fatalf("%d endpoints", len(endpointsIn(slices)))
	}

	// Nothing changed: nothing to write, whatever the order in the slices.
	for _, s := range slices {
		for i, j := 0, len(s.Endpoints)-1; i < j; i, j = i+1, j-1 {
			s.Endpoints[i], s.Endpoints[j] = s.Endpoints[j], s.Endpoints[i]
		}
	}
	if p := Reconcile(svc, slices, Desired(svc, pods, nil), 0); !p.Empty() {
		t.Fatalf("no-op plan writes %d/%d/%d", len(p.Create), len(p.Update), len(p.Delete))
	}

	// One pod turns not ready: one slice updated.
	notReady(pods[7])
	p := Reconcile(svc, slices, Desired(svc, pods, nil), 0)
	if len(p.Update) != 1 || len(p.Create)+len(p.Delete) != 0 {
		t.Fatalf("readiness plan %d/%d/%d", len(p.Create), len(p.Update), len(p.Delete))
	}
	slices = apply(t, slices, p, &next)
	if got := endpointsIn(slices); len(got) != 250 || got["p0007"] {
		t.Fatalf("p0007 ready=%v, %d endpoints", got["p0007"], len(got))
	}

	// Scale down to 30: endpoints stay where they are, emptied slices go.
	pods = pods[:30]
	p = Reconcile(svc, slices, Desired(svc, pods, nil), 0)
	slices = apply(t, slices, p, &next)
	if len(slices) > 2 || len(endpointsIn(slices)) != 30 || len(p.Create) != 0 || len(p.Delete) == 0 {
		t.Fatalf("%d slices, %d endpoints, %d created, %d deleted", len(slices), len(endpointsIn(slices)), len(p.Create), len(p.Delete))
	}
	for _, s := range slices {
		if len(s.Endpoints) == 0 {
			t.Fatalf("empty slice %s kept", s.Name)
		}
	}

	// Scale to 0: one empty placeholder slice.
	p = Reconcile(svc, slices, Desired(svc, nil, nil), 0)
	slices = apply(t, slices, p, &next)
	if len(slices) != 1 || len(slices[0].Endpoints) != 0 || len(slices[0].Ports) != 0 || len(p.Create) != 0 {
		t.Fatalf("placeholder: %d slices %+v", len(slices), slices)
	}
	if p := Reconcile(svc, slices, Desired(svc, nil, nil), 0); !p.Empty() {
		t.Fatal("placeholder rewritten")
	}

	// Back to 120: the placeholder is reused, one more slice created.
	pods = manyPods(120)
	p = Reconcile(svc, slices, Desired(svc, pods, nil), 0)
	if len(p.Update) != 1 || len(p.Create) != 1 || len(p.Delete) != 0 {
		t.Fatalf("scale up plan %d/%d/%d", len(p.Create), len(p.Update), len(p.Delete))
	}
	slices = apply(t, slices, p, &next)
	if len(endpointsIn(slices)) != 120 || len(slices) != 2 {
		t.Fatalf("%d slices %d endpoints", len(slices), len(endpointsIn(slices)))
	}
	if p := Reconcile(svc, slices, Desired(svc, pods, nil), 0); !p.Empty() {
		t.Fatal("not converged")
	}
}

func TestReconcileFixesForeignAndLabels(t *testing.T) {
	svc := testService()
	pods := manyPods(3)
	next := 0
	slices := apply(t, nil, Reconcile(svc, nil, Desired(svc, pods, nil), 0), &next)
	// A slice left by an earlier service of the same name, and changed service labels.
	old := slices[0].DeepCopy()
	old.Name, old.OwnerReferences[0].UID = "web-old", "old-uid"
	slices = append(slices, old)
	svc.Labels = map[string]string{"team": "b"}
	p := Reconcile(svc, slices, Desired(svc, pods, nil), 0)
	if len(p.Delete) != 1 || p.Delete[0].Name != "web-old" || len(p.Update) != 1 || p.Update[0].Labels["team"] != "b" || len(p.Create) != 0 {
		t.Fatalf("plan %d/%d/%d", len(p.Create), len(p.Update), len(p.Delete))
	}
}

func TestReconcileNamedPortChangeMovesEndpoint(t *testing.T) {
	svc := testService(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("web") })
	pods := []*corev1.Pod{testPod("a", "10.1.0.2", webPort(8000)), testPod("b", "10.1.0.3", webPort(8000))}
	next := 0
	slices := apply(t, nil, Reconcile(svc, nil, Desired(svc, pods, nil), 0), &next)
	if len(slices) != 1 {
		t.Fatalf("%d slices", len(slices))
	}
	pods[1] = testPod("b", "10.1.0.3", webPort(9000))
	slices = apply(t, slices, Reconcile(svc, slices, Desired(svc, pods, nil), 0), &next)
	if len(slices) != 2 {
		t.Fatalf("%d slices", len(slices))
	}
	for _, s := range slices {
		if len(s.Endpoints) != 1 || len(s.Ports) != 1 {
			t.Fatalf("slice %+v", s)
		}
		if (s.Endpoints[0].TargetRef.Name == "a") != (*s.Ports[0].Port == 8000) {
			t.Fatalf("slice %s: %s on %d", s.Name, s.Endpoints[0].TargetRef.Name, *s.Ports[0].Port)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := newTracker()
	s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{UID: "u1", Generation: 2}}
	tr.wrote("ns/web", s)
	if !tr.stale("ns/web", nil) {
		t.Fatal("created slice missing from cache is not stale")
	}
	old := s.DeepCopy()
	old.Generation = 1
	if !tr.stale("ns/web", []*discoveryv1.EndpointSlice{old}) {
		t.Fatal("older generation not stale")
	}
	if tr.stale("ns/web", []*discoveryv1.EndpointSlice{s}) || tr.stale("ns/web", nil) {
		t.Fatal("caught-up write still tracked")
	}
	tr.deleted("ns/web", "u1")
	if !tr.stale("ns/web", []*discoveryv1.EndpointSlice{s}) {
		t.Fatal("deleted slice in cache not stale")
	}
	tr.gone("u1")
	if tr.stale("ns/web", []*discoveryv1.EndpointSlice{s}) {
		t.Fatal("gone not forgotten")
	}
}
