package framework

import (
	"errors"
	"fmt"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
)

// AffinityTerm is a parsed PodAffinityTerm.
type AffinityTerm struct {
	Namespaces        sets.Set[string]
	Selector          labels.Selector
	TopologyKey       string
	NamespaceSelector labels.Selector
}

// Matches reports whether pod, in a namespace labelled nsLabels, satisfies the term.
func (t *AffinityTerm) Matches(pod *v1.Pod, nsLabels labels.Set) bool {
	if t.Namespaces.Has(pod.Namespace) || t.NamespaceSelector.Matches(nsLabels) {
		return t.Selector.Matches(labels.Set(pod.Labels))
	}
	return false
}

// WeightedAffinityTerm is a parsed WeightedPodAffinityTerm.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// PodInfo is a pod with what the scheduler derives from it, computed once: parsed
// affinity terms and resource requests.
type PodInfo struct {
	Pod                        *v1.Pod
	RequiredAffinityTerms      []AffinityTerm
	RequiredAntiAffinityTerms  []AffinityTerm
	PreferredAffinityTerms     []WeightedAffinityTerm
	PreferredAntiAffinityTerms []WeightedAffinityTerm
	// ParseError is set when a term's selector does not parse; InterPodAffinity rejects
	// such a pod.
	ParseError error
	// Requests is the effective request used for fitting.
	Requests *Resource
	// NonZeroCPU and NonZeroMemory are the figures used for scoring.
	NonZeroCPU, NonZeroMemory int64
}

// NewPodInfo parses pod.
func NewPodInfo(pod *v1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Requests = PodRequests(pod, false)
	nz := PodRequests(pod, true)
	pi.NonZeroCPU, pi.NonZeroMemory = nz.MilliCPU, nz.Memory
	if a := pod.Spec.Affinity; a != nil {
		var errs []error
		if pa := a.PodAffinity; pa != nil {
			pi.RequiredAffinityTerms = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, &errs)
			pi.PreferredAffinityTerms = parseWeightedTerms(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution, &errs)
		}
		if paa := a.PodAntiAffinity; paa != nil {
			pi.RequiredAntiAffinityTerms = parseTerms(pod, paa.RequiredDuringSchedulingIgnoredDuringExecution, &errs)
			pi.PreferredAntiAffinityTerms = parseWeightedTerms(pod, paa.PreferredDuringSchedulingIgnoredDuringExecution, &errs)
		}
		pi.ParseError = errors.Join(errs...)
	}
	return pi
}

// HasAffinity reports whether the pod has any inter-pod (anti-)affinity term.
func (pi *PodInfo) HasAffinity() bool {
	return len(pi.RequiredAffinityTerms)+len(pi.RequiredAntiAffinityTerms)+
		len(pi.PreferredAffinityTerms)+len(pi.PreferredAntiAffinityTerms) > 0
}

func newAffinityTerm(pod *v1.Pod, t *v1.PodAffinityTerm) (AffinityTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("parse affinity term selector: %w", err)
	}
	nsSel, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
	if err != nil {
		return AffinityTerm{}, fmt.Errorf("parse affinity term namespace selector: %w", err)
	}
	// No namespaces and no namespace selector means the pod's own namespace.
	ns := sets.New(t.Namespaces...)
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		ns.Insert(pod.Namespace)
	}
	return AffinityTerm{Namespaces: ns, Selector: sel, TopologyKey: t.TopologyKey, NamespaceSelector: nsSel}, nil
}

func parseTerms(pod *v1.Pod, ts []v1.PodAffinityTerm, errs *[]error) []AffinityTerm {
	out := make([]AffinityTerm, 0, len(ts))
	for i := range ts {
		t, err := newAffinityTerm(pod, &ts[i])
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		out = append(out, t)
	}
	return out
}

func parseWeightedTerms(pod *v1.Pod, ts []v1.WeightedPodAffinityTerm, errs *[]error) []WeightedAffinityTerm {
	out := make([]WeightedAffinityTerm, 0, len(ts))
	for i := range ts {
		t, err := newAffinityTerm(pod, &ts[i].PodAffinityTerm)
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: ts[i].Weight})
	}
	return out
}

var generation atomic.Int64

// NextGeneration returns a number larger than every one returned before; NodeInfos carry
// one so the cache can copy only what changed into a snapshot.
func NextGeneration() int64 { return generation.Add(1) }

// NodeInfo is a node with the pods on it (bound or assumed) and their totals.
type NodeInfo struct {
	node *v1.Node
	// Pods on the node, in no particular order.
	Pods []*PodInfo
	// PodsWithAffinity have some inter-pod (anti-)affinity term.
	PodsWithAffinity []*PodInfo
	// PodsWithRequiredAntiAffinity have a required anti-affinity term.
	PodsWithRequiredAntiAffinity []*PodInfo
	UsedPorts                    HostPortInfo
	// Requested sums the pods' effective requests; NonZeroRequested does the same with
	// request-less containers counted at the scoring defaults (cpu and memory only).
	Requested        Resource
	NonZeroRequested Resource
	Allocatable      Resource
	Generation       int64
}

// NewNodeInfo returns a NodeInfo holding pods (and no node yet).
func NewNodeInfo(pods ...*v1.Pod) *NodeInfo {
	ni := &NodeInfo{UsedPorts: make(HostPortInfo), Generation: NextGeneration()}
	for _, p := range pods {
		ni.AddPod(p)
	}
	return ni
}

// Node returns the node; nil while only its pods are known.
func (n *NodeInfo) Node() *v1.Node {
	if n == nil {
		return nil
	}
	return n.node
}

// SetNode sets the node and its allocatable resources.
func (n *NodeInfo) SetNode(node *v1.Node) {
	n.node = node
	n.Allocatable = *NewResource(node.Status.Allocatable)
	n.Generation = NextGeneration()
}

// RemoveNode forgets the node but keeps its pods.
func (n *NodeInfo) RemoveNode() {
	n.node = nil
	n.Generation = NextGeneration()
}

// AddPod adds a pod.
func (n *NodeInfo) AddPod(pod *v1.Pod) { n.AddPodInfo(NewPodInfo(pod)) }

// AddPodInfo adds a parsed pod.
func (n *NodeInfo) AddPodInfo(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if pi.HasAffinity() {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinityTerms) > 0 {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
	}
	n.update(pi, 1)
}

func (n *NodeInfo) update(pi *PodInfo, sign int64) {
	if sign > 0 {
		n.Requested.AddResource(pi.Requests)
	} else {
		n.Requested.SubResource(pi.Requests)
	}
	n.NonZeroRequested.MilliCPU += sign * pi.NonZeroCPU
	n.NonZeroRequested.Memory += sign * pi.NonZeroMemory
	if n.UsedPorts == nil {
		n.UsedPorts = make(HostPortInfo)
	}
	for _, p := range PodHostPorts(pi.Pod) {
		if sign > 0 {
			n.UsedPorts.Add(p.HostIP, string(p.Protocol), p.HostPort)
		} else {
			n.UsedPorts.Remove(p.HostIP, string(p.Protocol), p.HostPort)
		}
	}
	n.Generation = NextGeneration()
}

func removeFromList(l []*PodInfo, uid string) ([]*PodInfo, *PodInfo) {
	for i, pi := range l {
		if string(pi.Pod.UID) == uid {
			last := len(l) - 1
			l[i] = l[last]
			l[last] = nil
			return l[:last], pi
		}
	}
	return l, nil
}

// RemovePod removes a pod by UID.
func (n *NodeInfo) RemovePod(pod *v1.Pod) error {
	uid := string(pod.UID)
	var pi *PodInfo
	n.Pods, pi = removeFromList(n.Pods, uid)
	if pi == nil {
		return fmt.Errorf("no pod %s/%s (uid %s) on node %s", pod.Namespace, pod.Name, uid, n.nodeName())
	}
	n.PodsWithAffinity, _ = removeFromList(n.PodsWithAffinity, uid)
	n.PodsWithRequiredAntiAffinity, _ = removeFromList(n.PodsWithRequiredAntiAffinity, uid)
	n.update(pi, -1)
	return nil
}

func (n *NodeInfo) nodeName() string {
	if n.node == nil {
		return "<unknown>"
	}
	return n.node.Name
}

// Snapshot copies the NodeInfo deeply enough that changing either side's pod lists,
// ports or totals leaves the other alone (pods and the node are shared, read-only).
func (n *NodeInfo) Snapshot() *NodeInfo {
	out := &NodeInfo{
		node:             n.node,
		Requested:        *n.Requested.Clone(),
		NonZeroRequested: *n.NonZeroRequested.Clone(),
		Allocatable:      *n.Allocatable.Clone(),
		Generation:       n.Generation,
		UsedPorts:        n.UsedPorts.clone(),
	}
	out.Pods = append(make([]*PodInfo, 0, len(n.Pods)+1), n.Pods...)
	if len(n.PodsWithAffinity) > 0 {
		out.PodsWithAffinity = append([]*PodInfo(nil), n.PodsWithAffinity...)
	}
	if len(n.PodsWithRequiredAntiAffinity) > 0 {
		out.PodsWithRequiredAntiAffinity = append([]*PodInfo(nil), n.PodsWithRequiredAntiAffinity...)
	}
	return out
}

// String summarizes the node for logs and test failures.
func (n *NodeInfo) String() string {
	return fmt.Sprintf("&NodeInfo{node:%s pods:%d requested:%+v allocatable:%+v}", n.nodeName(), len(n.Pods), n.Requested, n.Allocatable)
}

// PodPriority returns the pod's priority (0 when unset).
func PodPriority(pod *v1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

// PodKey returns namespace/name.
func PodKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }
