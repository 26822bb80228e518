// Package balancedallocation scores nodes by how evenly cpu and memory would be used
// after placing the pod: 100 * (1 - standard deviation of the used fractions). It counts
// actual requests, without the non-zero defaults.
package balancedallocation

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeResourcesBalancedAllocation"

const preScoreStateKey framework.StateKey = "PreScore" + Name

// DefaultResources are cpu and memory.
var DefaultResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}

// BalancedAllocation is the plugin.
type BalancedAllocation struct {
	resources []v1.ResourceName
}

var (
	_ framework.PreScorePlugin = (*BalancedAllocation)(nil)
	_ framework.ScorePlugin    = (*BalancedAllocation)(nil)
)

// New builds the plugin.
func New(_ framework.Handle) (framework.Plugin, error) {
	return &BalancedAllocation{resources: DefaultResources}, nil
}

// Name implements framework.Plugin.
func (*BalancedAllocation) Name() string { return Name }

type preScoreState struct {
	podRequests []int64
}

func (s *preScoreState) Clone() framework.StateData { return s }

func (b *BalancedAllocation) podRequests(pod *v1.Pod) []int64 {
	r := framework.PodRequests(pod, false)
	out := make([]int64, len(b.resources))
	for i, n := range b.resources {
		out[i] = r.Get(n)
	}
	return out
}

// PreScore computes the pod's requests once.
func (b *BalancedAllocation) PreScore(_ context.Context, state *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	state.Write(preScoreStateKey, &preScoreState{podRequests: b.podRequests(pod)})
	return nil
}

// Score implements framework.ScorePlugin.
func (b *BalancedAllocation) Score(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	var reqs []int64
	if d, ok := state.Read(preScoreStateKey); ok {
		reqs = d.(*preScoreState).podRequests
	} else {
		reqs = b.podRequests(pod)
	}
	fractions := make([]float64, 0, len(b.resources))
	var total float64
	for i, n := range b.resources {
		alloc := ni.Allocatable.Get(n)
		if alloc == 0 || (reqs[i] == 0 && framework.IsScalarResourceName(n)) {
			continue
		}
		f := float64(ni.Requested.Get(n)+reqs[i]) / float64(alloc)
		f = min(f, 1)
		total += f
		fractions = append(fractions, f)
	}
	var std float64
	switch {
	case len(fractions) == 2:
		std = math.Abs(fractions[0]-fractions[1]) / 2
	case len(fractions) > 2:
		mean := total / float64(len(fractions))
		var sum float64
		for _, f := range fractions {
			sum += (f - mean) * (f - mean)
		}
		std = math.Sqrt(sum / float64(len(fractions)))
	}
	return int64((1 - std) * float64(framework.MaxNodeScore)), nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (*BalancedAllocation) ScoreExtensions() framework.ScoreExtensions { return nil }
