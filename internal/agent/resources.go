package agent

import (
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cgroup CPU constants (cgroup v1 cpu.shares and CFS quota, as the kubelet uses them).
const (
	minShares     = 2
	sharesPerCPU  = 1024
	quotaPeriodUs = 100000
	minQuotaUs    = 1000
)

// OOM score adjustments by QoS class.
const (
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
)

// containerResources maps a container's requests and limits onto cgroup settings: cpu
// request -> shares, cpu limit -> CFS quota, memory limit -> limit, and the OOM score from
// the pod's QoS class (memoryCapacity is the node's).
func containerResources(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{}
	cpuReq, hasCPUReq := c.Resources.Requests[corev1.ResourceCPU]
	cpuLim, hasCPULim := c.Resources.Limits[corev1.ResourceCPU]
	if !hasCPUReq && hasCPULim {
		cpuReq, hasCPUReq = cpuLim, true
	}
	r.CpuShares = milliCPUToShares(cpuReq.MilliValue())
	if hasCPULim && !cpuLim.IsZero() {
		r.CpuPeriod = quotaPeriodUs
		r.CpuQuota = milliCPUToQuota(cpuLim.MilliValue(), quotaPeriodUs)
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !mem.IsZero() {
		r.MemoryLimitInBytes = mem.Value()
	}
	r.OomScoreAdj = oomScoreAdj(pod, c, memoryCapacity)
	return r
}

func milliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	shares := milli * sharesPerCPU / 1000
	if shares < minShares {
		return minShares
	}
	return shares
}

func milliCPUToQuota(milli, period int64) int64 {
	q := milli * period / 1000
	if q < minQuotaUs {
		return minQuotaUs
	}
	return q
}

// oomScoreAdj: Guaranteed pods are the last the kernel kills, BestEffort the first, and
// Burstable ones in between by the share of the node's memory they request.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int64 {
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return 999
	}
	req := c.Resources.Requests[corev1.ResourceMemory]
	adj := 1000 - (1000*req.Value())/memoryCapacity
	if adj < 2 {
		adj = 2
	}
	if adj > 999 {
		adj = 999
	}
	return adj
}

// podCgroupParent is the pod's cgroup under the kubepods hierarchy (cgroupfs driver):
// /kubepods/pod<uid> for Guaranteed, /kubepods/burstable/pod<uid>, /kubepods/besteffort/pod<uid>.
func podCgroupParent(pod *corev1.Pod) string {
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		return path.Join("/kubepods", "pod"+string(pod.UID))
	case corev1.PodQOSBestEffort:
		return path.Join("/kubepods", "besteffort", "pod"+string(pod.UID))
	}
	return path.Join("/kubepods", "burstable", "pod"+string(pod.UID))
}

// effectiveLimit returns a container's limit for name, defaulting to the node's
// allocatable amount (what downward API resourceFieldRef reports for an unset limit).
func effectiveLimit(c *corev1.Container, name corev1.ResourceName, allocatable corev1.ResourceList) resource.Quantity {
	if q, ok := c.Resources.Limits[name]; ok && !q.IsZero() {
		return q
	}
	return allocatable[name]
}
