// Package noderesourcesfit filters out nodes without room for the pod's effective
// request: cpu, memory, ephemeral storage, extended resources and the pod count.
package noderesourcesfit

import (
	"context"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeResourcesFit"

const preFilterStateKey framework.StateKey = "PreFilter" + Name

// Fit is the plugin.
type Fit struct{}

var (
	_ framework.PreFilterPlugin   = (*Fit)(nil)
	_ framework.FilterPlugin      = (*Fit)(nil)
	_ framework.EnqueueExtensions = (*Fit)(nil)
)

// New builds the plugin.
func New(_ framework.Handle) (framework.Plugin, error) { return &Fit{}, nil }

// Name implements framework.Plugin.
func (*Fit) Name() string { return Name }

type preFilterState struct {
	framework.Resource
}

func (s *preFilterState) Clone() framework.StateData { return s }

// PreFilter computes the pod's effective request once.
func (*Fit) PreFilter(_ context.Context, state *framework.CycleState, pod *v1.Pod) (*framework.PreFilterResult, *framework.Status) {
	state.Write(preFilterStateKey, &preFilterState{Resource: *framework.PodRequests(pod, false)})
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (*Fit) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects the node with one reason per short resource ("Insufficient cpu",
// "Too many pods", ...), each counted in the failure message.
func (*Fit) Filter(_ context.Context, state *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	var req *framework.Resource
	if d, ok := state.Read(preFilterStateKey); ok {
		req = &d.(*preFilterState).Resource
	} else {
		req = framework.PodRequests(pod, false)
	}
	if reasons := InsufficientResources(req, ni); len(reasons) > 0 {
		return framework.NewStatus(framework.Unschedulable, reasons...)
	}
	return nil
}

// InsufficientResources lists, in Kubernetes' order, the reasons a request does not fit
// what is left on the node.
func InsufficientResources(req *framework.Resource, ni *framework.NodeInfo) []string {
	var out []string
	if len(ni.Pods)+1 > ni.Allocatable.AllowedPodNumber {
		out = append(out, "Too many pods")
	}
	if req.IsZero() {
		return out
	}
	alloc, used := &ni.Allocatable, &ni.Requested
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		out = append(out, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		out = append(out, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		out = append(out, "Insufficient ephemeral-storage")
	}
	if len(req.ScalarResources) > 0 {
		names := make([]v1.ResourceName, 0, len(req.ScalarResources))
		for n := range req.ScalarResources {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			q := req.ScalarResources[n]
			if q > 0 && q > alloc.ScalarResources[n]-used.ScalarResources[n] {
				out = append(out, "Insufficient "+string(n))
			}
		}
	}
	return out
}

// EventsToRegister: a pod deleted frees resources; a node added or given more
// allocatable may have room (labels and taints too, as Kubernetes registers them).
func (*Fit) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.Pod, ActionType: framework.Delete | framework.UpdatePodScaleDown},
		{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeAllocatable | framework.UpdateNodeTaint | framework.UpdateNodeLabel},
	}
}
