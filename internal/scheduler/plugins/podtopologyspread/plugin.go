// Package podtopologyspread spreads pods matching a label selector evenly across
// topology domains: DoNotSchedule constraints filter out nodes that would push the skew
// (pods in the domain minus pods in the emptiest domain) past maxSkew, ScheduleAnyway
// constraints score nodes in emptier domains higher. Pods without constraints that
// belong to a service or a workload get Kubernetes' system defaults (hostname maxSkew 3,
// zone maxSkew 5, ScheduleAnyway).
package podtopologyspread

import (
	"context"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

// Name is the plugin's name.
const Name = "PodTopologySpread"

// Kubernetes' messages.
const (
	ErrReasonConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	ErrReasonNodeLabelNotMatch   = ErrReasonConstraintsNotMatch + " (missing required label)"
)

// SystemDefaultConstraints are Kubernetes' defaults for pods without constraints.
var SystemDefaultConstraints = []v1.TopologySpreadConstraint{
	{TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 3},
	{TopologyKey: v1.LabelTopologyZone, WhenUnsatisfiable: v1.ScheduleAnyway, MaxSkew: 5},
}

// PodTopologySpread is the plugin.
type PodTopologySpread struct {
	h            framework.Handle
	memo         *helper.CountMemo
	services     corelisters.ServiceLister
	rcs          corelisters.ReplicationControllerLister
	replicaSets  appslisters.ReplicaSetLister
	statefulSets appslisters.StatefulSetLister
}

var (
	_ framework.PreFilterPlugin     = (*PodTopologySpread)(nil)
	_ framework.PreFilterExtensions = (*PodTopologySpread)(nil)
	_ framework.FilterPlugin        = (*PodTopologySpread)(nil)
	_ framework.PreScorePlugin      = (*PodTopologySpread)(nil)
	_ framework.ScorePlugin         = (*PodTopologySpread)(nil)
	_ framework.ScoreExtensions     = (*PodTopologySpread)(nil)
	_ framework.EnqueueExtensions   = (*PodTopologySpread)(nil)
)

// New builds the plugin; with an informer factory, pods without constraints get the
// system defaults.
func New(h framework.Handle) (framework.Plugin, error) {
	p := &PodTopologySpread{h: h, memo: helper.NewCountMemo(32)}
	if f := h.SharedInformerFactory(); f != nil {
		p.services = f.Core().V1().Services().Lister()
		p.rcs = f.Core().V1().ReplicationControllers().Lister()
		p.replicaSets = f.Apps().V1().ReplicaSets().Lister()
		p.statefulSets = f.Apps().V1().StatefulSets().Lister()
	}
	return p, nil
}

// Name implements framework.Plugin.
func (*PodTopologySpread) Name() string { return Name }

// EventsToRegister: pods coming, going or relabelled change the counts; nodes change the
// domains.
func (*PodTopologySpread) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.Pod, ActionType: framework.Add | framework.UpdatePodLabel | framework.Delete},
		{Resource: framework.Node, ActionType: framework.Add | framework.Delete | framework.UpdateNodeLabel | framework.UpdateNodeTaint},
	}
}

type constraint struct {
	MaxSkew            int32
	TopologyKey        string
	Selector           labels.Selector
	MinDomains         int32
	NodeAffinityPolicy v1.NodeInclusionPolicy
	NodeTaintsPolicy   v1.NodeInclusionPolicy
}

// matchNodeInclusionPolicies: by default a node counts only if it passes the pod's node
// affinity (Honor), whatever its taints (Ignore).
func (c *constraint) matchNodeInclusionPolicies(pod *v1.Pod, node *v1.Node, req *helper.RequiredNodeAffinity) bool {
	if c.NodeAffinityPolicy == v1.NodeInclusionPolicyHonor && !req.Match(node) {
		return false
	}
	if c.NodeTaintsPolicy == v1.NodeInclusionPolicyHonor {
		if _, bad := helper.FindMatchingUntoleratedTaint(node.Spec.Taints, pod.Spec.Tolerations, helper.DoNotScheduleTaint); bad {
			return false
		}
	}
	return true
}

// filterConstraints parses the constraints with the given action; matchLabelKeys add the
// pod's own values for those keys to the selector.
func filterConstraints(cs []v1.TopologySpreadConstraint, podLabels map[string]string, action v1.UnsatisfiableConstraintAction) ([]constraint, error) {
	var out []constraint
	for _, c := range cs {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, err
		}
		if len(c.MatchLabelKeys) > 0 {
			set := labels.Set{}
			for _, k := range c.MatchLabelKeys {
				if v, ok := podLabels[k]; ok {
					set[k] = v
				}
			}
			if len(set) > 0 {
				if reqs, ok := sel.Requirements(); ok {
					merged := labels.SelectorFromSet(set)
					for _, r := range reqs {
						merged = merged.Add(r)
					}
					sel = merged
				}
			}
		}
		tc := constraint{MaxSkew: c.MaxSkew, TopologyKey: c.TopologyKey, Selector: sel, MinDomains: 1,
			NodeAffinityPolicy: v1.NodeInclusionPolicyHonor, NodeTaintsPolicy: v1.NodeInclusionPolicyIgnore}
		if c.MinDomains != nil {
			tc.MinDomains = *c.MinDomains
		}
		if c.NodeAffinityPolicy != nil {
			tc.NodeAffinityPolicy = *c.NodeAffinityPolicy
		}
		if c.NodeTaintsPolicy != nil {
			tc.NodeTaintsPolicy = *c.NodeTaintsPolicy
		}
		out = append(out, tc)
	}
	return out, nil
}

// constraintsFor returns the pod's constraints with the given action, or the system
// defaults (selecting the pods of the same services and workload) when it has none.
func (p *PodTopologySpread) constraintsFor(pod *v1.Pod, action v1.UnsatisfiableConstraintAction) ([]constraint, bool, error) {
	if len(pod.Spec.TopologySpreadConstraints) > 0 {
		cs, err := filterConstraints(pod.Spec.TopologySpreadConstraints, pod.Labels, action)
		return cs, false, err
	}
	if p.services == nil {
		return nil, true, nil
	}
	cs, err := filterConstraints(SystemDefaultConstraints, pod.Labels, action)
	if err != nil || len(cs) == 0 {
		return nil, true, err
	}
	sel := p.defaultSelector(pod)
	if sel.Empty() {
		return nil, true, nil
	}
	for i := range cs {
		cs[i].Selector = sel
	}
	return cs, true, nil
}

// defaultSelector merges the selectors of the services selecting the pod and of its
// controlling ReplicationController, ReplicaSet or StatefulSet.
func (p *PodTopologySpread) defaultSelector(pod *v1.Pod) labels.Selector {
	set := labels.Set{}
	if svcs, err := p.services.Services(pod.Namespace).List(labels.Everything()); err == nil {
		for _, s := range svcs {
			if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
				set = labels.Merge(set, s.Spec.Selector)
			}
		}
	}
	sel := set.AsSelector()
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return sel
	}
	addLabelSelector := func(ls *metav1.LabelSelector) {
		other, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return
		}
		if reqs, ok := other.Requirements(); ok {
			sel = sel.Add(reqs...)
		}
	}
	switch {
	case owner.Kind == "ReplicationController" && owner.APIVersion == "v1":
		if rc, err := p.rcs.ReplicationControllers(pod.Namespace).Get(owner.Name); err == nil {
			set = labels.Merge(set, rc.Spec.Selector)
			sel = set.AsSelector()
		}
	case owner.Kind == "ReplicaSet" && owner.APIVersion == "apps/v1":
		if rs, err := p.replicaSets.ReplicaSets(pod.Namespace).Get(owner.Name); err == nil {
			addLabelSelector(rs.Spec.Selector)
		}
	case owner.Kind == "StatefulSet" && owner.APIVersion == "apps/v1":
		if ss, err := p.statefulSets.StatefulSets(pod.Namespace).Get(owner.Name); err == nil {
			addLabelSelector(ss.Spec.Selector)
		}
	}
	return sel
}

func nodeHasAllKeys(node *v1.Node, cs []constraint) bool {
	for i := range cs {
		if _, ok := node.Labels[cs[i].TopologyKey]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts the pods in ns matching sel, leaving out terminating ones.
func countMatching(pods []*framework.PodInfo, sel labels.Selector, ns string) int {
	if sel.Empty() {
		return 0
	}
	n := 0
	for _, pi := range pods {
		p := pi.Pod
		if p.DeletionTimestamp != nil || p.Namespace != ns {
			continue
		}
		if sel.Matches(labels.Set(p.Labels)) {
			n++
		}
	}
	return n
}

// countsFor returns, per node, the matching pods of namespace ns, remembered across
// cycles for nodes that did not change.
func (p *PodTopologySpread) countsFor(ctx context.Context, c *constraint, ns string, nodes []*framework.NodeInfo) []int {
	return p.memo.Counts(ctx, p.h.Parallelizer(), ns+"\x00"+c.Selector.String(), nodes, func(ni *framework.NodeInfo) int {
		return countMatching(ni.Pods, c.Selector, ns)
	})
}

// countsForAll returns countsFor per constraint, computing each distinct selector once.
func (p *PodTopologySpread) countsForAll(ctx context.Context, cs []constraint, ns string, nodes []*framework.NodeInfo) [][]int {
	out := make([][]int, len(cs))
	seen := map[string][]int{}
	for j := range cs {
		k := cs[j].Selector.String()
		if c, ok := seen[k]; ok {
			out[j] = c
			continue
		}
		out[j] = p.countsFor(ctx, &cs[j], ns, nodes)
		seen[k] = out[j]
	}
	return out
}

type topologyPair struct {
	key, value string
}
