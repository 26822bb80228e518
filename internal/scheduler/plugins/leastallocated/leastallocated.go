// Package leastallocated scores nodes by the share of cpu and memory left free after
// placing the pod, favouring emptier nodes so pods spread. Requests count with
// Kubernetes' non-zero defaults (100m, 200Mi) for containers that set none.
package leastallocated

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeResourcesLeastAllocated"

const preScoreStateKey framework.StateKey = "PreScore" + Name

// ResourceWeight is a resource and its weight in the score.
type ResourceWeight struct {
	Name   v1.ResourceName
	Weight int64
}

// DefaultResources are Kubernetes' defaults: cpu and memory, equally weighted.
var DefaultResources = []ResourceWeight{{v1.ResourceCPU, 1}, {v1.ResourceMemory, 1}}

// LeastAllocated is the plugin.
type LeastAllocated struct {
	resources []ResourceWeight
}

var (
	_ framework.PreScorePlugin = (*LeastAllocated)(nil)
	_ framework.ScorePlugin    = (*LeastAllocated)(nil)
)

// New builds the plugin with the default resources.
func New(_ framework.Handle) (framework.Plugin, error) {
	return &LeastAllocated{resources: DefaultResources}, nil
}

// Name implements framework.Plugin.
func (*LeastAllocated) Name() string { return Name }

type preScoreState struct {
	podRequests []int64
}

func (s *preScoreState) Clone() framework.StateData { return s }

func (l *LeastAllocated) podRequests(pod *v1.Pod) []int64 {
	nz := framework.PodRequests(pod, true)
	out := make([]int64, len(l.resources))
	for i, r := range l.resources {
		out[i] = nz.Get(r.Name)
	}
	return out
}

// PreScore computes the pod's scoring requests once.
func (l *LeastAllocated) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	state.Write(preScoreStateKey, &preScoreState{podRequests: l.podRequests(pod)})
	return nil
}

// Score is the weighted mean over resources of (allocatable - requested) * 100 /
// allocatable, with requested including the pod; resources the node does not have are
// left out, and extended resources the pod does not request too.
func (l *LeastAllocated) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	var reqs []int64
	if d, ok := state.Read(preScoreStateKey); ok {
		reqs = d.(*preScoreState).podRequests
	} else {
		reqs = l.podRequests(pod)
	}
	var score, weights int64
	for i, r := range l.resources {
		alloc := ni.Allocatable.Get(r.Name)
		if alloc == 0 || (reqs[i] == 0 && framework.IsScalarResourceName(r.Name)) {
			continue
		}
		var used int64
		switch r.Name {
		case v1.ResourceCPU, v1.ResourceMemory:
			used = ni.NonZeroRequested.Get(r.Name)
		default:
			used = ni.Requested.Get(r.Name)
		}
		used += reqs[i]
		var s int64
		if used <= alloc {
			s = (alloc - used) * framework.MaxNodeScore / alloc
		}
		score += s * r.Weight
		weights += r.Weight
	}
	if weights == 0 {
		return 0, nil
	}
	return score / weights, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (*LeastAllocated) ScoreExtensions() framework.ScoreExtensions { return nil }
