// Package nodeaffinity filters nodes by the pod's nodeSelector and required node
// affinity, and scores them by the weights of the preferred node affinity terms they
// match.
package nodeaffinity

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins/helper"
)

// Name is the plugin's name.
const Name = "NodeAffinity"

// ErrReasonPod is Kubernetes' message for nodes failing nodeSelector or required affinity.
const ErrReasonPod = "node(s) didn't match Pod's node affinity/selector"

const (
	preFilterStateKey framework.StateKey = "PreFilter" + Name
	preScoreStateKey  framework.StateKey = "PreScore" + Name
)

// NodeAffinity is the plugin.
type NodeAffinity struct{}

var (
	_ framework.PreFilterPlugin   = (*NodeAffinity)(nil)
	_ framework.FilterPlugin      = (*NodeAffinity)(nil)
	_ framework.PreScorePlugin    = (*NodeAffinity)(nil)
	_ framework.ScorePlugin       = (*NodeAffinity)(nil)
	_ framework.ScoreExtensions   = (*NodeAffinity)(nil)
	_ framework.EnqueueExtensions = (*NodeAffinity)(nil)
)

// New builds the plugin.
func New(_ framework.Handle) (framework.Plugin, error) { return &NodeAffinity{}, nil }

// Name implements framework.Plugin.
func (*NodeAffinity) Name() string { return Name }

type preFilterState struct {
	required helper.RequiredNodeAffinity
}

func (s *preFilterState) Clone() framework.StateData { return s }

func hasRequired(pod *v1.Pod) bool {
	a := pod.Spec.Affinity
	return len(pod.Spec.NodeSelector) > 0 ||
		(a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil)
}

// PreFilter parses the pod's constraints once and, when every required term pins the
// pod to named nodes (DaemonSet pods), limits filtering to those nodes.
func (*NodeAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *v1.Pod) (*framework.PreFilterResult, *framework.Status) {
	if !hasRequired(pod) {
		return nil, framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterStateKey, &preFilterState{required: helper.GetRequiredNodeAffinity(pod)})
	if names := helper.MatchNodeNames(pod); names != nil {
		return &framework.PreFilterResult{NodeNames: sets.New(names...)}, nil
	}
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (*NodeAffinity) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter implements framework.FilterPlugin.
func (*NodeAffinity) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	var req helper.RequiredNodeAffinity
	if d, ok := state.Read(preFilterStateKey); ok {
		req = d.(*preFilterState).required
	} else {
		req = helper.GetRequiredNodeAffinity(pod)
	}
	if !req.Match(ni.Node()) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonPod)
	}
	return nil
}

type weightedTerm struct {
	term   helper.NodeSelectorTerm
	weight int64
}

type preScoreState struct {
	terms []weightedTerm
}

func (s *preScoreState) Clone() framework.StateData { return s }

func preferredTerms(pod *v1.Pod) []weightedTerm {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil {
		return nil
	}
	var out []weightedTerm
	for i := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		t := &a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[i]
		if t.Weight == 0 {
			continue
		}
		out = append(out, weightedTerm{term: helper.ParseNodeSelectorTerm(&t.Preference), weight: int64(t.Weight)})
	}
	return out
}

// PreScore parses the preferred terms; pods without any skip scoring.
func (*NodeAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	terms := preferredTerms(pod)
	if len(terms) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreStateKey, &preScoreState{terms: terms})
	return nil
}

// Score sums the weights of the preferred terms the node matches.
func (*NodeAffinity) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	var terms []weightedTerm
	if d, ok := state.Read(preScoreStateKey); ok {
		terms = d.(*preScoreState).terms
	} else {
		terms = preferredTerms(pod)
	}
	var score int64
	for i := range terms {
		if terms[i].term.Match(ni.Node()) {
			score += terms[i].weight
		}
	}
	return score, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (p *NodeAffinity) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore scales so the best-matching node scores MaxNodeScore.
func (*NodeAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *framework.Status {
	framework.DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
	return nil
}

// EventsToRegister: a node added or relabelled (taint changes too: Kubernetes registers
// them for every plugin interested in node additions).
func (*NodeAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel | framework.UpdateNodeTaint}}
}
