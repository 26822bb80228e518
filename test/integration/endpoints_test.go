package integration

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/skiff-sh/skiff/internal/controller/deployment"
	"github.com/skiff-sh/skiff/internal/controller/endpoints"
	"github.com/skiff-sh/skiff/internal/controller/endpointslice"
	"github.com/skiff-sh/skiff/internal/controller/replicaset"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

// epGate is a readiness gate the tests flip to make pods ready or not (the simulated
// kubelet leaves pods with an unmet gate not ready).
const epGate = corev1.PodConditionType("skiff.sh/endpoints-test")

func epWait(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func epCluster(t *testing.T, nodes int) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{scheduler.New, replicaset.New, deployment.New, endpoints.New, endpointslice.New},
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{Count: nodes, StartDelay: 100 * time.Millisecond,
			StopDelay: time.Second})},
	})
}

func epDeployment(name string, n int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "skiff.local/web:v1",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
					ReadinessGates: []corev1.PodReadinessGate{{ConditionType: epGate}},
				},
			},
		},
	}
}

// epSetReady flips a pod's readiness gate and its Ready condition, as a readiness probe
// result would.
func epSetReady(t *testing.T, c *skifftest.Cluster, ns, name string, ready bool) {
	t.Helper()
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		set := func(ct corev1.PodConditionType) {
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == ct {
					p.Status.Conditions[i].Status, p.Status.Conditions[i].LastTransitionTime = st, now
					return
				}
			}
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: ct, Status: st, LastTransitionTime: now})
		}
		set(epGate)
		set(corev1.PodReady)
		_, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// epRunningPods waits for n running pods with IPs of the app, returning name → IP.
func epRunningPods(t *testing.T, c *skifftest.Cluster, ns, app string, n int) map[string]string {
	t.Helper()
	var out map[string]string
	epWait(t, 30*time.Second, fmt.Sprintf("%d running %s pods", n, app), func() (bool, string) {
		l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err.Error()
		}
		out = map[string]string{}
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
				out[p.Name] = p.Status.PodIP
			}
		}
		return len(out) == n && len(l.Items) == n, fmt.Sprintf("%d of %d running", len(out), len(l.Items))
	})
	return out
}

// epSummary describes Endpoints as "ready=[ips] notready=[ips] ports=[name:port]".
func epSummary(ep *corev1.Endpoints) string {
	var ready, notReady, ports []string
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range s.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
		}
	}
	sort.Strings(ready)
	sort.Strings(notReady)
	sort.Strings(ports)
	ports = uniq(ports)
	return fmt.Sprintf("ready=%v notready=%v ports=%v", ready, notReady, ports)
}

func uniq(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// sliceSummary describes the managed slices of a service the same way.
func sliceSummary(slices []discoveryv1.EndpointSlice) string {
	var ready, notReady, ports []string
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready = append(ready, e.Addresses...)
			} else {
				notReady = append(notReady, e.Addresses...)
			}
		}
		if len(s.Endpoints) > 0 {
			for _, p := range s.Ports {
				ports = append(ports, fmt.Sprintf("%s:%d", *p.Name, *p.Port))
			}
		}
	}
	sort.Strings(ready)
	sort.Strings(notReady)
	sort.Strings(ports)
	ports = uniq(ports)
	return fmt.Sprintf("ready=%v notready=%v ports=%v", ready, notReady, ports)
}

func ips(m map[string]string, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, m[n])
	}
	sort.Strings(out)
	return out
}

func managedSlices(t *testing.T, c *skifftest.Cluster, ns, svc string) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc + "," + discoveryv1.LabelManagedBy + "=" + endpointslice.ControllerName})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// epExpect waits until the service's Endpoints and slices both read want.
func epExpect(t *testing.T, c *skifftest.Cluster, ns, svc, want string, timeout time.Duration) {
	t.Helper()
	epWait(t, timeout, svc+" endpoints "+want, func() (bool, string) {
		ep, err := c.Client.CoreV1().Endpoints(ns).Get(context.Background(), svc, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got, gotSlices := epSummary(ep), sliceSummary(managedSlices(t, c, ns, svc))
		return got == want && gotSlices == want, "endpoints " + got + "; slices " + gotSlices
	})
}

func TestEndpointsFollowDeployment(t *testing.T) {
	c := epCluster(t, 1)
	ctx := context.Background()
	ns := "ep"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, epDeployment("web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := epRunningPods(t, c, ns, "web", 2)
	var names []string
	for n := range pods {
		names = append(names, n)
	}
	sort.Strings(names)
	all := ips(pods, names...)

	// Running but gated: listed as not ready, on the named port's number.
	epExpect(t, c, ns, "web", fmt.Sprintf("ready=[] notready=%v ports=[http:8080]", all), 5*time.Second)
	ep, _ := c.Client.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
	if len(ep.OwnerReferences) != 0 || ep.Labels["tier"] != "front" || ep.Labels[endpoints.LabelManagedBy] != endpoints.Name {
		t.Fatalf("endpoints metadata: %+v", ep.ObjectMeta)
	}
	for _, s := range ep.Subsets {
		for _, a := range s.NotReadyAddresses {
			if a.TargetRef == nil || a.TargetRef.Kind != "Pod" || pods[a.TargetRef.Name] != a.IP || a.NodeName == nil || *a.NodeName == "" {
				t.Fatalf("address %+v", a)
			}
		}
	}
	slices := managedSlices(t, c, ns, "web")
	if len(slices) != 1 {
		t.Fatalf("%d slices", len(slices))
	}
	s := slices[0]
	if ref := metav1.GetControllerOf(&s); ref == nil || ref.UID != svc.UID || ref.Kind != "Service" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("slice owner %+v", s.OwnerReferences)
	}
	if !strings.HasPrefix(s.Name, "web-") || s.AddressType != discoveryv1.AddressTypeIPv4 || s.Labels["tier"] != "front" {
		t.Fatalf("slice %+v", s.ObjectMeta)
	}
	for _, e := range s.Endpoints {
		if *e.Conditions.Serving || *e.Conditions.Terminating || e.NodeName == nil || e.TargetRef == nil || pods[e.TargetRef.Name] != e.Addresses[0] {
			t.Fatalf("endpoint %+v", e)
		}
	}

	// Ready.
	for _, n := range names {
		epSetReady(t, c, ns, n, true)
	}
	epExpect(t, c, ns, "web", fmt.Sprintf("ready=%v notready=[] ports=[http:8080]", all), 5*time.Second)

	// One pod turns not ready: both views follow within a second.
	start := time.Now()
	epSetReady(t, c, ns, names[0], false)
	epExpect(t, c, ns, "web", fmt.Sprintf("ready=%v notready=%v ports=[http:8080]", ips(pods, names[1]), ips(pods, names[0])), time.Second)
	t.Logf("readiness change reflected in %v", time.Since(start).Round(time.Millisecond))

	// Scale to zero. While the pods terminate (the simulated kubelet takes a second), the
	// slices keep them with terminating=true, ready=false and serving as their readiness.
	sw, err := c.Client.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web"})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()
	terminating := make(chan string, 100)
	go func() {
		for ev := range sw.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Terminating != nil && *e.Conditions.Terminating {
					terminating <- fmt.Sprintf("%s ready=%v serving=%v", e.TargetRef.Name, *e.Conditions.Ready, *e.Conditions.Serving)
				}
			}
		}
	}()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Replicas = new(int32(0))
		_, err = c.Client.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	want := map[string]bool{names[0] + " ready=false serving=false": true, names[1] + " ready=false serving=true": true}
	epWait(t, 5*time.Second, "terminating endpoints", func() (bool, string) {
		for {
			select {
			case s := <-terminating:
				if !want[s] {
					t.Fatalf("unexpected terminating endpoint %s", s)
				}
				seen[s] = true
				continue
			default:
			}
			break
		}
		return len(seen) == len(want), fmt.Sprint(seen)
	})
	epExpect(t, c, ns, "web", "ready=[] notready=[] ports=[]", 15*time.Second)
	if slices := managedSlices(t, c, ns, "web"); len(slices) != 1 {
		t.Fatalf("%d slices after scaling to 0, want the placeholder", len(slices))
	}

	// Deleting the service deletes both.
	if err := c.Client.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	epWait(t, 5*time.Second, "endpoints and slices deleted", func() (bool, string) {
		_, err := c.Client.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		n := len(managedSlices(t, c, ns, "web"))
		return apierrors.IsNotFound(err) && n == 0, fmt.Sprintf("endpoints get: %v; %d slices", err, n)
	})
}

func TestEndpointsHeadlessPublishNotReady(t *testing.T) {
	c := epCluster(t, 1)
	ctx := context.Background()
	ns := "default"
	// StatefulSet-like pods: hostname and subdomain, never ready.
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("db-%d", i)
		_, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "db"}},
			Spec: corev1.PodSpec{Hostname: name, Subdomain: "db", ReadinessGates: []corev1.PodReadinessGate{{ConditionType: epGate}},
				Containers: []corev1.Container{{Name: "db", Image: "skiff.local/web:v1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "db"}, ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{{Name: "sql", Port: 5432}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := epRunningPods(t, c, ns, "db", 2)
	epExpect(t, c, ns, "db", fmt.Sprintf("ready=%v notready=[] ports=[sql:5432]", ips(pods, "db-0", "db-1")), 5*time.Second)
	ep, _ := c.Client.CoreV1().Endpoints(ns).Get(ctx, "db", metav1.GetOptions{})
	hosts := map[string]string{}
	for _, a := range ep.Subsets[0].Addresses {
		hosts[a.IP] = a.Hostname
	}
	if hosts[pods["db-0"]] != "db-0" || hosts[pods["db-1"]] != "db-1" {
		t.Fatalf("hostnames %v", hosts)
	}
	if _, ok := ep.Labels[corev1.IsHeadlessService]; !ok {
		t.Fatalf("labels %v", ep.Labels)
	}
	for _, s := range managedSlices(t, c, ns, "db") {
		for _, e := range s.Endpoints {
			if e.Hostname == nil || *e.Hostname != e.TargetRef.Name || !*e.Conditions.Ready || !*e.Conditions.Serving {
				t.Fatalf("endpoint %+v", e)
			}
		}
	}
}

func TestEndpointsLeaveSelectorlessServicesAlone(t *testing.T) {
	c := epCluster(t, 1)
	ctx := context.Background()
	ns := "default"
	_, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "db", Port: 5432}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manual, err := c.Client.CoreV1().Endpoints(ns).Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "external"},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}},
			Ports: []corev1.EndpointPort{{Name: "db", Port: 5432, Protocol: corev1.ProtocolTCP}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	foreignSlice, err := c.Client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "external-manual", Labels: map[string]string{
			discoveryv1.LabelServiceName: "external", discoveryv1.LabelManagedBy: "someone-else"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeEP, err := c.Client.CoreV1().Endpoints(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	// Touch the selector-less service so that both controllers sync it, then wait for a
	// service created afterwards to get its endpoints: the controllers are past it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.Client.CoreV1().Services(ns).Get(ctx, "external", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Labels = map[string]string{"touched": "yes"}
		_, err = c.Client.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sentinel"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "none"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	epExpect(t, c, ns, "sentinel", "ready=[] notready=[] ports=[]", 5*time.Second)

	got, err := c.Client.CoreV1().Endpoints(ns).Get(ctx, "external", metav1.GetOptions{})
	if err != nil || got.ResourceVersion != manual.ResourceVersion {
		t.Fatalf("hand-written endpoints changed: %v %+v", err, got)
	}
	gotSlice, err := c.Client.DiscoveryV1().EndpointSlices(ns).Get(ctx, "external-manual", metav1.GetOptions{})
	if err != nil || gotSlice.ResourceVersion != foreignSlice.ResourceVersion {
		t.Fatalf("foreign slice changed: %v %+v", err, gotSlice)
	}
	if n := len(managedSlices(t, c, ns, "external")); n != 0 {
		t.Fatalf("%d managed slices for a selector-less service", n)
	}
	if kubeEP != nil && kubeEP.ResourceVersion != "" {
		now, err := c.Client.CoreV1().Endpoints(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil || now.ResourceVersion != kubeEP.ResourceVersion {
			t.Fatalf("kubernetes endpoints changed: %v", err)
		}
	}
}

// TestEndpointsScale runs many services with a few pods each on simulated nodes and checks
// that, once converged, the controllers write nothing more (no-op syncs), and that the
// writes on the way were about one per object change. SKIFF_ENDPOINTS_SERVICES sets the
// number of services (default 1000).
func TestEndpointsScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	services, perService := 1000, 2
	if v, err := strconv.Atoi(os.Getenv("SKIFF_ENDPOINTS_SERVICES")); err == nil && v > 0 {
		services = v
	}
	nodes := (services*perService + 99) / 100
	c := skifftest.Start(t, skifftest.Options{
		Controllers:    []controlplane.ComponentFactory{endpoints.New, endpointslice.New},
		NodeComponents: []controlplane.ComponentFactory{simnode.NewFactory(simnode.Config{Count: nodes, StartDelay: 100 * time.Millisecond})},
	})
	ctx := context.Background()
	ns := "scale"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var nodeNames []string
	epWait(t, 60*time.Second, "simulated nodes", func() (bool, string) {
		l, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		nodeNames = nodeNames[:0]
		for _, n := range l.Items {
			nodeNames = append(nodeNames, n.Name)
		}
		return len(nodeNames) == nodes, fmt.Sprintf("%d of %d", len(nodeNames), nodes)
	})

	// Count every write the controllers make, through watches.
	var epEvents, sliceEvents atomic.Int64
	w1, err := c.Client.CoreV1().Endpoints(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Stop()
	w2, err := c.Client.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	count := func(w watch.Interface, n *atomic.Int64) {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Bookmark && ev.Type != watch.Error {
				n.Add(1)
			}
		}
	}
	go count(w1, &epEvents)
	go count(w2, &sliceEvents)

	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				app := fmt.Sprintf("s%04d", i)
				_, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: app},
					Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
						Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
				}, metav1.CreateOptions{})
				if err != nil {
					failed.Add(1)
					continue
				}
				for j := 0; j < perService; j++ {
					_, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
						ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", app, j), Labels: map[string]string{"app": app}},
						Spec: corev1.PodSpec{NodeName: nodeNames[(i*perService+j)%len(nodeNames)],
							Containers: []corev1.Container{{Name: "c", Image: "skiff.local/web:v1"}}},
					}, metav1.CreateOptions{})
					if err != nil {
						failed.Add(1)
					}
				}
			}
		}()
	}
	for i := 0; i < services; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d creates failed", n)
	}
	t.Logf("created %d services and %d pods in %v", services, services*perService, time.Since(start).Round(time.Millisecond))

	want := services * perService
	epWait(t, 120*time.Second, "every pod ready in endpoints and slices", func() (bool, string) {
		eps, err := c.Client.CoreV1().Endpoints(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		slices, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		readyEP, readySlice := 0, 0
		for _, e := range eps.Items {
			for _, s := range e.Subsets {
				readyEP += len(s.Addresses)
			}
		}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if *e.Conditions.Ready {
					readySlice++
				}
			}
		}
		return readyEP == want && readySlice == want && len(eps.Items) == services && len(slices.Items) == services,
			fmt.Sprintf("%d endpoints objects with %d ready, %d slices with %d ready", len(eps.Items), readyEP, len(slices.Items), readySlice)
	})
	converged := time.Since(start)
	e1, s1 := epEvents.Load(), sliceEvents.Load()
	t.Logf("converged in %v: %d Endpoints writes, %d EndpointSlice writes (%d services, %d pods)",
		converged.Round(time.Millisecond), e1, s1, services, want)
	// Each pod goes through: created (no IP), running with IP (maybe not yet ready), ready:
	// at most a few writes per pod and service, never a storm.
	if limit := int64(services + 3*want); e1 > limit || s1 > limit {
		t.Errorf("too many writes: %d endpoints, %d slices (limit %d)", e1, s1, limit)
	}

	// Annotate every service: each update event re-syncs the service in both controllers,
	// and since the endpoints are unchanged those syncs must write nothing.
	var wg2 sync.WaitGroup
	work2 := make(chan int)
	for w := 0; w < 16; w++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := range work2 {
				name := fmt.Sprintf("s%04d", i)
				_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
					s, err := c.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if s.Annotations == nil {
						s.Annotations = map[string]string{}
					}
					s.Annotations["resync"] = "1"
					_, err = c.Client.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
					return err
				})
			}
		}()
	}
	for i := 0; i < services; i++ {
		work2 <- i
	}
	close(work2)
	wg2.Wait()
	// The last service's update has been seen once a fresh service created after it gets
	// its endpoints; then give the queues their tail (workers process in parallel).
	if _, err := c.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-sentinel"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "none"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	epExpect(t, c, ns, "zz-sentinel", "ready=[] notready=[] ports=[]", 30*time.Second)
	e2, s2 := epEvents.Load()-e1, sliceEvents.Load()-s1
	// The sentinel writes one Endpoints and one slice (maybe observed a little late).
	if e2 > 1 || s2 > 1 {
		t.Errorf("annotation-only service updates caused %d Endpoints and %d EndpointSlice writes", e2-1, s2-1)
	}
}
