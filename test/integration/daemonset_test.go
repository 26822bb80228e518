package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/polymorphichelpers"

	"github.com/skiff-sh/skiff/internal/controller/daemonset"
	"github.com/skiff-sh/skiff/internal/controlplane"
	"github.com/skiff-sh/skiff/internal/scheduler"
	"github.com/skiff-sh/skiff/internal/simnode"
	"github.com/skiff-sh/skiff/pkg/skifftest"
)

var dsGK = schema.GroupKind{Group: "apps", Kind: "DaemonSet"}

var dsTaint = corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}

// dsCluster runs 3 plain simulated nodes (sim-0..2) and one tainted dedicated=infra:NoSchedule
// (infra-0).
func dsCluster(t *testing.T) *skifftest.Cluster {
	t.Helper()
	return skifftest.Start(t, skifftest.Options{
		Controllers: []controlplane.ComponentFactory{daemonset.New, scheduler.New},
		NodeComponents: []controlplane.ComponentFactory{
			simnode.NewFactory(simnode.Config{Count: 3, StartDelay: 150 * time.Millisecond, StopDelay: 100 * time.Millisecond}),
			simnode.NewFactory(simnode.Config{Count: 1, Prefix: "infra-", Owner: "infra", Taints: []corev1.Taint{dsTaint},
				StartDelay: 150 * time.Millisecond, StopDelay: 100 * time.Millisecond}),
		},
	})
}

func dsAgent(name string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "skiff.local/web:v1"}}},
			},
		},
	}
}

// dsStatus reads the DaemonSet once and returns what `kubectl rollout status` says of it.
func dsStatus(t *testing.T, c *skifftest.Cluster, ns, name string) (string, bool, *appsv1.DaemonSet) {
	t.Helper()
	d, err := c.Client.AppsV1().DaemonSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	msg, done, err := (&polymorphichelpers.DaemonSetStatusViewer{}).Status(&unstructured.Unstructured{Object: u}, 0)
	if err != nil {
		return err.Error(), false, d
	}
	return msg, done, d
}

func dsWaitRolledOut(t *testing.T, c *skifftest.Cluster, ns, name string, desired int32) {
	t.Helper()
	wlEventually(t, 60*time.Second, "daemon set rollout", func() (bool, string) {
		// One read: a status written before the controller saw any node (desired 0) counts as
		// rolled out for kubectl, and must not pair with a later read's desired count.
		msg, done, d := dsStatus(t, c, ns, name)
		return done && msg == fmt.Sprintf("daemon set %q successfully rolled out\n", name) && d.Status.DesiredNumberScheduled == desired,
			fmt.Sprintf("%s %+v", msg, d.Status)
	})
}

// dsPodsByNode returns the live pods of the DaemonSet by node.
func dsPodsByNode(t *testing.T, c *skifftest.Cluster, ns, app string) map[string][]corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
		}
	}
	return out
}

func dsNodes(m map[string][]corev1.Pod) string {
	var s []string
	for n, ps := range m {
		s = append(s, fmt.Sprintf("%s:%d", n, len(ps)))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func dsUpdate(t *testing.T, c *skifftest.Cluster, ns, name string, mutate func(*appsv1.DaemonSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.Client.AppsV1().DaemonSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(d)
		_, err = c.Client.AppsV1().DaemonSets(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func dsUpdateNode(t *testing.T, c *skifftest.Cluster, name string, mutate func(*corev1.Node)) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(n)
		_, err = c.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonSetOnePodPerEligibleNode(t *testing.T) {
	c := dsCluster(t)
	ctx := context.Background()
	ns := "default"
	ds := dsAgent("agent")
	ds.Annotations = map[string]string{"kubernetes.io/change-cause": "create agent"}
	if _, err := c.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsWaitRolledOut(t, c, ns, "agent", 3)
	byNode := dsPodsByNode(t, c, ns, "agent")
	if dsNodes(byNode) != "sim-0:1,sim-1:1,sim-2:1" {
		t.Fatalf("pods by node %s (the tainted node must be skipped)", dsNodes(byNode))
	}
	d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	st := d.Status
	if st.DesiredNumberScheduled != 3 || st.CurrentNumberScheduled != 3 || st.NumberReady != 3 || st.UpdatedNumberScheduled != 3 ||
		st.NumberAvailable != 3 || st.NumberUnavailable != 0 || st.NumberMisscheduled != 0 || st.ObservedGeneration != d.Generation {
		t.Fatalf("status %+v", st)
	}
	crs, err := c.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil || len(crs.Items) != 1 {
		t.Fatalf("revisions %v %v", crs, err)
	}
	hash := crs.Items[0].Labels[appsv1.ControllerRevisionHashLabelKey]
	if crs.Items[0].Name != "agent-"+hash || crs.Items[0].Revision != 1 {
		t.Fatalf("revision %s %d", crs.Items[0].Name, crs.Items[0].Revision)
	}
	for node, ps := range byNode {
		p := ps[0]
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] != hash || p.Labels["pod-template-generation"] != "1" {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Key != "metadata.name" || terms[0].MatchFields[0].Values[0] != node {
			t.Errorf("pod %s affinity %+v", p.Name, terms)
		}
		var keys []string
		for _, tol := range p.Spec.Tolerations {
			keys = append(keys, tol.Key+":"+string(tol.Effect))
		}
		for _, want := range []string{"node.kubernetes.io/not-ready:NoExecute", "node.kubernetes.io/unreachable:NoExecute",
			"node.kubernetes.io/disk-pressure:NoSchedule", "node.kubernetes.io/memory-pressure:NoSchedule",
			"node.kubernetes.io/pid-pressure:NoSchedule", "node.kubernetes.io/unschedulable:NoSchedule"} {
			if !slices.Contains(keys, want) {
				t.Errorf("pod %s lacks toleration %s: %v", p.Name, want, keys)
			}
		}
		if !strings.HasPrefix(p.Name, "agent-") {
			t.Errorf("pod name %s", p.Name)
		}
	}

	// Tolerating the taint adds the dedicated node; the template change rolls every pod.
	dsUpdate(t, c, ns, "agent", func(d *appsv1.DaemonSet) {
		d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
		d.Annotations["kubernetes.io/change-cause"] = "tolerate infra"
	})
	dsWaitRolledOut(t, c, ns, "agent", 4)
	wlEventually(t, 30*time.Second, "old pods gone", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "agent")
		return dsNodes(m) == "infra-0:1,sim-0:1,sim-1:1,sim-2:1", dsNodes(m)
	})
	for _, ps := range dsPodsByNode(t, c, ns, "agent") {
		if ps[0].Labels["pod-template-generation"] != "2" {
			t.Errorf("pod %s not updated: %v", ps[0].Name, ps[0].Labels)
		}
	}

	// kubectl rollout history / undo.
	hv, err := polymorphichelpers.HistoryViewerFor(dsGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	out, err := hv.ViewHistory(ns, "agent", 0)
	if err != nil || !strings.Contains(out, "1         create agent") || !strings.Contains(out, "2         tolerate infra") {
		t.Fatalf("history %v:\n%s", err, out)
	}
	rb, err := polymorphichelpers.RollbackerFor(dsGK, c.Client)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	if msg, err := rb.Rollback(cur, nil, 2, util.DryRunNone); err != nil || !strings.Contains(msg, "skipped rollback") {
		t.Fatalf("rollback to the current revision: %q %v", msg, err)
	}
	if _, err := rb.Rollback(cur, nil, 0, util.DryRunNone); err != nil {
		t.Fatal(err)
	}
	// Without the toleration the tainted node is no longer eligible: the rolling update removes
	// its old pod without replacing it.
	dsWaitRolledOut(t, c, ns, "agent", 3)
	wlEventually(t, 30*time.Second, "undo rolled", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "agent")
		for _, ps := range m {
			if len(ps) != 1 || ps[0].Labels["pod-template-generation"] != "3" || len(ps[0].Spec.Tolerations) != 6 {
				return false, dsNodes(m)
			}
		}
		return dsNodes(m) == "sim-0:1,sim-1:1,sim-2:1", dsNodes(m)
	})
	crs, _ = c.Client.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	revs := map[string]int64{}
	for _, cr := range crs.Items {
		revs[cr.Name] = cr.Revision
	}
	if len(revs) != 2 || revs["agent-"+hash] != 3 {
		t.Fatalf("revisions after undo %v", revs)
	}

	// A NoSchedule taint added later does not evict the daemon pod: it stays, misscheduled.
	dsUpdateNode(t, c, "sim-2", func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, dsTaint) })
	wlEventually(t, 30*time.Second, "misscheduled", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "agent")
		d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		st := d.Status
		return dsNodes(m) == "sim-0:1,sim-1:1,sim-2:1" && st.DesiredNumberScheduled == 2 && st.CurrentNumberScheduled == 2 && st.NumberMisscheduled == 1,
			fmt.Sprintf("%s %+v", dsNodes(m), st)
	})

	// A nodeSelector that only sim-0 matches removes the other pods.
	dsUpdateNode(t, c, "sim-0", func(n *corev1.Node) { n.Labels["role"] = "edge" })
	dsUpdate(t, c, ns, "agent", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = map[string]string{"role": "edge"} })
	wlEventually(t, 30*time.Second, "only sim-0", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "agent")
		d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		return dsNodes(m) == "sim-0:1" && d.Status.DesiredNumberScheduled == 1 && d.Status.NumberMisscheduled == 0 && d.Status.NumberAvailable == 1,
			fmt.Sprintf("%s %+v", dsNodes(m), d.Status)
	})
	l, _ := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=DaemonSet,involvedObject.name=agent"})
	reasons := map[string]int{}
	for _, e := range l.Items {
		reasons[e.Reason]++
	}
	if reasons["SuccessfulCreate"] == 0 || reasons["SuccessfulDelete"] == 0 {
		t.Errorf("events %v", reasons)
	}
}

// dsWatch follows the DaemonSet's pods: the most live pods any node had at once, and (once
// armed) the fewest nodes with a ready pod.
type dsWatch struct {
	mu       sync.Mutex
	live     map[string]map[string]bool // node → live pod names
	ready    map[string]bool            // pod → ready
	node     map[string]string
	maxPods  int
	minReady int
	armed    bool
	log      []string // every event seen, for a failure's message
}

// arm starts counting ready nodes once every one of n pods is seen ready.
func (d *dsWatch) arm(n int) (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ready := 0
	for _, r := range d.ready {
		if r {
			ready++
		}
	}
	d.armed = ready == n && len(d.ready) == n
	return d.armed, fmt.Sprint(d.ready)
}

func dsWatchPods(t *testing.T, c *skifftest.Cluster, ns, app string) *dsWatch {
	t.Helper()
	w, err := c.Client.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	d := &dsWatch{live: map[string]map[string]bool{}, ready: map[string]bool{}, node: map[string]string{}, minReady: 1 << 30}
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			d.mu.Lock()
			node := p.Spec.NodeName
			if node == "" {
				if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
					node = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchFields[0].Values[0]
				}
			}
			if d.live[node] == nil {
				d.live[node] = map[string]bool{}
			}
			if ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				delete(d.live[node], p.Name)
				delete(d.ready, p.Name)
			} else {
				d.live[node][p.Name] = true
				d.ready[p.Name] = stsReady(p)
			}
			readyNodes := 0
			for _, pods := range d.live {
				d.maxPods = max(d.maxPods, len(pods))
				for name := range pods {
					if d.ready[name] {
						readyNodes++
						break
					}
				}
			}
			if d.armed {
				d.minReady = min(d.minReady, readyNodes)
			}
			d.log = append(d.log, fmt.Sprintf("%s %s node=%s rv=%s deleting=%v ready=%v readyNodes=%d",
				ev.Type, p.Name, node, p.ResourceVersion, p.DeletionTimestamp != nil, stsReady(p), readyNodes))
			d.mu.Unlock()
		}
	}()
	return d
}

func TestDaemonSetRollingUpdateMaxUnavailable(t *testing.T) {
	c := dsCluster(t)
	ctx := context.Background()
	ns := "default"
	ds := dsAgent("mu")
	if _, err := c.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsWaitRolledOut(t, c, ns, "mu", 3)
	w := dsWatchPods(t, c, ns, "mu")
	wlEventually(t, 10*time.Second, "watch caught up", func() (bool, string) { return w.arm(3) })
	dsUpdate(t, c, ns, "mu", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "skiff.local/web:v2" })
	dsWaitRolledOut(t, c, ns, "mu", 3)
	wlEventually(t, 30*time.Second, "all on v2", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "mu")
		for _, ps := range m {
			if len(ps) != 1 || ps[0].Spec.Containers[0].Image != "skiff.local/web:v2" {
				return false, dsNodes(m)
			}
		}
		return len(m) == 3, dsNodes(m)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxPods != 1 || w.minReady < 2 {
		t.Fatalf("maxUnavailable=1: at most %d pods per node (want 1), at least %d nodes ready (want 2); pod events:\n%s",
			w.maxPods, w.minReady, strings.Join(w.log, "\n"))
	}
}

func TestDaemonSetRollingUpdateMaxSurge(t *testing.T) {
	c := dsCluster(t)
	ctx := context.Background()
	ns := "default"
	ds := dsAgent("surge")
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: new(intstr.FromInt32(0)), MaxSurge: new(intstr.FromInt32(1))}}
	if _, err := c.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsWaitRolledOut(t, c, ns, "surge", 3)
	w := dsWatchPods(t, c, ns, "surge")
	wlEventually(t, 10*time.Second, "watch caught up", func() (bool, string) { return w.arm(3) })
	dsUpdate(t, c, ns, "surge", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "skiff.local/web:v2" })
	dsWaitRolledOut(t, c, ns, "surge", 3)
	wlEventually(t, 30*time.Second, "all on v2", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "surge")
		for _, ps := range m {
			if len(ps) != 1 || ps[0].Spec.Containers[0].Image != "skiff.local/web:v2" {
				return false, dsNodes(m)
			}
		}
		return len(m) == 3, dsNodes(m)
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxPods != 2 || w.minReady != 3 {
		t.Fatalf("maxSurge=1: at most %d pods per node (want 2), at least %d nodes ready (want 3); pod events:\n%s",
			w.maxPods, w.minReady, strings.Join(w.log, "\n"))
	}
}

func TestDaemonSetOnDelete(t *testing.T) {
	c := dsCluster(t)
	ctx := context.Background()
	ns := "default"
	ds := dsAgent("od")
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	if _, err := c.Client.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "available", func() (bool, string) {
		d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "od", metav1.GetOptions{})
		return d.Status.NumberAvailable == 3, fmt.Sprintf("%+v", d.Status)
	})
	dsUpdate(t, c, ns, "od", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = "skiff.local/web:v2" })
	wlEventually(t, 10*time.Second, "observed", func() (bool, string) {
		d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "od", metav1.GetOptions{})
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedNumberScheduled == 0, fmt.Sprintf("%+v", d.Status)
	})
	if msg, _, _ := dsStatus(t, c, ns, "od"); !strings.Contains(msg, "only available for RollingUpdate") {
		t.Errorf("rollout status for OnDelete: %q", msg)
	}
	victim := dsPodsByNode(t, c, ns, "od")["sim-1"][0]
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "replaced at the new template", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "od")
		d, _ := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "od", metav1.GetOptions{})
		ok := len(m["sim-1"]) == 1 && m["sim-1"][0].Spec.Containers[0].Image == "skiff.local/web:v2" &&
			m["sim-0"][0].Spec.Containers[0].Image == "skiff.local/web:v1" && d.Status.UpdatedNumberScheduled == 1
		return ok, fmt.Sprintf("%s %+v", dsNodes(m), d.Status)
	})
}

// A failed daemon pod is deleted and replaced, with a FailedDaemonPod warning.
func TestDaemonSetReplacesFailedPod(t *testing.T) {
	c := dsCluster(t)
	ctx := context.Background()
	ns := "default"
	if _, err := c.Client.AppsV1().DaemonSets(ns).Create(ctx, dsAgent("fp"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dsWaitRolledOut(t, c, ns, "fp", 3)
	victim := dsPodsByNode(t, c, ns, "fp")["sim-0"][0]
	victim.Status.Phase = corev1.PodFailed
	victim.Status.Conditions = nil
	if _, err := c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, &victim, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wlEventually(t, 30*time.Second, "replacement", func() (bool, string) {
		m := dsPodsByNode(t, c, ns, "fp")
		ps := m["sim-0"]
		return len(ps) == 1 && ps[0].UID != victim.UID && stsReady(&ps[0]), dsNodes(m)
	})
	l, _ := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=DaemonSet,involvedObject.name=fp,reason=FailedDaemonPod"})
	if len(l.Items) == 0 || !strings.Contains(l.Items[0].Message, "Found failed daemon pod default/"+victim.Name+" on node sim-0") {
		t.Fatalf("events %+v", l.Items)
	}
}
