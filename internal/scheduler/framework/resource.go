package framework

import (
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Kubernetes' defaults for containers that request no cpu or memory: they count as 0 for
// fitting but as these amounts for scoring, so that request-less pods still spread.
const (
	DefaultMilliCPURequest int64 = 100               // 0.1 core
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resource is a vector of compute resources in the scheduler's units: millicores, bytes,
// pod count and integer amounts of scalar resources (extended resources, hugepages).
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// AllowedPodNumber is only meaningful for allocatable.
	AllowedPodNumber int
	ScalarResources  map[v1.ResourceName]int64
}

// NewResource converts a ResourceList.
func NewResource(rl v1.ResourceList) *Resource {
	r := &Resource{}
	r.Add(rl)
	return r
}

// IsScalarResourceName reports whether the scheduler tracks name as a scalar: extended
// resources (example.com/gpu), prefixed native resources, hugepages and attachable volumes.
func IsScalarResourceName(name v1.ResourceName) bool {
	s := string(name)
	if strings.HasPrefix(s, v1.ResourceHugePagesPrefix) || strings.HasPrefix(s, v1.ResourceAttachableVolumesPrefix) {
		return true
	}
	return strings.Contains(s, "/") && !strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix)
}

// Add adds a ResourceList.
func (r *Resource) Add(rl v1.ResourceList) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case v1.ResourceMemory:
			r.Memory += q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case v1.ResourcePods:
			r.AllowedPodNumber += int(q.Value())
		default:
			if IsScalarResourceName(name) {
				r.AddScalar(name, q.Value())
			}
		}
	}
}

// AddResource adds another Resource.
func (r *Resource) AddResource(o *Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	r.AllowedPodNumber += o.AllowedPodNumber
	for k, v := range o.ScalarResources {
		r.AddScalar(k, v)
	}
}

// SubResource subtracts another Resource.
func (r *Resource) SubResource(o *Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	r.AllowedPodNumber -= o.AllowedPodNumber
	for k, v := range o.ScalarResources {
		r.AddScalar(k, -v)
	}
}

// SetMaxResource raises each dimension to at least o's.
func (r *Resource) SetMaxResource(o *Resource) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, o.EphemeralStorage)
	for k, v := range o.ScalarResources {
		if v > r.ScalarResources[k] {
			r.SetScalar(k, v)
		}
	}
}

// AddScalar adds to a scalar resource.
func (r *Resource) AddScalar(name v1.ResourceName, v int64) {
	r.SetScalar(name, r.ScalarResources[name]+v)
}

// SetScalar sets a scalar resource.
func (r *Resource) SetScalar(name v1.ResourceName, v int64) {
	if r.ScalarResources == nil {
		r.ScalarResources = make(map[v1.ResourceName]int64, 1)
	}
	r.ScalarResources[name] = v
}

// Clone deep-copies.
func (r *Resource) Clone() *Resource {
	out := *r
	if r.ScalarResources != nil {
		out.ScalarResources = make(map[v1.ResourceName]int64, len(r.ScalarResources))
		for k, v := range r.ScalarResources {
			out.ScalarResources[k] = v
		}
	}
	return &out
}

// IsZero reports whether nothing is requested.
func (r *Resource) IsZero() bool {
	if r.MilliCPU != 0 || r.Memory != 0 || r.EphemeralStorage != 0 {
		return false
	}
	for _, v := range r.ScalarResources {
		if v != 0 {
			return false
		}
	}
	return true
}

// Get returns one dimension by name (cpu in millicores).
func (r *Resource) Get(name v1.ResourceName) int64 {
	switch name {
	case v1.ResourceCPU:
		return r.MilliCPU
	case v1.ResourceMemory:
		return r.Memory
	case v1.ResourceEphemeralStorage:
		return r.EphemeralStorage
	case v1.ResourcePods:
		return int64(r.AllowedPodNumber)
	}
	return r.ScalarResources[name]
}

// containerRequests converts one container's requests; a missing cpu or memory request
// counts as the default when defCPU/defMem say so.
func containerRequests(rl v1.ResourceList, defCPU, defMem bool) *Resource {
	r := NewResource(rl)
	if defCPU {
		if _, ok := rl[v1.ResourceCPU]; !ok {
			r.MilliCPU = DefaultMilliCPURequest
		}
	}
	if defMem {
		if _, ok := rl[v1.ResourceMemory]; !ok {
			r.Memory = DefaultMemoryRequest
		}
	}
	return r
}

func isRestartable(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// PodRequests computes a pod's effective request the way Kubernetes does: regular
// containers and sidecars (restartable init containers) run together, so they add up;
// each ordinary init container runs alone next to the sidecars started before it, so the
// pod needs the maximum of those; pod-level requests, when set, replace the container
// figure for cpu and memory; the runtime overhead is added last.
//
// With nonZero, containers without a cpu/memory request count as 100m/200Mi (unless the
// pod sets that resource at pod level) — the figure scoring uses, never fitting.
func PodRequests(pod *v1.Pod, nonZero bool) *Resource {
	var podLevel v1.ResourceList
	if pod.Spec.Resources != nil {
		podLevel = pod.Spec.Resources.Requests
	}
	_, podCPU := podLevel[v1.ResourceCPU]
	_, podMem := podLevel[v1.ResourceMemory]
	defCPU, defMem := nonZero && !podCPU, nonZero && !podMem
	reqs := &Resource{}
	for i := range pod.Spec.Containers {
		reqs.AddResource(containerRequests(pod.Spec.Containers[i].Resources.Requests, defCPU, defMem))
	}
	sidecars := &Resource{}
	initMax := &Resource{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cr := containerRequests(c.Resources.Requests, defCPU, defMem)
		if isRestartable(c) {
			reqs.AddResource(cr)
			sidecars.AddResource(cr)
			initMax.SetMaxResource(sidecars)
			continue
		}
		cr.AddResource(sidecars)
		initMax.SetMaxResource(cr)
	}
	reqs.SetMaxResource(initMax)
	if podCPU {
		q := podLevel[v1.ResourceCPU]
		reqs.MilliCPU = q.MilliValue()
	}
	if podMem {
		q := podLevel[v1.ResourceMemory]
		reqs.Memory = q.Value()
	}
	if pod.Spec.Overhead != nil {
		reqs.Add(pod.Spec.Overhead)
	}
	reqs.AllowedPodNumber = 0
	return reqs
}
