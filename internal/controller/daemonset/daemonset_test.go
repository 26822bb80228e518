package daemonset

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-sh/skiff/internal/controller/history"
)

func testDS() *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: "ns", UID: "ds-uid",
			Annotations: map[string]string{appsv1.DeprecatedTemplateGeneration: "2"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "img:v1"}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: new(intstr.FromInt32(1)), MaxSurge: new(intstr.FromInt32(0))}},
		},
	}
}

func testNode(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
}

func TestNodeShouldRun(t *testing.T) {
	noSched := corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}
	noExec := corev1.Taint{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoExecute}
	for _, tc := range []struct {
		name                 string
		node                 *corev1.Node
		mutate               func(*appsv1.DaemonSet)
		shouldRun, shouldCon bool
	}{
		{name: "plain node", node: testNode("n", nil), shouldRun: true, shouldCon: true},
		{name: "nodeSelector matches", node: testNode("n", map[string]string{"role": "edge"}),
			mutate: func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = map[string]string{"role": "edge"} }, shouldRun: true, shouldCon: true},
		{name: "nodeSelector mismatch", node: testNode("n", map[string]string{"role": "core"}),
			mutate: func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = map[string]string{"role": "edge"} }},
		{name: "node affinity mismatch", node: testNode("n", nil), mutate: func(d *appsv1.DaemonSet) {
			d.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}}}}}}
		}},
		{name: "untolerated NoSchedule keeps running pods", node: testNode("n", nil, noSched), shouldCon: true},
		{name: "untolerated NoExecute", node: testNode("n", nil, noExec)},
		{name: "tolerated NoSchedule", node: testNode("n", nil, noSched), mutate: func(d *appsv1.DaemonSet) {
			d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		}, shouldRun: true, shouldCon: true},
		{name: "unschedulable node", node: testNode("n", nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}),
			shouldRun: true, shouldCon: true},
		{name: "not-ready node", node: testNode("n", nil, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}),
			shouldRun: true, shouldCon: true},
		{name: "memory pressure", node: testNode("n", nil, corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}),
			shouldRun: true, shouldCon: true},
		{name: "network unavailable without hostNetwork", node: testNode("n", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}),
			shouldCon: true},
		{name: "network unavailable with hostNetwork", node: testNode("n", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}),
			mutate: func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.HostNetwork = true }, shouldRun: true, shouldCon: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := testDS()
			if tc.mutate != nil {
				tc.mutate(ds)
			}
			got := nodeShouldRun(tc.node, ds)
			if got.shouldRun != tc.shouldRun || got.shouldContinue != tc.shouldCon {
				t.Fatalf("got %+v, want run=%v continue=%v", got, tc.shouldRun, tc.shouldCon)
			}
		})
	}
}

func TestPodTemplatePinsNodeAndTolerates(t *testing.T) {
	ds := testDS()
	ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
	tmpl := podTemplate(ds, "h1", "node-a")
	if tmpl.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "h1" || tmpl.Labels[templateGenerationLabel] != "2" || tmpl.Labels["app"] != "agent" {
		t.Fatalf("labels %v", tmpl.Labels)
	}
	terms := tmpl.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	want := []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"node-a"}}}}}
	if !reflect.DeepEqual(terms, want) {
		t.Fatalf("affinity %+v", terms)
	}
	if len(tmpl.Spec.Tolerations) != 6 {
		t.Fatalf("tolerations %+v (the template's not-ready toleration must not be duplicated)", tmpl.Spec.Tolerations)
	}
	if ds.Spec.Template.Spec.Affinity != nil || ds.Spec.Template.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "" {
		t.Fatal("the DaemonSet's own template was modified")
	}
}

// pod builds a daemon pod on node; updated says whether it carries the current hash.
func pod(name, node string, updated, available bool, age int) *corev1.Pod {
	hash := "old"
	if updated {
		hash = "new"
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
		CreationTimestamp: metav1.NewTime(time.Unix(int64(1000+age), 0)),
		Labels:            map[string]string{"app": "agent", appsv1.DefaultDaemonSetUniqueLabelKey: hash}},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if available {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func states(ds *appsv1.DaemonSet, nodes []*corev1.Node, pods ...*corev1.Pod) map[string]*nodeState {
	s, _ := groupByNode(ds, nodes, pods)
	return s
}

func available(p *corev1.Pod) bool {
	return len(p.Status.Conditions) > 0 && p.Status.Conditions[0].Status == corev1.ConditionTrue
}

func TestPlanNodes(t *testing.T) {
	ds := testDS()
	nodes := []*corev1.Node{testNode("a", nil), testNode("b", nil), testNode("c", map[string]string{"x": "y"}),
		testNode("d", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute})}
	failed := pod("failed", "b", true, false, 0)
	failed.Status.Phase = corev1.PodFailed
	terminating := pod("going", "c", true, true, 0)
	terminating.DeletionTimestamp = &metav1.Time{}
	st := states(ds, nodes,
		pod("a-old", "a", true, true, 1), pod("a-dup", "a", true, true, 2), // duplicate: the younger goes
		failed,                        // replaced once deleted
		terminating,                   // c: wait for it
		pod("d1", "d", true, true, 0)) // evicted by NoExecute
	orphan := pod("orphan", "", true, false, 0)
	orphan.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"gone"}}}}}}}}
	_, orphans := groupByNode(ds, nodes, []*corev1.Pod{orphan})
	p := planNodes(ds, "new", st, orphans, func(string) bool { return true })
	if len(p.create) != 0 {
		t.Errorf("create %v (b waits for its failed pod to go, c for its terminating one)", p.create)
	}
	if got, want := names(p.delete), []string{"a-dup", "d1", "failed", "orphan"}; !reflect.DeepEqual(got, want) {
		t.Errorf("delete %v, want %v", got, want)
	}

	// In backoff, the failed pod on b stays (and b gets no new pod yet).
	st = states(ds, nodes[:2], failed)
	if p := planNodes(ds, "new", st, nil, func(string) bool { return false }); !reflect.DeepEqual(p.create, []string{"a"}) || len(p.delete) != 0 {
		t.Errorf("failed pod in backoff: %+v", p)
	}

	st = states(ds, nodes[:2])
	if p := planNodes(ds, "new", st, nil, func(string) bool { return true }); !reflect.DeepEqual(p.create, []string{"a", "b"}) || len(p.delete) != 0 {
		t.Errorf("empty nodes: %+v", p)
	}
}

func TestPlanRollingUpdateMaxUnavailable(t *testing.T) {
	nodes := []*corev1.Node{testNode("a", nil), testNode("b", nil), testNode("c", nil), testNode("d", nil)}
	for _, tc := range []struct {
		name           string
		maxUnavailable intstr.IntOrString
		pods           []*corev1.Pod
		wantDelete     []string
	}{
		{name: "one at a time", maxUnavailable: intstr.FromInt32(1),
			pods:       []*corev1.Pod{pod("a", "a", false, true, 0), pod("b", "b", false, true, 0), pod("c", "c", false, true, 0), pod("d", "d", false, true, 0)},
			wantDelete: []string{"a"}},
		{name: "50% of 4", maxUnavailable: intstr.FromString("50%"),
			pods:       []*corev1.Pod{pod("a", "a", false, true, 0), pod("b", "b", false, true, 0), pod("c", "c", false, true, 0), pod("d", "d", false, true, 0)},
			wantDelete: []string{"a", "b"}},
		{name: "budget used by a starting new pod", maxUnavailable: intstr.FromInt32(1),
			pods:       []*corev1.Pod{pod("a", "a", true, false, 0), pod("b", "b", false, true, 0), pod("c", "c", false, true, 0), pod("d", "d", false, true, 0)},
			wantDelete: nil},
		{name: "unavailable old pods are replaced regardless", maxUnavailable: intstr.FromInt32(1),
			pods:       []*corev1.Pod{pod("a", "a", true, false, 0), pod("b", "b", false, false, 0), pod("c", "c", false, true, 0), pod("d", "d", true, true, 0)},
			wantDelete: []string{"b"}},
		{name: "done", maxUnavailable: intstr.FromInt32(1),
			pods:       []*corev1.Pod{pod("a", "a", true, true, 0), pod("b", "b", true, true, 0), pod("c", "c", true, true, 0), pod("d", "d", true, true, 0)},
			wantDelete: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := testDS()
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = &tc.maxUnavailable
			p := planRollingUpdate(ds, "new", states(ds, nodes, tc.pods...), available)
			if got := names(p.delete); !reflect.DeepEqual(got, tc.wantDelete) || len(p.create) != 0 {
				t.Fatalf("delete %v create %v, want delete %v", got, p.create, tc.wantDelete)
			}
		})
	}
}

func TestPlanRollingUpdateMaxSurge(t *testing.T) {
	nodes := []*corev1.Node{testNode("a", nil), testNode("b", nil), testNode("c", nil),
		testNode("tainted", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule})}
	ds := testDS()
	ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: new(intstr.FromInt32(0)), MaxSurge: new(intstr.FromInt32(1))}

	// All old: surge onto one node; the old pod on the no longer eligible node just goes.
	p := planRollingUpdate(ds, "new", states(ds, nodes, pod("a", "a", false, true, 0), pod("b", "b", false, true, 0),
		pod("c", "c", false, true, 0), pod("t", "tainted", false, true, 0)), available)
	if !reflect.DeepEqual(p.create, []string{"a"}) || !reflect.DeepEqual(names(p.delete), []string{"t"}) {
		t.Fatalf("first step: %+v", p)
	}
	// a has both, new one not yet available: nothing more (surge budget used).
	p = planRollingUpdate(ds, "new", states(ds, nodes[:3], pod("a", "a", false, true, 0), pod("a2", "a", true, false, 1),
		pod("b", "b", false, true, 0), pod("c", "c", false, true, 0)), available)
	if len(p.create)+len(p.delete) != 0 {
		t.Fatalf("while surging: %+v", p)
	}
	// New pod available: the old one goes; an unavailable old pod is replaced at once.
	p = planRollingUpdate(ds, "new", states(ds, nodes[:3], pod("a", "a", false, true, 0), pod("a2", "a", true, true, 1),
		pod("b", "b", false, false, 0), pod("c", "c", false, true, 0)), available)
	if !reflect.DeepEqual(p.create, []string{"b"}) || !reflect.DeepEqual(names(p.delete), []string{"a"}) {
		t.Fatalf("after surge: %+v", p)
	}
}

func TestBudgets(t *testing.T) {
	for _, tc := range []struct {
		surge, unavailable intstr.IntOrString
		desired            int
		wantS, wantU       int
	}{
		{intstr.FromInt32(0), intstr.FromInt32(1), 5, 0, 1},
		{intstr.FromInt32(0), intstr.FromString("10%"), 5, 0, 1}, // rounds up
		{intstr.FromString("25%"), intstr.FromInt32(0), 10, 3, 0},
		{intstr.FromInt32(0), intstr.FromString("0%"), 10, 0, 1}, // never both zero
	} {
		ds := testDS()
		ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavailable}
		s, u := budgets(ds, tc.desired)
		if s != tc.wantS || u != tc.wantU {
			t.Errorf("%v/%v of %d: surge %d unavailable %d, want %d %d", tc.surge.String(), tc.unavailable.String(), tc.desired, s, u, tc.wantS, tc.wantU)
		}
	}
}

func TestStatus(t *testing.T) {
	ds := testDS()
	ds.Generation = 4
	nodes := []*corev1.Node{testNode("a", nil), testNode("b", nil), testNode("c", nil),
		testNode("tainted", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule})}
	c := &Controller{now: time.Now}
	st := c.calculateStatus(ds, "new", states(ds, nodes,
		pod("a", "a", true, true, 0), pod("b", "b", false, true, 0), pod("t", "tainted", true, true, 0)))
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, NumberMisscheduled: 1, NumberReady: 2,
		NumberAvailable: 2, NumberUnavailable: 1, UpdatedNumberScheduled: 1, ObservedGeneration: 4}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status\n got %+v\nwant %+v", st, want)
	}
}

// The revision data is the patch kubectl builds to compare and roll back: the DaemonSet's
// template under spec.template with "$patch": "replace".
func TestRevisionData(t *testing.T) {
	ds := testDS()
	data, err := history.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	// kubectl's construction: marshal the whole object, keep spec.template, mark it replace.
	whole, _ := json.Marshal(ds)
	var raw map[string]any
	_ = json.Unmarshal(whole, &raw)
	tmpl := raw["spec"].(map[string]any)["template"].(map[string]any)
	tmpl["$patch"] = "replace"
	want, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
	if string(data) != string(want) {
		t.Fatalf("data\n got %s\nwant %s", data, want)
	}
	cr := history.NewRevision(ds, gvk, &ds.Spec.Template, data, 1, nil)
	back, err := history.TemplateOf(cr)
	if err != nil || !reflect.DeepEqual(*back, ds.Spec.Template) {
		t.Fatalf("template round trip: %v %+v", err, back)
	}
	hash := cr.Labels[appsv1.ControllerRevisionHashLabelKey]
	if cr.Name != "agent-"+hash || cr.Labels["app"] != "agent" || !metav1.IsControlledBy(cr, ds) {
		t.Fatalf("revision %s labels %v", cr.Name, cr.Labels)
	}
	one := int32(1)
	if h := history.Hash(data, &one); h == hash {
		t.Fatal("the collision count must change the hash")
	}
	ds.Spec.Template.Spec.Containers[0].Image = "img:v2"
	data2, _ := history.TemplatePatch(&ds.Spec.Template)
	if history.Hash(data2, nil) == hash || history.SameData(cr, data2) {
		t.Fatal("a different template must give a different revision")
	}
}
