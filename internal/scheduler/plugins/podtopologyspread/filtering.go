package podtopologyspread

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

const preFilterStateKey framework.StateKey = "PreFilter" + Name

// minPaths keeps the two domains with the fewest matching pods for one topology key.
// The smallest is the global minimum the skew is measured against; keeping the runner-up
// lets preemption's add/remove updates move the minimum without rescanning every domain
// (each dry run works on its own copy and changes one node only).
type minPaths [2]struct {
	value string
	num   int
}

func newMinPaths() *minPaths {
	return &minPaths{{num: math.MaxInt32}, {num: math.MaxInt32}}
}

func (p *minPaths) update(value string, num int) {
	switch value {
	case p[0].value:
		p[0].num = num
	case p[1].value:
		p[1].num = num
	default:
		if num < p[0].num {
			p[1] = p[0]
			p[0].value, p[0].num = value, num
		} else if num < p[1].num {
			p[1].value, p[1].num = value, num
		}
		return
	}
	if p[0].num > p[1].num {
		p[0], p[1] = p[1], p[0]
	}
}

type preFilterState struct {
	constraints []constraint
	paths       map[string]*minPaths
	domains     map[string]int
	counts      map[topologyPair]int
	required    helper.RequiredNodeAffinity
}

func (s *preFilterState) Clone() framework.StateData {
	out := &preFilterState{constraints: s.constraints, domains: s.domains, required: s.required,
		paths: make(map[string]*minPaths, len(s.paths)), counts: make(map[topologyPair]int, len(s.counts))}
	for k, p := range s.paths {
		cp := *p
		out.paths[k] = &cp
	}
	for k, v := range s.counts {
		out.counts[k] = v
	}
	return out
}

func (s *preFilterState) minMatch(c *constraint) int {
	m := s.paths[c.TopologyKey][0].num
	if s.domains[c.TopologyKey] < int(c.MinDomains) {
		// Fewer domains than minDomains: the missing ones count as empty.
		return 0
	}
	return m
}

// PreFilter counts the matching pods per domain over every node that carries all the
// topology keys and passes the constraints' inclusion policies.
func (p *PodTopologySpread) PreFilter(ctx context.Context, state *framework.CycleState, pod *v1.Pod) (*framework.PreFilterResult, *framework.Status) {
	cs, _, err := p.constraintsFor(pod, v1.DoNotSchedule)
	if err != nil {
		return nil, framework.AsStatus(fmt.Errorf("obtaining pod's hard topology spread constraints: %w", err))
	}
	if len(cs) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	s := &preFilterState{constraints: cs, paths: map[string]*minPaths{}, domains: map[string]int{},
		counts: map[topologyPair]int{}, required: helper.GetRequiredNodeAffinity(pod)}
	nodes := p.h.SnapshotSharedLister().NodeInfos().List()
	counts := p.countsForAll(ctx, cs, pod.Namespace, nodes)
	for i, ni := range nodes {
		node := ni.Node()
		if !nodeHasAllKeys(node, cs) {
			continue
		}
		for j := range cs {
			c := &cs[j]
			if !c.matchNodeInclusionPolicies(pod, node, &s.required) {
				continue
			}
			s.counts[topologyPair{c.TopologyKey, node.Labels[c.TopologyKey]}] += counts[j][i]
		}
	}
	for _, c := range cs {
		s.paths[c.TopologyKey] = newMinPaths()
	}
	for pair, n := range s.counts {
		s.domains[pair.key]++
		s.paths[pair.key].update(pair.value, n)
	}
	state.Write(preFilterStateKey, s)
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (p *PodTopologySpread) PreFilterExtensions() framework.PreFilterExtensions { return p }

func (p *PodTopologySpread) updateWithPod(state *framework.CycleState, changed *v1.Pod, preemptor *v1.Pod, node *v1.Node, delta int) *framework.Status {
	d, ok := state.Read(preFilterStateKey)
	if !ok {
		return framework.AsStatus(fmt.Errorf("reading %q from cycleState: not found", preFilterStateKey))
	}
	s := d.(*preFilterState)
	if changed.Namespace != preemptor.Namespace || node == nil || !nodeHasAllKeys(node, s.constraints) {
		return nil
	}
	for i := range s.constraints {
		c := &s.constraints[i]
		if !c.Selector.Matches(labels.Set(changed.Labels)) || !c.matchNodeInclusionPolicies(preemptor, node, &s.required) {
			continue
		}
		pair := topologyPair{c.TopologyKey, node.Labels[c.TopologyKey]}
		s.counts[pair] += delta
		s.paths[c.TopologyKey].update(pair.value, s.counts[pair])
	}
	return nil
}

// AddPod implements framework.PreFilterExtensions.
func (p *PodTopologySpread) AddPod(_ context.Context, state *framework.CycleState, pod *v1.Pod, add *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	return p.updateWithPod(state, add.Pod, pod, ni.Node(), 1)
}

// RemovePod implements framework.PreFilterExtensions.
func (p *PodTopologySpread) RemovePod(_ context.Context, state *framework.CycleState, pod *v1.Pod, rm *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	return p.updateWithPod(state, rm.Pod, pod, ni.Node(), -1)
}

// Filter rejects a node lacking a topology key, or whose domain would exceed maxSkew:
// matching pods in the domain + 1 (if the pod matches its own selector) - the global
// minimum > maxSkew.
func (p *PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	d, ok := state.Read(preFilterStateKey)
	if !ok {
		return framework.AsStatus(fmt.Errorf("reading %q from cycleState: not found", preFilterStateKey))
	}
	s := d.(*preFilterState)
	node := ni.Node()
	podLabels := labels.Set(pod.Labels)
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := node.Labels[c.TopologyKey]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeLabelNotMatch)
		}
		self := 0
		if c.Selector.Matches(podLabels) {
			self = 1
		}
		skew := s.counts[topologyPair{c.TopologyKey, v}] + self - s.minMatch(c)
		if skew > int(c.MaxSkew) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonConstraintsNotMatch)
		}
	}
	return nil
}
