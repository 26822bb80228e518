package interpodaffinity

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

const preScoreStateKey framework.StateKey = "PreScore" + Name

// scoreMap is topology key -> value -> score.
type scoreMap map[string]map[string]int64

func (m scoreMap) add(key string, node *v1.Node, w int64) {
	v, ok := node.Labels[key]
	if !ok {
		return
	}
	if m[key] == nil {
		m[key] = map[string]int64{}
	}
	m[key][v] += w
}

func (m scoreMap) merge(o scoreMap) {
	for k, vs := range o {
		if m[k] == nil {
			m[k] = map[string]int64{}
		}
		for v, n := range vs {
			m[k][v] += n
		}
	}
}

type preScoreState struct {
	scores scoreMap
}

func (s *preScoreState) Clone() framework.StateData { return s }

// PreScore adds up, per topology domain, the weights of every (anti-)affinity
// preference between the incoming pod and the pods already there, in both directions,
// plus HardPodAffinityWeight for existing pods whose required affinity the incoming pod
// matches. Without preferences of its own, only nodes hosting pods with affinity are
// visited.
func (p *InterPodAffinity) PreScore(ctx context.Context, state *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	if len(nodes) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	pi := framework.NewPodInfo(pod)
	if pi.ParseError != nil {
		return framework.AsStatus(pi.ParseError)
	}
	pi = p.mergeNamespaces(pi)
	nsLabels := p.namespaceLabels(pod.Namespace)
	lister := p.h.SnapshotSharedLister().NodeInfos()
	total := scoreMap{}
	// The incoming pod's preferences count the matching pods of every node.
	if len(pi.PreferredAffinityTerms)+len(pi.PreferredAntiAffinityTerms) > 0 {
		all := lister.List()
		addTerm := func(t *framework.WeightedAffinityTerm, sign int64) {
			counts := p.countMatching(ctx, "preferred\x00", []framework.AffinityTerm{t.AffinityTerm}, all)
			for i, n := range counts {
				if n > 0 && len(all[i].Node().Labels) > 0 {
					total.add(t.TopologyKey, all[i].Node(), sign*int64(t.Weight)*int64(n))
				}
			}
		}
		for j := range pi.PreferredAffinityTerms {
			addTerm(&pi.PreferredAffinityTerms[j], 1)
		}
		for j := range pi.PreferredAntiAffinityTerms {
			addTerm(&pi.PreferredAntiAffinityTerms[j], -1)
		}
	}
	// Existing pods' terms about the incoming pod: only pods with affinity have any.
	withAffinity := lister.HavePodsWithAffinityList()
	perNode := make([]scoreMap, len(withAffinity))
	p.h.Parallelizer().Until(ctx, len(withAffinity), func(i int) {
		ni := withAffinity[i]
		node := ni.Node()
		if len(node.Labels) == 0 {
			return
		}
		m := scoreMap{}
		for _, existing := range ni.PodsWithAffinity {
			for j := range existing.RequiredAffinityTerms {
				t := &existing.RequiredAffinityTerms[j]
				if t.Matches(pod, nsLabels) {
					m.add(t.TopologyKey, node, HardPodAffinityWeight)
				}
			}
			for j := range existing.PreferredAffinityTerms {
				t := &existing.PreferredAffinityTerms[j]
				if t.Matches(pod, nsLabels) {
					m.add(t.TopologyKey, node, int64(t.Weight))
				}
			}
			for j := range existing.PreferredAntiAffinityTerms {
				t := &existing.PreferredAntiAffinityTerms[j]
				if t.Matches(pod, nsLabels) {
					m.add(t.TopologyKey, node, -int64(t.Weight))
				}
			}
		}
		if len(m) > 0 {
			perNode[i] = m
		}
	})
	for _, m := range perNode {
		if m != nil {
			total.merge(m)
		}
	}
	if len(total) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{scores: total})
	return nil
}

// Score sums the scores of the domains the node belongs to.
func (p *InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := state.Read(preScoreStateKey)
	if !ok {
		return 0, nil
	}
	var score int64
	for key, values := range d.(*preScoreState).scores {
		if v, ok := ni.Node().Labels[key]; ok {
			score += values[v]
		}
	}
	return score, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (p *InterPodAffinity) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore maps the range [min, max] of raw scores (which may be negative) onto
// [0, MaxNodeScore].
func (p *InterPodAffinity) NormalizeScore(_ context.Context, state *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	if _, ok := state.Read(preScoreStateKey); !ok {
		return nil
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, s := range scores {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	diff := hi - lo
	for i := range scores {
		var f float64
		if diff > 0 {
			f = float64(framework.MaxNodeScore) * float64(scores[i].Score-lo) / float64(diff)
		}
		scores[i].Score = int64(f)
	}
	return nil
}
