package podtopologyspread

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

const preScoreStateKey framework.StateKey = "PreScore" + Name

type preScoreState struct {
	constraints []constraint
	ignored     sets.Set[string]
	// counts[i][value] is the number of matching pods in that domain of constraint i
	// (hostname domains are counted per node in Score).
	counts  []map[string]*int64
	weights []float64
	// hostCounts[i][node] is the count of hostname constraint i on a feasible node.
	hostCounts []map[string]int
}

func (s *preScoreState) Clone() framework.StateData { return s }

// topologyWeight makes counts in topologies with many domains weigh more, so they are
// not drowned by topologies with few: log(domains + 2).
func topologyWeight(size int) float64 { return math.Log(float64(size + 2)) }

// PreScore prepares per-domain counts for the domains of the feasible nodes, counting
// over every node of the cluster.
func (p *PodTopologySpread) PreScore(ctx context.Context, state *framework.CycleState, pod *v1.Pod, filtered []*framework.NodeInfo) *framework.Status {
	all := p.h.SnapshotSharedLister().NodeInfos().List()
	if len(all) == 0 || len(filtered) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	cs, defaulted, err := p.constraintsFor(pod, v1.ScheduleAnyway)
	if err != nil {
		return framework.AsStatus(fmt.Errorf("obtaining pod's soft topology spread constraints: %w", err))
	}
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	// System defaults do not require every key, so nodes without a zone label still
	// get hostname spreading.
	requireAll := !defaulted
	s := &preScoreState{constraints: cs, ignored: sets.New[string](), counts: make([]map[string]*int64, len(cs)), weights: make([]float64, len(cs))}
	sizes := make([]int, len(cs))
	seen := make([]sets.Set[string], len(cs))
	for i := range cs {
		s.counts[i] = map[string]*int64{}
		seen[i] = sets.New[string]()
	}
	for _, ni := range filtered {
		node := ni.Node()
		if requireAll && !nodeHasAllKeys(node, cs) {
			s.ignored.Insert(node.Name)
			continue
		}
		for i, c := range cs {
			if c.TopologyKey == v1.LabelHostname {
				continue
			}
			v, ok := node.Labels[c.TopologyKey]
			if !seen[i].Has(v) {
				seen[i].Insert(v)
				sizes[i]++
			}
			// A node without the key is never scored for it; no need to count its domain.
			if ok && s.counts[i][v] == nil {
				s.counts[i][v] = new(int64)
			}
		}
	}
	for i, c := range cs {
		size := sizes[i]
		if c.TopologyKey == v1.LabelHostname {
			size = len(filtered) - s.ignored.Len()
		}
		s.weights[i] = topologyWeight(size)
	}
	required := helper.GetRequiredNodeAffinity(pod)
	s.hostCounts = make([]map[string]int, len(cs))
	for i := range cs {
		c := &cs[i]
		if c.TopologyKey == v1.LabelHostname {
			counts := p.countsFor(ctx, c, pod.Namespace, filtered)
			s.hostCounts[i] = make(map[string]int, len(filtered))
			for j, ni := range filtered {
				s.hostCounts[i][ni.Node().Name] = counts[j]
			}
			continue
		}
		// Domains of feasible nodes count the matching pods of every eligible node.
		var eligible []*framework.NodeInfo
		for _, ni := range all {
			node := ni.Node()
			if requireAll && !nodeHasAllKeys(node, cs) {
				continue
			}
			v, ok := node.Labels[c.TopologyKey]
			if !ok || s.counts[i][v] == nil || !c.matchNodeInclusionPolicies(pod, node, &required) {
				continue
			}
			eligible = append(eligible, ni)
		}
		counts := p.countsFor(ctx, c, pod.Namespace, eligible)
		for j, ni := range eligible {
			*s.counts[i][ni.Node().Labels[c.TopologyKey]] += int64(counts[j])
		}
	}
	state.Write(preScoreStateKey, s)
	return nil
}

// Score adds, per constraint, the matching pods in the node's domain times the
// topology's weight plus maxSkew-1 (which softens small differences); fewer is better.
func (p *PodTopologySpread) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := state.Read(preScoreStateKey)
	if !ok {
		return 0, nil
	}
	s := d.(*preScoreState)
	node := ni.Node()
	if s.ignored.Has(node.Name) {
		return 0, nil
	}
	var score float64
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := node.Labels[c.TopologyKey]
		if !ok {
			continue
		}
		var cnt int64
		if c.TopologyKey == v1.LabelHostname {
			n, ok := s.hostCounts[i][node.Name]
			if !ok {
				n = countMatching(ni.Pods, c.Selector, pod.Namespace)
			}
			cnt = int64(n)
		} else if ptr := s.counts[i][v]; ptr != nil {
			cnt = *ptr
		}
		score += float64(cnt)*s.weights[i] + float64(c.MaxSkew-1)
	}
	return int64(math.Round(score)), nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (p *PodTopologySpread) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore turns "fewer matching pods" into a higher score: MaxNodeScore *
// (max + min - score) / max; ignored nodes get 0.
func (p *PodTopologySpread) NormalizeScore(_ context.Context, state *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	d, ok := state.Read(preScoreStateKey)
	if !ok {
		return nil
	}
	s := d.(*preScoreState)
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, sc := range scores {
		if s.ignored.Has(sc.Name) {
			continue
		}
		lo, hi = min(lo, sc.Score), max(hi, sc.Score)
	}
	for i := range scores {
		switch {
		case s.ignored.Has(scores[i].Name):
			scores[i].Score = 0
		case hi == 0:
			scores[i].Score = framework.MaxNodeScore
		default:
			scores[i].Score = framework.MaxNodeScore * (hi + lo - scores[i].Score) / hi
		}
	}
	return nil
}
