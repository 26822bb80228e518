// Package schedtest builds pods, nodes and frameworks for the scheduler's unit tests.
package schedtest

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/scheduler/cache"
	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/framework/runtime"
)

// PodWrapper builds a pod.
type PodWrapper struct{ v1.Pod }

// MakePod starts a pod in namespace "default" with one container and no requests.
func MakePod(name string) *PodWrapper {
	p := &PodWrapper{v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "pause"}}, SchedulerName: "default-scheduler"},
	}}
	return p
}

// Obj returns the pod.
func (p *PodWrapper) Obj() *v1.Pod { return &p.Pod }

// Namespace sets the namespace.
func (p *PodWrapper) Namespace(ns string) *PodWrapper { p.Pod.Namespace = ns; return p }

// Node binds the pod to a node.
func (p *PodWrapper) Node(n string) *PodWrapper { p.Spec.NodeName = n; return p }

// Label adds a label.
func (p *PodWrapper) Label(k, v string) *PodWrapper {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[k] = v
	return p
}

// Priority sets the priority.
func (p *PodWrapper) Priority(v int32) *PodWrapper { p.Spec.Priority = &v; return p }

// Req sets the first container's requests ("cpu", "500m", "memory", "1Gi", ...).
func (p *PodWrapper) Req(kv ...string) *PodWrapper {
	p.Spec.Containers[0].Resources.Requests = List(kv...)
	return p
}

// Container adds a container with requests.
func (p *PodWrapper) Container(kv ...string) *PodWrapper {
	p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: fmt.Sprintf("c%d", len(p.Spec.Containers)), Resources: v1.ResourceRequirements{Requests: List(kv...)}})
	return p
}

// Init adds an init container with requests; sidecar makes it restartable.
func (p *PodWrapper) Init(sidecar bool, kv ...string) *PodWrapper {
	c := v1.Container{Name: fmt.Sprintf("i%d", len(p.Spec.InitContainers)), Resources: v1.ResourceRequirements{Requests: List(kv...)}}
	if sidecar {
		always := v1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	return p
}

// HostPort adds a host port to the first container.
func (p *PodWrapper) HostPort(port int32, proto v1.Protocol, ip string) *PodWrapper {
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, v1.ContainerPort{HostPort: port, ContainerPort: port, Protocol: proto, HostIP: ip})
	return p
}

// NodeSelector sets a nodeSelector entry.
func (p *PodWrapper) NodeSelector(k, v string) *PodWrapper {
	if p.Spec.NodeSelector == nil {
		p.Spec.NodeSelector = map[string]string{}
	}
	p.Spec.NodeSelector[k] = v
	return p
}

func (p *PodWrapper) affinity() *v1.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &v1.Affinity{}
	}
	return p.Spec.Affinity
}

// NodeAffinityIn requires key In values.
func (p *PodWrapper) NodeAffinityIn(key string, values ...string) *PodWrapper {
	a := p.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &v1.NodeAffinity{}
	}
	a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: v1.NodeSelectorOpIn, Values: values}},
	}}}
	return p
}

// PreferNode adds a preferred node affinity term key In value.
func (p *PodWrapper) PreferNode(weight int32, key, value string) *PodWrapper {
	a := p.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &v1.NodeAffinity{}
	}
	a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		v1.PreferredSchedulingTerm{Weight: weight, Preference: v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: v1.NodeSelectorOpIn, Values: []string{value}}}}})
	return p
}

func term(topologyKey string, labels map[string]string) v1.PodAffinityTerm {
	return v1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

// PodAffinity adds a required pod affinity term.
func (p *PodWrapper) PodAffinity(topologyKey string, labels map[string]string) *PodWrapper {
	a := p.affinity()
	if a.PodAffinity == nil {
		a.PodAffinity = &v1.PodAffinity{}
	}
	a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(topologyKey, labels))
	return p
}

// PodAntiAffinity adds a required pod anti-affinity term.
func (p *PodWrapper) PodAntiAffinity(topologyKey string, labels map[string]string) *PodWrapper {
	a := p.affinity()
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &v1.PodAntiAffinity{}
	}
	a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(topologyKey, labels))
	return p
}

// PreferPodAffinity adds a preferred pod affinity term.
func (p *PodWrapper) PreferPodAffinity(weight int32, topologyKey string, labels map[string]string) *PodWrapper {
	a := p.affinity()
	if a.PodAffinity == nil {
		a.PodAffinity = &v1.PodAffinity{}
	}
	a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		v1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: term(topologyKey, labels)})
	return p
}

// PreferPodAntiAffinity adds a preferred pod anti-affinity term.
func (p *PodWrapper) PreferPodAntiAffinity(weight int32, topologyKey string, labels map[string]string) *PodWrapper {
	a := p.affinity()
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &v1.PodAntiAffinity{}
	}
	a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		v1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: term(topologyKey, labels)})
	return p
}

// Spread adds a topology spread constraint selecting labels.
func (p *PodWrapper) Spread(maxSkew int32, key string, when v1.UnsatisfiableConstraintAction, labels map[string]string, minDomains *int32) *PodWrapper {
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, v1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when,
		LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, MinDomains: minDomains,
	})
	return p
}

// Toleration adds a toleration.
func (p *PodWrapper) Toleration(key string, op v1.TolerationOperator, value string, effect v1.TaintEffect) *PodWrapper {
	p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: key, Operator: op, Value: value, Effect: effect})
	return p
}

// NodeWrapper builds a node.
type NodeWrapper struct{ v1.Node }

// MakeNode starts a Ready node with the hostname label and 110 pods of capacity.
func MakeNode(name string) *NodeWrapper {
	n := &NodeWrapper{v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{v1.LabelHostname: name}},
		Status: v1.NodeStatus{
			Allocatable: v1.ResourceList{v1.ResourcePods: resource.MustParse("110")},
			Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}}
	n.Status.Capacity = n.Status.Allocatable
	return n
}

// Obj returns the node.
func (n *NodeWrapper) Obj() *v1.Node { return &n.Node }

// Alloc sets allocatable entries ("cpu", "4", "memory", "8Gi", "pods", "10").
func (n *NodeWrapper) Alloc(kv ...string) *NodeWrapper {
	for k, q := range List(kv...) {
		n.Status.Allocatable[k] = q
	}
	n.Status.Capacity = n.Status.Allocatable.DeepCopy()
	return n
}

// Label adds a label.
func (n *NodeWrapper) Label(k, v string) *NodeWrapper { n.Labels[k] = v; return n }

// Taint adds a taint.
func (n *NodeWrapper) Taint(key, value string, effect v1.TaintEffect) *NodeWrapper {
	n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Value: value, Effect: effect})
	return n
}

// Unschedulable cordons the node.
func (n *NodeWrapper) Unschedulable() *NodeWrapper { n.Spec.Unschedulable = true; return n }

// List parses "name", "quantity" pairs.
func List(kv ...string) v1.ResourceList {
	rl := v1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		rl[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return rl
}

// NodeInfo builds a NodeInfo for a node with pods.
func NodeInfo(node *v1.Node, pods ...*v1.Pod) *framework.NodeInfo {
	ni := framework.NewNodeInfo(pods...)
	ni.SetNode(node)
	return ni
}

// Framework builds a framework over a snapshot of nodes and pods with the given plugins.
func Framework(t testing.TB, specs []runtime.PluginSpec, nodes []*v1.Node, pods []*v1.Pod) (*runtime.Framework, *cache.Snapshot) {
	t.Helper()
	snap := cache.NewSnapshot(pods, nodes)
	f, err := runtime.New(specs, runtime.Options{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	return f, snap
}

// One is a spec list with a single plugin.
func One(name string, factory framework.PluginFactory) []runtime.PluginSpec {
	return []runtime.PluginSpec{{Name: name, Factory: factory}}
}

// Filter runs PreFilter and then Filter on one node, as a cycle would.
func Filter(t testing.TB, f *runtime.Framework, snap *cache.Snapshot, pod *v1.Pod, node string) *framework.Status {
	t.Helper()
	state := framework.NewCycleState()
	pre, _, s := f.RunPreFilterPlugins(context.Background(), state, pod)
	if !s.IsSuccess() {
		return s
	}
	if !pre.AllNodes() && !pre.NodeNames.Has(node) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, "excluded by PreFilter")
	}
	ni, err := snap.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	return f.RunFilterPluginsWithNominatedPods(context.Background(), state, pod, ni)
}

// Scores runs PreFilter (for its state), PreScore and Score over every node and returns
// the weighted, normalized totals by node.
func Scores(t testing.TB, f *runtime.Framework, snap *cache.Snapshot, pod *v1.Pod) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	state := framework.NewCycleState()
	if _, _, s := f.RunPreFilterPlugins(ctx, state, pod); !s.IsSuccess() && !s.IsSkip() {
		t.Fatalf("prefilter: %v", s.AsError())
	}
	nodes := snap.List()
	if s := f.RunPreScorePlugins(ctx, state, pod, nodes); !s.IsSuccess() {
		t.Fatalf("prescore: %v", s.AsError())
	}
	scores, s := f.RunScorePlugins(ctx, state, pod, nodes)
	if !s.IsSuccess() {
		t.Fatalf("score: %v", s.AsError())
	}
	out := map[string]int64{}
	for _, ns := range scores {
		out[ns.Name] = ns.TotalScore
	}
	return out
}
