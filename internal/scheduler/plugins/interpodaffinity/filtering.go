package interpodaffinity

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preFilterStateKey framework.StateKey = "PreFilter" + Name

// preFilterState counts, per topology domain, the existing pods relevant to the
// incoming pod, so Filter is a few map lookups per node.
type preFilterState struct {
	// existingAnti: existing pods whose required anti-affinity matches the incoming pod.
	existingAnti topologyCounts
	// affinity: existing pods matching all the incoming pod's required affinity terms.
	affinity topologyCounts
	// anti: existing pods matching the incoming pod's required anti-affinity terms.
	anti     topologyCounts
	podInfo  *framework.PodInfo
	nsLabels labels.Set
}

func (s *preFilterState) Clone() framework.StateData {
	return &preFilterState{existingAnti: s.existingAnti.clone(), affinity: s.affinity.clone(),
		anti: s.anti.clone(), podInfo: s.podInfo, nsLabels: s.nsLabels}
}

func matchesAll(terms []framework.AffinityTerm, pod *v1.Pod) bool {
	if len(terms) == 0 {
		return false
	}
	for i := range terms {
		if !terms[i].Matches(pod, nil) {
			return false
		}
	}
	return true
}

// updateWithPod counts (delta +1) or uncounts (-1) an existing pod on node.
func (s *preFilterState) updateWithPod(existing *framework.PodInfo, node *v1.Node, delta int64) {
	for i := range existing.RequiredAntiAffinityTerms {
		t := &existing.RequiredAntiAffinityTerms[i]
		if t.Matches(s.podInfo.Pod, s.nsLabels) {
			s.existingAnti.add(t.TopologyKey, node, delta)
		}
	}
	if matchesAll(s.podInfo.RequiredAffinityTerms, existing.Pod) {
		for i := range s.podInfo.RequiredAffinityTerms {
			s.affinity.add(s.podInfo.RequiredAffinityTerms[i].TopologyKey, node, delta)
		}
	}
	for i := range s.podInfo.RequiredAntiAffinityTerms {
		t := &s.podInfo.RequiredAntiAffinityTerms[i]
		if t.Matches(existing.Pod, nil) {
			s.anti.add(t.TopologyKey, node, delta)
		}
	}
}

// PreFilter counts existing pods by topology domain: those whose anti-affinity rejects
// the incoming pod (only nodes hosting such pods are visited) and, when the pod has
// required terms, those matching them (every node is visited).
func (p *InterPodAffinity) PreFilter(ctx context.Context, state *framework.CycleState, pod *v1.Pod) (*framework.PreFilterResult, *framework.Status) {
	pi := framework.NewPodInfo(pod)
	if pi.ParseError != nil {
		return nil, framework.AsStatus(fmt.Errorf("parsing pod: %w", pi.ParseError))
	}
	pi = p.mergeNamespaces(pi)
	lister := p.h.SnapshotSharedLister().NodeInfos()
	s := &preFilterState{existingAnti: topologyCounts{}, affinity: topologyCounts{}, anti: topologyCounts{},
		podInfo: pi, nsLabels: p.namespaceLabels(pod.Namespace)}

	withAnti := lister.HavePodsWithRequiredAntiAffinityList()
	for _, ni := range withAnti {
		for _, existing := range ni.PodsWithRequiredAntiAffinity {
			for i := range existing.RequiredAntiAffinityTerms {
				t := &existing.RequiredAntiAffinityTerms[i]
				if t.Matches(pod, s.nsLabels) {
					s.existingAnti.add(t.TopologyKey, ni.Node(), 1)
				}
			}
		}
	}

	if len(pi.RequiredAffinityTerms) > 0 || len(pi.RequiredAntiAffinityTerms) > 0 {
		nodes := lister.List()
		if len(pi.RequiredAffinityTerms) > 0 {
			counts := p.countMatching(ctx, "affinity\x00", pi.RequiredAffinityTerms, nodes)
			for i, n := range counts {
				if n == 0 {
					continue
				}
				for j := range pi.RequiredAffinityTerms {
					s.affinity.add(pi.RequiredAffinityTerms[j].TopologyKey, nodes[i].Node(), int64(n))
				}
			}
		}
		for j := range pi.RequiredAntiAffinityTerms {
			t := pi.RequiredAntiAffinityTerms[j : j+1]
			counts := p.countMatching(ctx, "anti\x00", t, nodes)
			for i, n := range counts {
				if n > 0 {
					s.anti.add(t[0].TopologyKey, nodes[i].Node(), int64(n))
				}
			}
		}
	} else if len(s.existingAnti) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterStateKey, s)
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (p *InterPodAffinity) PreFilterExtensions() framework.PreFilterExtensions { return p }

func getPreFilterState(state *framework.CycleState) (*preFilterState, *framework.Status) {
	d, ok := state.Read(preFilterStateKey)
	if !ok {
		return nil, framework.AsStatus(fmt.Errorf("reading %q from cycleState: not found", preFilterStateKey))
	}
	return d.(*preFilterState), nil
}

// AddPod implements framework.PreFilterExtensions.
func (p *InterPodAffinity) AddPod(_ context.Context, state *framework.CycleState, _ *v1.Pod, add *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	s, st := getPreFilterState(state)
	if st != nil {
		return st
	}
	s.updateWithPod(add, ni.Node(), 1)
	return nil
}

// RemovePod implements framework.PreFilterExtensions.
func (p *InterPodAffinity) RemovePod(_ context.Context, state *framework.CycleState, _ *v1.Pod, rm *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	s, st := getPreFilterState(state)
	if st != nil {
		return st
	}
	s.updateWithPod(rm, ni.Node(), -1)
	return nil
}

// satisfiesAffinity: the node has every term's topology key and a matching pod in each
// of those domains — or no pod anywhere matches and the pod matches its own terms (the
// first pod of a group that wants to be together).
func satisfiesAffinity(s *preFilterState, node *v1.Node) bool {
	exist := true
	for i := range s.podInfo.RequiredAffinityTerms {
		t := &s.podInfo.RequiredAffinityTerms[i]
		v, ok := node.Labels[t.TopologyKey]
		if !ok {
			return false
		}
		if s.affinity[topologyPair{t.TopologyKey, v}] <= 0 {
			exist = false
		}
	}
	if exist {
		return true
	}
	return len(s.affinity) == 0 && matchesAll(s.podInfo.RequiredAffinityTerms, s.podInfo.Pod)
}

func satisfiesAntiAffinity(s *preFilterState, node *v1.Node) bool {
	for i := range s.podInfo.RequiredAntiAffinityTerms {
		t := &s.podInfo.RequiredAntiAffinityTerms[i]
		if v, ok := node.Labels[t.TopologyKey]; ok && s.anti[topologyPair{t.TopologyKey, v}] > 0 {
			return false
		}
	}
	return true
}

func satisfiesExistingAntiAffinity(s *preFilterState, node *v1.Node) bool {
	for pair, n := range s.existingAnti {
		if v, ok := node.Labels[pair.key]; ok && n > 0 && v == pair.value {
			return false
		}
	}
	return true
}

// Filter implements framework.FilterPlugin.
func (p *InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	s, st := getPreFilterState(state)
	if st != nil {
		return st
	}
	node := ni.Node()
	if !satisfiesAffinity(s, node) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonAffinityRulesNotMatch)
	}
	if !satisfiesAntiAffinity(s, node) {
		return framework.NewStatus(framework.Unschedulable, ErrReasonAntiAffinityRulesNotMatch)
	}
	if !satisfiesExistingAntiAffinity(s, node) {
		return framework.NewStatus(framework.Unschedulable, ErrReasonExistingAntiAffinityRulesNotMatch)
	}
	return nil
}
